"""The session's edits of panel notes and of the set's default duration (the value types and
the numbering rules are in ``notes.py``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from . import observer
from .document_state import DocumentState
from .errors import SessionError
from .notes import BoardSettings, PanelNotes, PanelNumber, check_duration, durations, number_panels
from .values import Panel


class NoteEdits(DocumentState):
    """Edits of panel notes and of the set's default duration (a mixin of
    :class:`~stylealigned_desktop.session.document.SessionDocument`); a notes edit is a panel
    edit, so undo (a snapshot of the document) and autosave cover it."""

    @property
    def board(self) -> BoardSettings:
        return self._board

    def update_panel_notes(self, index: int, **changes: Any) -> Panel:
        """Change panel ``index``'s notes: ``scene``, ``shot`` (None: automatic), ``action``,
        ``dialogue``, ``notes``, ``camera``, ``duration`` (seconds; None: the set's default)."""
        unknown = sorted(set(changes) - {f.name for f in fields(PanelNotes)})
        if unknown:
            raise SessionError(f"panel notes have no field(s) {', '.join(unknown)}")
        old = self._panels[self._index(index)]
        new = replace(old, notes=replace(old.notes, **changes))
        if new != old:
            self._panels[index] = new
            self._panel_changed(index)
        return new

    def set_default_duration(self, seconds: float) -> BoardSettings:
        """The duration of panels that have none of their own."""
        board = BoardSettings(default_duration=check_duration(seconds, "default duration"))
        if board != self._board:
            self._board = board
            self._changed(observer.BOARD)
        return board

    def panel_numbers(self) -> list[PanelNumber]:
        return number_panels([p.notes for p in self.panels])

    def panel_durations(self) -> list[float]:
        return durations([p.notes for p in self.panels], self._board.default_duration)
