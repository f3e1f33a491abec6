"""The dialogs of the Settings menu: the model (and its downloads, the other models) and where
pictures are made (this computer or a server), with the picture maker that choice gives.

Imports ``support`` and ``threads``."""

from .model_dialog import ModelDialog
from .where_dialog import SERVER, WhereDialog, maker_factory

__all__ = ["SERVER", "ModelDialog", "WhereDialog", "maker_factory"]
