"""StyleAligned Desktop: sets of images that share one style (shared attention on SDXL)."""

__version__ = "0.1.0"
