"""A small thread pool for slow file work (decoding thumbnails, checking dropped pictures).

Results come back to the UI thread through a :class:`~.bridge.ThreadBridge`: pool threads never
emit Qt signals. The engine has its own thread (``worker.py``); this pool never runs torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject

from .bridge import ThreadBridge

log = logging.getLogger(__name__)

Done = Callable[[Any, BaseException | None], None]
"""``on_done(result, error)`` on the UI thread: ``error`` is None when ``fn`` returned."""


class BackgroundPool(QObject):
    """``submit(fn, *args, on_done=...)``: ``fn`` runs in a pool thread, ``on_done`` on the UI."""

    def __init__(self, parent: QObject | None = None, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="stylealigned-files")
        self._bridge = ThreadBridge(self)
        self._pending = 0

    @property
    def pending(self) -> int:
        """Submitted calls whose ``on_done`` has not run yet."""
        return self._pending

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Done | None = None) -> None:
        """Run ``fn(*args)`` in a pool thread, then ``on_done(result, error)`` on this thread."""
        self._pending += 1
        self._bridge.wake()
        self._pool.submit(self._run, fn, args, on_done)

    def _run(self, fn: Callable[..., Any], args: tuple, on_done: Done | None) -> None:
        """In a pool thread."""
        try:
            result, error = fn(*args), None
        except Exception as exc:  # handed to on_done: the caller words it for the user
            result, error = None, exc
        self._bridge.post(self._deliver, on_done, result, error)

    def _deliver(self, on_done: Done | None, result: Any, error: BaseException | None) -> None:
        self._pending -= 1
        if error is not None and on_done is None:
            log.warning("background work failed: %r", error)
        if on_done is not None:
            on_done(result, error)

    def drain(self) -> int:
        """Deliver the results that are ready now; how many were delivered."""
        return self._bridge.drain()

    def wait(self, msecs: int = 5000, until: Callable[[], bool] | None = None) -> bool:
        """Deliver results until ``until()`` holds (default: nothing pending) or time is up."""
        done = until or (lambda: self._pending == 0)
        deadline = time.monotonic() + msecs / 1000
        while not done() and time.monotonic() < deadline:
            if not self._bridge.drain():
                time.sleep(0.005)
        return done()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._bridge.stop()
