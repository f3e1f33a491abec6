"""Undo and redo of every document change: a QUndoStack over session snapshots.

The session is a small serialisable document, so a step is simply (state before, state after)
of :meth:`~stylealigned_desktop.session.document.SessionDocument.edit_state` (style, gallery,
panels, settings; never the run history). Changes are gathered until the event loop is idle, so
one user action (a batch, an import) is one step; edits of one panel (its text, its seed), of the
style or of the settings within :data:`TYPING_PAUSE` seconds of each other merge into one step,
so typing (or dragging a slider) is undone as a whole.

The undo / redo keys typed in the window's own fields undo the document too (not the field's own
history, which would, say, erase a prompt typed an hour ago while the Edit menu says "Undo
settings").
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QApplication, QWidget

from ...session import observer
from ...session.model import Session

TYPING_PAUSE = 2.0
"""Seconds of pause after which further edits of the same panel become a new step."""
_MERGE_ID = 1
_MERGED_KINDS = (observer.PANEL, observer.STYLE, observer.SETTINGS)

_WHAT = {observer.STYLE: "style", observer.REFERENCES: "reference pictures",
         observer.SETTINGS: "settings", observer.PANEL: "panel edit",
         observer.CHARACTERS: "characters"}


def describe(kinds: set[tuple[str, str | None]], before: dict | None = None,
             after: dict | None = None) -> str:
    """What a step changed, in words for the Edit menu ("Undo add panel")."""
    words = []
    for kind in sorted({kind for kind, _ in kinds}):
        if kind == observer.PANELS and before is not None and after is not None:
            added = len(after["panels"]) - len(before["panels"])
            words.append("add panel" if added > 0 else "delete panel" if added < 0
                         else "move panel")
        else:
            words.append(_WHAT.get(kind, kind))
    return ", ".join(words)


class _Step(QUndoCommand):
    def __init__(self, undo: SessionUndo, before: dict, after: dict, key: str | None,
                 text: str) -> None:
        super().__init__(text)
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
        self._actions: tuple[QAction, QAction] | None = None
        for signal in (self.stack.indexChanged, self.stack.cleanChanged):
            signal.connect(self._update_actions)

    def bind(self, undo_action: QAction, redo_action: QAction, window: QWidget) -> None:
        """Keep the Edit menu's Undo / Redo enabled only when there is something to undo /
        redo, and saying what ("Undo delete panel"); their keys in ``window``'s fields undo
        the document."""
        self._actions = (undo_action, redo_action)
        self._update_actions()
        _DocumentUndoKeys(window, (undo_action, redo_action))

    def _update_actions(self, *_args) -> None:
        if self._actions is None:
            return
        undo_action, redo_action = self._actions
        pending = describe(self._kinds) if self._kinds else ""
        undo_text = pending or self.stack.undoText()
        redo_text = "" if pending else self.stack.redoText()
        undo_action.setEnabled(bool(pending) or self.stack.canUndo())
        redo_action.setEnabled(not pending and self.stack.canRedo())
        undo_action.setText(f"&Undo {undo_text}" if undo_action.isEnabled() else "&Undo")
        redo_action.setText(f"&Redo {redo_text}" if redo_action.isEnabled() else "&Redo")

    def follow(self, session: Session | None) -> None:
        if self._subscription is not None:
            self._subscription()
            self._subscription = None
        self.stack.clear()
        self.session = session
        self._kinds.clear()
        self._last = session.edit_state() if session is not None else None
        self._update_actions()
        if session is not None:
            self._subscription = session.subscribe(self._on_change)

    def _on_change(self, change: observer.Change) -> None:
        if self._applying or change.kind in (observer.HISTORY, observer.SAVED) or not change.persistent:
            return
        self._kinds.add((change.kind, change.panel_id))
        self._timer.start()
        self._update_actions()

    def flush(self) -> None:
        """Turn the changes gathered so far into one step (called when the event loop is idle)."""
        self._timer.stop()
        if self.session is None or self._last is None:
            return
        now = self.session.edit_state()
        kinds, self._kinds = self._kinds, set()
        if now == self._last:
            self._update_actions()
            return
        single = len(kinds) == 1 and next(iter(kinds))
        key = f"{single[0]}:{single[1]}" if single and single[0] in _MERGED_KINDS else None
        before, self._last = self._last, now
        self._pushing = True
        try:
            self.stack.push(_Step(self, before, now, key, describe(kinds, before, now)))
        finally:
            self._pushing = False
        self._update_actions()

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


class _DocumentUndoKeys(QObject):
    """The undo / redo keys pressed in a text field or spin box of ``window`` go to the window's
    actions (the document's undo), never to the field's own undo (dialogs keep theirs)."""

    def __init__(self, window: QWidget, actions: tuple[QAction, ...]) -> None:
        super().__init__(window)  # goes, and stops filtering, with the window
        self.window = window
        self.keys = [key for action in actions for key in action.shortcuts()]
        # Keys go to the focused widget: filtering that one alone, not every event of the
        # application, keeps Python (and the GIL) out of every paint and timer event, which
        # the window waits on while the engine thread runs (issue 30 item 12).
        app = QApplication.instance()
        app.focusChanged.connect(self._follow_focus)
        self._follow_focus(None, app.focusWidget())

    def _follow_focus(self, old, new) -> None:
        if old is not None:
            with contextlib.suppress(RuntimeError):  # the widget is gone already
                old.removeEventFilter(self)
        if new is not None and new.window() is self.window:
            new.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt)
        if event.type() not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        if not isinstance(watched, QWidget) or watched.window() is not self.window:
            return False
        # An undo / redo key is not taken as the field's override, so the window's shortcut
        # runs; a key press that still arrives (the action is disabled: nothing to undo) is
        # dropped rather than undo the field.
        pressed = QKeySequence(event.keyCombination())
        return any(pressed.matches(key) == QKeySequence.SequenceMatch.ExactMatch
                   for key in self.keys)
