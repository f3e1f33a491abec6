"""The gallery's film strip as a drop target: files, folders, session folders and picture data
dropped from other applications."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QAbstractItemView, QListWidget

from ...session.folders import is_session_folder
from ..support import accept_as_copy, accept_pictures, local_paths, set_style_flag


class DropList(QListWidget):
    """A list that takes files, folders and picture data dropped from other applications."""

    files_dropped = Signal(list)
    image_dropped = Signal(QImage)
    session_dropped = Signal(Path)
    """A session folder (*.stylealigned) was dropped: open it rather than add its pictures."""
    refused = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setDropIndicatorShown(False)

    def _highlight(self, on: bool) -> None:
        set_style_flag(self, "dropTarget", on)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if accept_pictures(event):
            self._highlight(True)

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt)
        accept_pictures(event)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._highlight(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._highlight(False)
        if self.take(event.mimeData()):
            accept_as_copy(event)
        else:
            event.ignore()

    def take(self, mime) -> bool:
        """Hand dropped data on: a session folder to ``session_dropped``, local files and
        folders to ``files_dropped``, picture data to ``image_dropped``. Whether it was taken."""
        if mime.hasUrls():
            local, other = local_paths(mime.urls())
            sessions = [p for p in local if is_session_folder(p)]
            if sessions:
                self.session_dropped.emit(Path(sessions[0]))
                return True
            if other and not local:
                self.refused.emit("Only files on this computer can be added; save the picture "
                                  f"first ({other[0]})")
            if local:
                self.files_dropped.emit(local)
            return True
        if mime.hasImage():
            self.image_dropped.emit(QImage(mime.imageData()))
            return True
        return False
