"""File → Export → the storyboard's deliverables: the storyboard PDF, the animatic, the editor's
timeline (with the shot list) and a Storyboarder project, made from the session by the Qt-free
``export`` package (the same functions ``stylealigned export`` uses).

Each asks its options in a small dialog that opens with the choices made last time (kept in the
desktop config under ``deliverables``), then where to write. The animatic is encoded in a
thread of its own behind a progress dialog whose Cancel stops it (nothing is left behind).
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QProgressDialog

from ...export.animatic import AnimaticOptions, write_animatic
from ...export.board import Board, Cancelled, ExportError, board_from_session
from ...export.choices import choices, from_choices
from ...export.pdf import PdfOptions, write_pdf
from ...export.storyboarder import StoryboarderOptions, write_storyboarder
from ...export.timeline import TimelineOptions, write_otio, write_shot_list
from ..dialogs import (
    AnimaticOptionsDialog,
    PdfOptionsDialog,
    StoryboarderOptionsDialog,
    TimelineOptionsDialog,
)
from ..threads import ThreadBridge
from .host import Host

NO_PANELS = "Nothing to deliver yet: add panels first"
NO_PICTURES = "Nothing to deliver yet: generate first"


class DeliverController(QObject):
    def __init__(self, host: Host, parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self._bridge = ThreadBridge(self)
        self.animatic_job: threading.Thread | None = None
        self.progress: QProgressDialog | None = None
        self._cancel = threading.Event()

    # ----- shared steps -------------------------------------------------------------------------
    def _board(self, need_pictures: bool) -> Board | None:
        session = self.host.session
        if session is None or not session.panels:
            self.host.show_message(NO_PANELS, True)
            return None
        board = board_from_session(session)
        if need_pictures and not any(p.picture for p in board.panels):
            self.host.show_message(NO_PICTURES, True)
            return None
        return board

    def _options(self, kind: str, cls, dialog_class, options=None):
        """The options: given (a script, a test), else asked with last time's as the start;
        None when the dialog is cancelled. What was chosen is remembered."""
        if options is None:
            remembered = from_choices(cls, self.host.config.deliverables.get(kind))
            dialog = dialog_class(remembered, self.host)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            options = dialog.options()
        self.host.config.deliverables = {**self.host.config.deliverables, kind: choices(options)}
        self.host.save_config()
        return options

    def _target(self, title: str, suffix: str, filter_: str, target: str | None) -> Path | None:
        if target:
            return Path(target)
        name = f"{self.host.session.title}{suffix}"
        suggested = str(Path(self.host.config.export_folder or Path.home()) / name)
        chosen, _ = QFileDialog.getSaveFileName(self.host, title, suggested, filter_)
        return Path(chosen) if chosen else None

    def _done(self, written: list[Path], warnings: list[str] = ()) -> None:
        self.host.config.export_folder = str(written[0].parent)
        self.host.clear_problem("export")
        text = f"Exported {', '.join(p.name for p in written)}"
        self.host.show_message(f"{text} ({'; '.join(warnings)})" if warnings else text,
                               bool(warnings), "export" if warnings else "")

    def _failed(self, what: str, error: Exception) -> None:
        self.host.show_message(f"Could not export {what}: {error}", True, "export")

    # ----- the deliverables ---------------------------------------------------------------------
    def export_storyboard_pdf(self, target: str | None = None,
                              options: PdfOptions | None = None) -> Path | None:
        board = self._board(need_pictures=False)
        if board is None:
            return None
        options = self._options("pdf", PdfOptions, PdfOptionsDialog, options)
        path = options and self._target("Export the storyboard PDF", ".pdf", "PDF (*.pdf)", target)
        if not path:
            return None
        try:
            warnings = write_pdf(board, path, options)
        except (ExportError, OSError) as error:
            self._failed("the storyboard PDF", error)
            return None
        self._done([path], warnings)
        return path

    def export_timeline(self, target: str | None = None,
                        options: TimelineOptions | None = None) -> list[Path]:
        board = self._board(need_pictures=True)
        if board is None:
            return []
        options = self._options("timeline", TimelineOptions, TimelineOptionsDialog, options)
        path = options and self._target("Export the editor's timeline", ".otio",
                                        "OpenTimelineIO (*.otio)", target)
        if not path:
            return []
        try:
            written = [write_otio(board, path, options.fps)]
            if options.shot_list:
                written.append(write_shot_list(board, path.with_suffix(".csv"), options.fps))
        except (ExportError, OSError) as error:
            self._failed("the timeline", error)
            return []
        self._done(written)
        return written

    def export_storyboarder(self, folder: str | None = None,
                            options: StoryboarderOptions | None = None) -> Path | None:
        board = self._board(need_pictures=True)
        if board is None:
            return None
        options = self._options("storyboarder", StoryboarderOptions, StoryboarderOptionsDialog, options)
        if options is None:
            return None
        if folder is None:
            parent = QFileDialog.getExistingDirectory(
                self.host, "Export a Storyboarder project into a folder (a new folder is made there)",
                self.host.config.export_folder or "")
            if not parent:
                return None
            folder = str(Path(parent) / self.host.session.title)
        try:
            path = write_storyboarder(board, folder, options.fps)
        except (ExportError, OSError) as error:
            self._failed("the Storyboarder project", error)
            return None
        self._done([path])
        return path

    def export_animatic(self, target: str | None = None,
                        options: AnimaticOptions | None = None) -> bool:
        """Start the animatic (True: started); it finishes in its thread."""
        if self.animatic_job is not None:
            self.host.show_message("An animatic is being exported already", True)
            return False
        board = self._board(need_pictures=True)
        if board is None:
            return False
        options = self._options("animatic", AnimaticOptions, AnimaticOptionsDialog, options)
        path = options and self._target("Export the animatic", ".mp4", "MP4 video (*.mp4)", target)
        if not path:
            return False
        self._cancel = threading.Event()
        self.progress = QProgressDialog("Encoding the animatic…", "Cancel", 0, 0, self.host)
        self.progress.setWindowTitle("Animatic")
        self.progress.setWindowModality(Qt.WindowModality.WindowModal)
        self.progress.setMinimumDuration(300)
        self.progress.canceled.connect(self._cancel.set)
        self.animatic_job = threading.Thread(
            target=self._encode, args=(board, path, options), name="stylealigned-animatic", daemon=True)
        self.animatic_job.start()
        self._bridge.wake()
        return True

    def cancel_animatic(self) -> None:
        self._cancel.set()

    def _encode(self, board: Board, path: Path, options: AnimaticOptions) -> None:
        """In the animatic's thread: Qt is reached only through the bridge."""
        try:
            written, error = write_animatic(board, path, options, self._posted_progress, self._cancel), None
        except Exception as exc:  # handed to the UI thread, which words it
            written, error = [], exc
        self._bridge.post(self._encoded, written, error)

    def _posted_progress(self, done: int, total: int) -> None:
        self._bridge.post(self._show_progress, done, total)

    def _show_progress(self, done: int, total: int) -> None:
        if self.progress is not None and not self._cancel.is_set():
            self.progress.setMaximum(total)
            self.progress.setValue(min(done, total - 1))  # the dialog closes itself at the end

    def _encoded(self, written: list[Path], error: Exception | None) -> None:
        self.animatic_job = None
        if self.progress is not None:
            self.progress.reset()
            self.progress.deleteLater()
            self.progress = None
        if isinstance(error, Cancelled):
            self.host.show_message("Animatic cancelled")
        elif error is not None:
            self._failed("the animatic", error)
        else:
            self._done(written)

    def wait(self, msecs: int = 60000) -> bool:
        """Deliver the animatic thread's results until it is done (tests, closing)."""
        import time

        deadline = time.monotonic() + msecs / 1000
        while self.animatic_job is not None and time.monotonic() < deadline:
            if not self._bridge.drain():
                time.sleep(0.01)
        return self.animatic_job is None
