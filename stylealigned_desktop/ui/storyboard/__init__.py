"""The storyboard: the view that owns the panel cards, the cards (which signal their edits up to
the view), the column they are dragged in, and a dragged panel's MIME type.

Imports ``support`` and ``threads``."""

from .card import PanelCard
from .dragging import PANEL_MIME
from .view import StoryboardView

__all__ = ["PANEL_MIME", "PanelCard", "StoryboardView"]
