"""``stylealigned-desktop``: start the window.

Start-up stays light (no torch, no diffusers): the engine is imported by the worker thread
when the first job runs. The Qt event loop runs under qasync, so asyncio code can share it.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

from .. import __version__

_STARTED = time.perf_counter()

# One name for the desktop integration: the .desktop file (io.github.stylealigned.Desktop.desktop),
# the AppStream id, the icon, the Wayland app id and the X11 WM_CLASS instance (StartupWMClass).
APP_ID = "io.github.stylealigned.Desktop"


def _setup_logging() -> Path | None:
    from ..paths import data_dir

    try:
        folder = data_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "desktop.log"
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def identify(app) -> None:
    """Name, version, icon and desktop-file name of the application (desktops match the window
    to io.github.stylealigned.Desktop.desktop by it)."""
    from PySide6.QtGui import QIcon

    from ..paths import resource

    app.setApplicationName("StyleAligned Desktop")
    app.setOrganizationName("StyleAligned")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(QIcon(str(resource("app", f"{APP_ID}.svg"))))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stylealigned-desktop",
                                     description="StyleAligned Desktop: sets of pictures in one "
                                                 "shared style.")
    parser.add_argument("session", nargs="?", help="a session folder (.stylealigned) to open")
    parser.add_argument("--model", help="use this model (hub id, folder, .safetensors or tiny) "
                                        "and remember it")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--quit-after-show", action="store_true",
                        help=argparse.SUPPRESS)  # start-up timing and smoke tests: print, then quit
    parser.add_argument("--generate-and-quit", action="store_true",
                        help=argparse.SUPPRESS)  # the frozen build's smoke: one set, then quit
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the desktop app; returns the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log_file = _setup_logging()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .support import DesktopConfig, apply_theme, follow_system

    os.environ.setdefault("RESOURCE_NAME", APP_ID)  # X11 WM_CLASS instance, read by xcb
    app = QApplication.instance() or QApplication([sys.argv[0]])
    identify(app)
    apply_theme(app)
    follow_system(app)

    config = DesktopConfig.load()
    if args.model:
        config.model = args.model
    window = open_window(config, log_file)
    window.show()

    def start() -> None:
        if args.session:
            window.set_session_from_path(Path(args.session))
        else:
            window.startup()

    if args.quit_after_show:
        app.processEvents()
        print(f"window shown after {time.perf_counter() - _STARTED:.2f} s "
              f"(torch loaded: {'torch' in sys.modules})", flush=True)
        if args.session:  # the frozen build's smoke test: the session folder opens
            window.set_session_from_path(Path(args.session))
            print(f"session: {window.session.title} ({len(window.session.panels)} panels)",
                  flush=True)
            window.sessions.close_session()
        window.worker.shutdown(2.0)
        return 0
    QTimer.singleShot(0, start)
    if args.generate_and_quit:
        QTimer.singleShot(0, lambda: _generate_then_quit(window, app))
    code = _run(app)
    window.worker.finish(timeout=30.0)  # the window is gone; a cancelled step ends cleanly
    return code


def _generate_then_quit(window, app) -> None:
    """Press Generate (its menu action) on the opened session; when the job ends, print how and
    quit: exit code 0 once the set is made and filed, 1 otherwise."""
    from .threads import JobState

    def ended(job) -> None:
        if job.state is JobState.finished:
            print(f"set made: {job.output}", flush=True)
        else:
            print(f"set {job.state.name}: {window.banner_text.text()}", flush=True)
        app.exit(0 if job.state is JobState.finished else 1)

    window.worker.job_ended.connect(ended)
    window.generate_action.trigger()
    if not window.runs.plans:  # refused before a job was queued (no panels, no model...)
        print(f"set not started: {window.banner_text.text()}", flush=True)
        app.exit(1)


def open_window(config, log_file: Path | None):
    """The main window, every unexpected exception of which goes to the log (with its
    traceback) and to the window's red banner as one line (not only to stderr)."""
    from .support import install_exception_hook
    from .window import MainWindow

    window = MainWindow(config)
    install_exception_hook(lambda text: window.show_message(text, True), log_file)
    return window


def _run(app) -> int:
    """The event loop: qasync's asyncio loop on top of Qt's (plain Qt if qasync is missing)."""
    try:
        import asyncio

        import qasync
    except ImportError:
        return app.exec()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return int(loop.run_forever())  # what app.exec() returned: the code given to app.exit()


if __name__ == "__main__":
    raise SystemExit(main())
