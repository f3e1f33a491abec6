"""Hand calls from background threads to the UI thread without touching Qt in those threads.

Why not simply emit Qt signals from the worker thread? With PySide6 6.12 on Python 3.11,
emitting a signal from a non-Qt-main thread corrupts reference counts (the process aborts with
"deallocating None/True" after a few thousand emissions, whatever the signal's arguments and
whether the slot is decorated; see PYSIDE-3124). So background threads only put callables into a
thread-safe queue, and a timer on the UI thread drains it and runs them there, where emitting
signals is safe. The timer ticks fast while work is under way and slowly when idle.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

FAST_MS = 15
IDLE_MS = 500
_IDLE_AFTER = 40
"""Empty drains in a row (about 0.6 s at FAST_MS) before the timer slows down."""


class ThreadBridge(QObject):
    """``post(fn, *args)`` from any thread; ``fn(*args)`` then runs on the UI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple]] = queue.SimpleQueue()
        self._empty = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.drain)
        self._timer.start(IDLE_MS)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Thread-safe: queue ``fn(*args)`` for the UI thread (no Qt call happens here)."""
        self._calls.put((fn, args))

    def wake(self) -> None:
        """Tick fast for a while (call from the UI thread when starting background work)."""
        self._empty = 0
        if self._timer.interval() != FAST_MS:
            self._timer.setInterval(FAST_MS)

    def drain(self) -> int:
        """Run everything posted so far; returns how many calls ran."""
        ran = 0
        while True:
            try:
                fn, args = self._calls.get_nowait()
            except queue.Empty:
                break
            ran += 1
            try:
                fn(*args)
            except Exception:
                log.exception("a call handed to the UI thread failed: %r", fn)
        if ran:
            self.wake()
        else:
            self._empty += 1
            if self._empty >= _IDLE_AFTER and self._timer.interval() != IDLE_MS:
                self._timer.setInterval(IDLE_MS)
        return ran

    def stop(self) -> None:
        self._timer.stop()
