"""Where pictures are made: the one call a front end (window, CLI) makes to get a set.

``Engine`` (``generator.py``, this computer) implements it; a client of a picture server can
implement the same call and report the same events. Import-light: no torch here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from .events import Event, RunResult
from .request import SetRequest


class PictureMaker(Protocol):
    """Makes the pictures of ``request``, reporting ``events`` through ``on_event``.

    Returns the run's result, or None when ``cancel`` was set (then ``Cancelled`` was reported).
    A maker may also have ``warm_up()`` (load its libraries ahead of the first request).
    """

    def generate(
        self, request: SetRequest, on_event: Callable[[Event], None], cancel: threading.Event
    ) -> RunResult | None: ...


PictureMakerFactory = Callable[[], PictureMaker]
"""Builds a maker; called in the thread that will use it (the window's worker thread)."""


def this_computer() -> PictureMaker:
    """The embedded engine: pictures are made on this computer."""
    from .memory import importing_libraries
    from .native_libraries import load_without_the_gil

    with importing_libraries():
        load_without_the_gil()  # before the generator imports torch: other threads keep running
        from .generator import Engine

    return Engine()
