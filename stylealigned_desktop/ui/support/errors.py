"""Unexpected exceptions in the window's code: the traceback goes to the log file (the one the
user guide asks people to send), and one line to the red banner.

Qt calls Python slots from its event loop; an exception escaping one reaches ``sys.excepthook``
(PySide prints it and goes on), so the hook is where every such exception is caught.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("stylealigned_desktop")


def one_line(exc: BaseException, log_file: Path | None = None) -> str:
    """“Something went wrong: <first line> (<type>). Details are in the log: <file>.”"""
    text = str(exc).strip().splitlines()
    message = f"{text[0]} ({type(exc).__name__})" if text else type(exc).__name__
    where = f": {log_file}" if log_file is not None else ""
    return f"Something went wrong: {message}. Details are in the log{where}."


def install_exception_hook(show: Callable[[str], None],
                           log_file: Path | None = None) -> Callable[[], None]:
    """Log every uncaught exception with its traceback and ``show`` it as one line (UI thread);
    exceptions of other threads are logged. Returns a function that puts the old hooks back."""
    previous, previous_thread = sys.excepthook, threading.excepthook

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        try:
            show(one_line(exc, log_file))
        except Exception:  # the banner must not become a second error
            log.exception("could not show the error")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        log.error("unexpected error in thread %s", getattr(args.thread, "name", "?"),
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook

    def uninstall() -> None:
        sys.excepthook, threading.excepthook = previous, previous_thread

    return uninstall
