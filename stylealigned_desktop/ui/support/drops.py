"""Taking a drop of files: always as a copy.

A drag from a file manager often proposes Move; a file manager that honours it deletes the
artist's original once the drop is accepted. The window only ever reads dropped files, so every
drop (and the drag-enter or drag-move before it) is accepted as Copy.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QDropEvent


def accept_as_copy(event: QDropEvent) -> None:
    """Accept a drag-enter, drag-move or drop event as a Copy, whatever the source proposed."""
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()


def accept_pictures(event) -> bool:
    """Accept a drag-enter or drag-move of files or a picture as a Copy and ignore anything
    else (files or a picture are what the window's drop targets take); returns whether it
    was accepted."""
    mime = event.mimeData()
    if mime.hasUrls() or mime.hasImage():
        accept_as_copy(event)
        return True
    event.ignore()
    return False
