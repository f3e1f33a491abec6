"""The pictures: the preview grid (references and panels, live then final), the full-size
viewer and the history of runs.

Imports ``support`` and ``threads``."""

from .history import HistoryView, run_title
from .previews import PreviewGrid, is_reference, reference_position
from .viewer import ImageViewer, ViewerPicture

__all__ = [
    "HistoryView",
    "ImageViewer",
    "PreviewGrid",
    "ViewerPicture",
    "is_reference",
    "reference_position",
    "run_title",
]
