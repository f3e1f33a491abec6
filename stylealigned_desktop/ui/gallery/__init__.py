"""The reference gallery (the style's pictures, their mix and weights) and the characters (spec
section 13: who the panels show, their anchors): the film strip, its drops, the background
import of pictures and their thumbnails.

Imports ``support`` and ``threads``."""

from .characters_panel import CharactersPanel
from .reference_gallery import ReferenceGallery

__all__ = ["CharactersPanel", "ReferenceGallery"]
