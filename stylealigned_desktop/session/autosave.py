"""Debounced autosave as plain logic: the GUI's timer drives it, tests drive it with a fake clock.

::

    timer = QTimer(singleShot=True)
    saver = Autosaver(session, schedule=lambda s: timer.start(round(s * 1000)))
    timer.timeout.connect(saver.poll)
    ...
    saver.flush()   # on close
    saver.close()

After each change the save is due ``delay`` seconds later; further changes push it back, but
never beyond ``max_delay`` seconds after the first unsaved change, so continuous typing still
gets saved. Saving happens on the caller's thread (the GUI thread, which owns the session):
no timer thread ever reads the session while the GUI changes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .errors import SessionError
from .model import Session
from .observer import Change
from .store import autosave_session

log = logging.getLogger(__name__)


class Autosaver:
    """Saves ``session`` a moment after it changes.

    ``schedule(seconds)`` is called whenever the autosaver wants :meth:`poll` to run that many
    seconds from now (restart a single-shot timer). ``on_error(exc)`` hears failed saves
    (disk full, folder gone); the save is retried ``retry_delay`` seconds later.
    """

    def __init__(
        self,
        session: Session,
        delay: float = 1.0,
        max_delay: float = 10.0,
        *,
        schedule: Callable[[float], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        save: Callable[[Session], object] = autosave_session,
        clock: Callable[[], float] = time.monotonic,
        retry_delay: float = 5.0,
    ) -> None:
        self.session = session
        self.delay = delay
        self.max_delay = max_delay
        self.retry_delay = retry_delay
        self._schedule = schedule
        self._on_error = on_error
        self._save = save
        self._clock = clock
        self._first_change: float | None = None
        self._due: float | None = None
        self.last_error: Exception | None = None
        self.saves = 0
        self._unsubscribe = session.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        if not change.persistent:
            return
        now = self._clock()
        if self._first_change is None:
            self._first_change = now
        self._due = min(now + self.delay, self._first_change + self.max_delay)
        self._request(self._due - now)

    def _request(self, seconds: float) -> None:
        if self._schedule is not None:
            self._schedule(max(0.0, seconds))

    @property
    def pending(self) -> bool:
        """Whether a save is waiting."""
        return self._due is not None

    def due_in(self) -> float | None:
        """Seconds until the next save is due (0 if overdue), None when nothing waits."""
        return None if self._due is None else max(0.0, self._due - self._clock())

    def poll(self) -> bool:
        """Save if a save is due now. Returns whether it saved."""
        if self._due is None:
            return False
        now = self._clock()
        if now < self._due:
            self._request(self._due - now)  # a timer fired early: ask again
            return False
        return self.flush()

    def flush(self) -> bool:
        """Save now if there are unsaved changes (on close, before running a job...)."""
        self._due = None
        if not self.session.dirty:
            self._first_change = None
            return False
        try:
            self._save(self.session)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the app keeps the session and retries
            self.last_error = exc
            if isinstance(exc, (OSError, SessionError)):
                log.warning("autosave of %s failed: %s", self.session.folder, exc)
            else:
                log.exception("autosave of %s failed unexpectedly", self.session.folder)
            if self._on_error is not None:
                self._on_error(exc)
            self._due = self._clock() + self.retry_delay
            self._request(self.retry_delay)
            return False
        self.last_error = None
        self._first_change = None
        self.saves += 1
        return True

    def close(self) -> None:
        """Stop listening to the session (call :meth:`flush` first to keep the last changes)."""
        self._unsubscribe()
        self._due = None
