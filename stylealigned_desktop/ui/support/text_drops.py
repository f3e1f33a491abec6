"""Files dropped on a text field go where files go, not into the text.

File managers offer a dragged file as text too (its file:// address), so a QLineEdit would type
that address into a prompt. Fields given :func:`files_pass_through` ignore drags that carry
files; Qt then offers them to the field's parents (Settings uses a picture's settings, the
window adds pictures). Plain text dragged from elsewhere is still dropped into the field.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

_DRAG_EVENTS = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)


class _FilesPassThrough(QObject):
    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt)
        if event.type() in _DRAG_EVENTS and event.mimeData().hasUrls():
            event.ignore()  # not for this field: Qt passes it on to the parents
            return True
        return False


@functools.cache
def _files_pass_through() -> _FilesPassThrough:
    return _FilesPassThrough(QApplication.instance())


def files_pass_through(*fields: QWidget) -> None:
    """Make drags of files over ``fields`` go to their parents instead of into their text."""
    for field in fields:
        field.installEventFilter(_files_pass_through())
