"""Change notification without Qt: plain callbacks the GUI binds to and the autosaver listens to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

STYLE = "style"
"""Style text, reference prompt/seed, active reference or preset changed."""
REFERENCES = "references"
"""The gallery changed: a picture added or removed, a caption edited."""
PANELS = "panels"
"""The panel list changed shape: added, removed, moved, imported, replaced."""
PANEL = "panel"
"""One panel's fields changed; ``index`` and ``panel_id`` say which."""
SETTINGS = "settings"
"""Sampling or StyleAligned settings changed."""
CHARACTERS = "characters"
"""The characters changed: added, removed, renamed, described, their anchors or settings."""
BOARD = "board"
"""The set's deliverable settings (the default panel duration) changed."""
HISTORY = "history"
"""A run was recorded, removed or scored."""
SAVED = "saved"
"""The session was written to disk or moved (folder, title, ``dirty`` may have changed).
Not a change of the document itself, so it does not make the session dirty."""

DOCUMENT_KINDS = frozenset({STYLE, REFERENCES, PANELS, PANEL, SETTINGS, BOARD, CHARACTERS,
                            HISTORY})


@dataclass(frozen=True)
class Change:
    """What changed. ``index`` / ``panel_id`` are set for :data:`PANEL` changes."""

    kind: str
    index: int | None = None
    panel_id: str | None = None

    @property
    def persistent(self) -> bool:
        """Whether the change must reach session.json (everything but :data:`SAVED`)."""
        return self.kind in DOCUMENT_KINDS


Listener = Callable[[Change], None]


class Observable:
    """Holds listeners; ``subscribe`` returns a function that unsubscribes.

    Listeners run synchronously on the thread that made the change (the GUI thread). A
    listener that raises is logged and skipped, so one broken view cannot block autosave.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._batch_depth = 0
        self._pending: list[Change] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several changes: listeners hear each distinct change once, at the end."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                pending, self._pending = self._pending, []
                seen: set[Change] = set()
                for change in pending:
                    if change not in seen:
                        seen.add(change)
                        self._dispatch(change)

    def _notify(self, change: Change) -> None:
        if self._batch_depth:
            self._pending.append(change)
        else:
            self._dispatch(change)

    def _dispatch(self, change: Change) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("session listener %r failed on %s", listener, change)


class Subscription:
    """A listener's link to at most one observable at a time (a view switching sessions)."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._unsubscribe: Callable[[], None] | None = None

    def follow(self, observable: Observable | None) -> None:
        """Stop listening to the previous observable, then listen to this one (None: nothing)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if observable is not None:
            self._unsubscribe = observable.subscribe(self._listener)
