"""The dialogs of the Settings menu: the model (and its downloads, the other models) and where
pictures are made (this computer or a server), with the picture maker that choice gives; and
the options of File → Export's storyboard deliverables.

Imports ``support`` and ``threads``."""

from .deliver_dialogs import (
    AnimaticOptionsDialog,
    PdfOptionsDialog,
    StoryboarderOptionsDialog,
    TimelineOptionsDialog,
)
from .model_dialog import ModelDialog
from .where_dialog import SERVER, WhereDialog, maker_factory

__all__ = ["SERVER", "AnimaticOptionsDialog", "ModelDialog", "PdfOptionsDialog",
           "StoryboarderOptionsDialog", "TimelineOptionsDialog", "WhereDialog", "maker_factory"]
