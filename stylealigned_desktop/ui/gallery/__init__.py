"""The reference gallery (the style's pictures, their mix and weights), and the characters to
come: the film strip, its drops, the background import of pictures and their thumbnails.

Imports ``support`` and ``threads``."""

from .reference_gallery import ReferenceGallery

__all__ = ["ReferenceGallery"]
