"""Undo and redo of every document change: a QUndoStack over session snapshots.

The session is a small serialisable document, so a step is simply (state before, state after)
of :meth:`~stylealigned_desktop.session.document.SessionDocument.edit_state` (style, gallery,
panels, settings; never the run history). Changes are gathered until the event loop is idle, so
one user action (a batch, an import) is one step; edits of one panel's text or seed within
:data:`TYPING_PAUSE` seconds of each other merge into one step, so typing is undone as a whole.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..session import observer
from ..session.model import Session

TYPING_PAUSE = 2.0
"""Seconds of pause after which further edits of the same panel become a new step."""
_MERGE_ID = 1


class _Step(QUndoCommand):
    def __init__(self, undo: SessionUndo, before: dict, after: dict, key: str | None) -> None:
        super().__init__("edit")
        self.undo_ = undo
        self.before, self.after, self.key = before, after, key
        self.at = time.monotonic()

    def id(self) -> int:
        return _MERGE_ID if self.key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, _Step) or other.key != self.key or other.at - self.at > TYPING_PAUSE:
            return False
        self.after, self.at = other.after, other.at
        return True

    def undo(self) -> None:
        self.undo_.apply(self.before)

    def redo(self) -> None:
        self.undo_.apply(self.after)


class SessionUndo(QObject):
    """The undo stack of the current session (cleared when another session is opened)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.session: Session | None = None
        self._subscription = None
        self._last: dict[str, Any] | None = None
        self._kinds: set[tuple[str, str | None]] = set()
        self._applying = False
        self._pushing = False
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.flush)

    def follow(self, session: Session | None) -> None:
        if self._subscription is not None:
            self._subscription()
            self._subscription = None
        self.stack.clear()
        self.session = session
        self._kinds.clear()
        self._last = session.edit_state() if session is not None else None
        if session is not None:
            self._subscription = session.subscribe(self._on_change)

    def _on_change(self, change: observer.Change) -> None:
        if self._applying or change.kind in (observer.HISTORY, observer.SAVED) or not change.persistent:
            return
        self._kinds.add((change.kind, change.panel_id))
        self._timer.start()

    def flush(self) -> None:
        """Turn the changes gathered so far into one step (called when the event loop is idle)."""
        self._timer.stop()
        if self.session is None or self._last is None:
            return
        now = self.session.edit_state()
        kinds, self._kinds = self._kinds, set()
        if now == self._last:
            return
        single = len(kinds) == 1 and next(iter(kinds))
        key = f"panel:{single[1]}" if single and single[0] == observer.PANEL else None
        before, self._last = self._last, now
        self._pushing = True
        try:
            self.stack.push(_Step(self, before, now, key))
        finally:
            self._pushing = False

    def apply(self, state: dict) -> None:
        """Put the session back to ``state`` (QUndoStack calls this; a push's own redo is a no-op)."""
        if self._pushing or self.session is None:
            return
        self._applying = True
        try:
            self.session.restore_edit_state(state)
        finally:
            self._applying = False
        self._last = self.session.edit_state()

    def undo(self) -> None:
        self.flush()
        self.stack.undo()

    def redo(self) -> None:
        self.flush()
        self.stack.redo()
