"""The pictures: the preview grid (references and panels, live then final), the full-size
viewer, the history of runs, and the characters' subject masks over the panels.

Imports ``support`` and ``threads``."""

from .history import HistoryView, run_title
from .mask_layer import mask_overlay
from .previews import (
    PreviewGrid,
    anchor_tile,
    is_anchor,
    is_reference,
    reference_position,
    tile_name,
)
from .viewer import ImageViewer, OpenViewers, ViewerPicture

__all__ = [
    "HistoryView",
    "ImageViewer",
    "OpenViewers",
    "PreviewGrid",
    "ViewerPicture",
    "anchor_tile",
    "is_anchor",
    "is_reference",
    "mask_overlay",
    "reference_position",
    "run_title",
    "tile_name",
]
