"""The main window: style and gallery, storyboard, live preview grid, settings, history.

The window holds no generation logic: it asks the session for a ``RunPlan`` (an immutable
``SetRequest`` plus where to file the results), hands the request to the engine worker, shows
the worker's events, and files the finished run back into the session. The session autosaves
a moment after every change.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engine import events as ev
from ..session import observer, store
from ..session.errors import MissingFilesError, SessionError, SessionLoadError
from ..session.history import REFERENCE_FILE, RunPlan, RunRecord, panel_file_name
from ..session.model import Session
from .config import DesktopConfig
from .controls import SettingsPanel, StylePanel
from .export import (
    SheetItem,
    default_title,
    export_contact_sheet_pdf,
    export_contact_sheet_png,
    export_pictures,
)
from .gallery import ReferenceGallery
from .history import HistoryView, run_title
from .previews import REFERENCE, ImageViewer, PreviewGrid
from .qimage import pil_to_qimage
from .scoring import ConsistencyOutcome, dino_missing, dino_source, score_pictures
from .storyboard import StoryboardView
from .theme import icon
from .thumbnails import ThumbnailLoader
from .worker import EngineWorker, Job, JobState, Task, WorkerEvent, default_engine_factory

log = logging.getLogger(__name__)

APP_TITLE = "StyleAligned Desktop"
GRID_IMAGE = 640
"""Pictures in the grid are decoded at most this large (the full size opens on click)."""
CONTROL_THUMB = 160
DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"  # engine.control's default (torch-free copy)
WARM_UP_DELAY_MS = 1500
"""After start-up, the worker imports torch and diffusers once the window has been shown."""


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60}:{seconds % 60:02d} min"


def write_run(plan: RunPlan, result: ev.RunResult) -> Path:
    """Write a finished run's folder (runs in the worker thread: PNG encoding is slow)."""
    from ..engine.runfolder import write_run_folder

    return write_run_folder(plan.folder, plan.request, result, plan.style_text)


def make_control_map(path: str, mode: str, low: int, high: int, width: int, height: int,
                     depth_model: str) -> QImage:
    """The control map of a panel's picture at the set's size, shrunk to a thumbnail.

    Runs in the worker thread: engine.control may import torch (depth).
    """
    from ..engine.control import ControlSettings, preprocess

    settings = ControlSettings(width=width, height=height, canny_low=low, canny_high=high,
                               depth_model=depth_model)
    image = preprocess(path, mode, settings)
    image.thumbnail((CONTROL_THUMB, CONTROL_THUMB))
    return pil_to_qimage(image)


class RunBar(QFrame):
    """Generate / Cancel, the progress bar with step count and time left, the queue."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 2)
        self.generate_button = QPushButton(icon("generate", "#1a1a1a"), "Generate")
        self.generate_button.setObjectName("GenerateButton")
        self.generate_button.setToolTip("Generate every panel in one shared style (Ctrl+Enter)")
        self.generate_button.setIconSize(QSize(16, 16))
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.setObjectName("CancelButton")
        self.cancel_button.setToolTip("Stop the running generation (Esc)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setMinimumWidth(140)
        self.queue_label = QLabel("")
        self.queue_label.setObjectName("Hint")
        self.tiny_label = QLabel("tiny model: its pictures are noise")
        self.tiny_label.setObjectName("TinyWarning")
        self.tiny_label.setToolTip("The built-in tiny model has random weights. Choose a real "
                                   "SDXL model (Settings → Model) to make art.")
        layout.addWidget(self.generate_button)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.progress, 1)
        layout.addWidget(self.queue_label)


class MainWindow(QMainWindow):
    """See the module docstring. ``engine_factory`` builds the engine in the worker thread."""

    def __init__(self, config: DesktopConfig | None = None, engine_factory=default_engine_factory,
                 parent=None) -> None:
        super().__init__(parent)
        self.config = config or DesktopConfig.load()
        self.session: Session | None = None
        self.autosaver = None
        self._unsubscribe = None
        self.plans: dict[int, tuple[RunPlan, Session]] = {}
        self.viewing_run: str | None = None
        self._step_started: float | None = None
        self._first_step: int | None = None
        self._closing = False
        self.worker = EngineWorker(engine_factory, self)
        self.thumbnails = ThumbnailLoader(self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setSingleShot(True)
        self.autosave_timer.timeout.connect(self._autosave_due)

        self.setWindowTitle(APP_TITLE)
        self.setDockNestingEnabled(True)
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self.statusBar().addPermanentWidget(self.run_bar.tiny_label)
        self.statusBar().showMessage("Welcome. Describe a style, add panels, press Generate.")

        self.worker.event.connect(self._on_worker_event)
        self.worker.previews_ready.connect(self._on_previews)
        self.worker.job_started.connect(self._on_job_started)
        self.worker.job_ended.connect(self._on_job_ended)
        self.worker.job_queued.connect(lambda *_: self._update_run_state())
        self._restore_layout()
        self._update_run_state()

    # ================================================================ construction
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.setSpacing(4)
        self.run_bar = RunBar()
        self.run_bar.generate_button.clicked.connect(self.generate)
        self.run_bar.cancel_button.clicked.connect(self.cancel)
        layout.addWidget(self.run_bar)

        self.banner = QFrame()
        self.banner.setObjectName("ErrorBannerFrame")
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(0, 0, 0, 0)
        self.banner_text = QLabel("")
        self.banner_text.setObjectName("ErrorBanner")
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setIcon(icon("close"))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.banner.hide)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(close)
        self.banner.hide()
        layout.addWidget(self.banner)

        self.viewing_bar = QFrame()
        viewing = QHBoxLayout(self.viewing_bar)
        viewing.setContentsMargins(6, 2, 6, 2)
        self.viewing_label = QLabel("")
        self.viewing_restore = QPushButton(icon("restore"), "Restore its settings and seeds")
        self.viewing_restore.clicked.connect(lambda: self.restore_run(self.viewing_run))
        self.viewing_back = QPushButton("Back to the storyboard")
        self.viewing_back.clicked.connect(lambda: self.show_run(None))
        viewing.addWidget(self.viewing_label, 1)
        viewing.addWidget(self.viewing_restore)
        viewing.addWidget(self.viewing_back)
        self.viewing_bar.hide()
        layout.addWidget(self.viewing_bar)

        self.grid = PreviewGrid()
        self.grid.view_requested.connect(self.view_picture)
        self.grid.save_requested.connect(self.save_picture)
        self.grid.copy_requested.connect(self.copy_picture)
        self.grid.use_as_reference_requested.connect(self.use_as_reference)
        self.grid.reroll_requested.connect(self.reroll)
        layout.addWidget(self.grid, 1)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area, scroll: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        if scroll:
            holder = QScrollArea()
            holder.setWidgetResizable(True)
            holder.setFrameShape(QFrame.Shape.NoFrame)
            holder.setWidget(widget)
            widget = holder
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        style_box = QWidget()
        style_layout = QVBoxLayout(style_box)
        style_layout.setContentsMargins(6, 4, 6, 6)
        self.style_panel = StylePanel()
        self.style_panel.message.connect(self.show_message)
        self.gallery = ReferenceGallery(self.thumbnails)
        self.gallery.message.connect(self.show_message)
        style_layout.addWidget(self.style_panel)
        style_layout.addWidget(self.gallery, 1)
        self.style_dock = self._dock("Style and references", "StyleDock", style_box, left)

        board = QWidget()
        board_layout = QVBoxLayout(board)
        board_layout.setContentsMargins(6, 4, 6, 6)
        self.storyboard = StoryboardView(pool=self.thumbnails.pool)
        self.storyboard.message.connect(self.show_message)
        self.storyboard.reroll_requested.connect(self.reroll)
        self.storyboard.control_map_wanted.connect(self._compute_control_map)
        board_layout.addWidget(self.storyboard)
        self.storyboard_dock = self._dock("Storyboard", "StoryboardDock", board, left)
        self.splitDockWidget(self.style_dock, self.storyboard_dock, Qt.Orientation.Vertical)

        settings_box = QWidget()
        settings_layout = QVBoxLayout(settings_box)
        settings_layout.setContentsMargins(6, 4, 6, 6)
        self.settings_panel = SettingsPanel()
        self.settings_panel.changed.connect(self._settings_edited)
        self.settings_panel.problem.connect(lambda text: self.show_message(text, True))
        self.settings_panel.model_change_requested.connect(lambda: self.choose_model())
        self.settings_panel.set_app_model(self.config.model)
        self.settings_panel.set_dino_source(self.config.dino_model)
        self.settings_panel.dino_source_changed.connect(self.set_dino_source)
        settings_layout.addWidget(self.settings_panel)
        self.settings_dock = self._dock("Settings", "SettingsDock", settings_box, right,
                                        scroll=True)

        self.history = HistoryView(self.thumbnails)
        self.history.run_selected.connect(self.show_run)
        self.history.restore_requested.connect(self.restore_run)
        self.history.delete_requested.connect(self.delete_run)
        self.history.consistency_help_requested.connect(self.explain_consistency)
        history_box = QWidget()
        history_layout = QVBoxLayout(history_box)
        history_layout.setContentsMargins(6, 4, 6, 6)
        history_layout.addWidget(self.history)
        self.history_dock = self._dock("History", "HistoryDock", history_box, right)
        self.tabifyDockWidget(self.settings_dock, self.history_dock)
        self.settings_dock.raise_()
        self.resizeDocks([self.style_dock, self.settings_dock], [400, 340],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.style_dock, self.storyboard_dock], [330, 470],
                         Qt.Orientation.Vertical)

    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        key = QKeySequence.StandardKey
        self.new_action = self._action("&New session", self.new_session, key.New, "new")
        self.open_action = self._action("&Open session…", self.open_session_dialog, key.Open, "open")
        self.save_action = self._action("&Save", self.save, key.Save, "save")
        self.save_as_action = self._action("Save &as…", self.save_as, key.SaveAs)
        self.quit_action = self._action("&Quit", self.close, key.Quit)
        self.generate_action = self._action(
            "&Generate", self.generate, ["Ctrl+Return", "Ctrl+Enter"], "generate",
            "Generate every panel in one shared style")
        self.cancel_action = self._action("&Cancel", self.cancel, "Esc", "cancel",
                                          "Stop the running generation")
        self.cancel_all_action = self._action("Cancel &all (and the waiting ones)",
                                              self.worker.cancel_all, "Shift+Esc")
        self.new_panel_action = self._action("&New panel", self.storyboard.add_panel,
                                             "Ctrl+Shift+N", "add")
        self.duplicate_panel_action = self._action("&Duplicate panel",
                                                   self.storyboard.duplicate_current, "Ctrl+J",
                                                   "duplicate")
        self.reroll_action = self._action("&Re-roll selected panel", self.reroll_current,
                                          "Ctrl+R", "reroll")
        self.paste_action = self._action("&Paste reference picture", self.gallery.paste,
                                         "Ctrl+Shift+V", "paste")
        self.add_pictures_action = self._action("Add reference &pictures…",
                                                self.gallery.choose_files, None, "add")
        self.model_action = self._action("&Model…", lambda: self.choose_model(), None, "model")
        self.export_png_action = self._action("Contact sheet as &PNG…", self.export_png)
        self.export_pdf_action = self._action("Contact sheet as P&DF…", self.export_pdf)
        self.export_pictures_action = self._action("Pictures to a &folder…",
                                                   self.export_pictures_dialog)
        self.import_prompts_action = self._action("&Import prompts…", self.storyboard.import_text)
        self.export_prompts_action = self._action("E&xport prompts…", self.storyboard.export_text)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addAction(self.new_action)
        file.addAction(self.open_action)
        self.recent_menu = file.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        file.addAction(self.save_action)
        file.addAction(self.save_as_action)
        file.addSeparator()
        export = file.addMenu(icon("export"), "&Export")
        export.addAction(self.export_png_action)
        export.addAction(self.export_pdf_action)
        export.addAction(self.export_pictures_action)
        file.addSeparator()
        file.addAction(self.quit_action)
        edit = bar.addMenu("&Edit")
        edit.addAction(self.paste_action)
        edit.addAction(self.add_pictures_action)
        board = bar.addMenu("&Storyboard")
        board.addAction(self.new_panel_action)
        board.addAction(self.duplicate_panel_action)
        board.addAction(self.reroll_action)
        board.addSeparator()
        board.addAction(self.import_prompts_action)
        board.addAction(self.export_prompts_action)
        run = bar.addMenu("&Run")
        run.addAction(self.generate_action)
        run.addAction(self.cancel_action)
        run.addAction(self.cancel_all_action)
        settings = bar.addMenu("Se&ttings")
        settings.addAction(self.model_action)
        view = bar.addMenu("&View")
        for dock in (self.style_dock, self.storyboard_dock, self.settings_dock, self.history_dock):
            view.addAction(dock.toggleViewAction())

    # ================================================================ messages
    def show_message(self, text: str, problem: bool = False) -> None:
        """Status bar text; problems also go into the banner above the pictures."""
        self.statusBar().showMessage(text, 15000 if problem else 8000)
        if problem:
            self.banner_text.setText(text)
            self.banner.show()

    def ask(self, title: str, text: str, buttons: list[str], default: str | None = None,
            detail: str = "") -> str:
        """A modal question; returns the label of the chosen button (tests replace this)."""
        box = QMessageBox(self)
        box.setWindowTitle(title)
        box.setText(text)
        if detail:
            box.setInformativeText(detail)
        made = {}
        for label in buttons:
            role = (QMessageBox.ButtonRole.RejectRole if label in ("Cancel", "Not now")
                    else QMessageBox.ButtonRole.AcceptRole)
            made[box.addButton(label, role)] = label
        if default:
            for button, label in made.items():
                if label == default:
                    box.setDefaultButton(button)
        box.exec()
        return made.get(box.clickedButton(), buttons[-1])

    # ================================================================ sessions
    def startup(self) -> None:
        """Offer to restore work after a crash, else reopen the last session; pick a model."""
        restored = False
        try:
            recoverable = store.list_recoverable()
        except OSError:
            recoverable = []
        if recoverable:
            entry = recoverable[0]
            others = (f"\n\n({len(recoverable) - 1} older unsaved session(s) are kept for later.)"
                      if len(recoverable) > 1 else "")
            choice = self.ask(
                "Restore unsaved work?",
                "StyleAligned Desktop did not close properly last time. Restore the unsaved "
                "session?",
                ["Restore", "Discard", "Not now"], default="Restore",
                detail=entry.summary + others)
            if choice == "Restore" and entry.error is None:
                try:
                    self.set_session(store.recover_session(entry))
                    restored = True
                    self.show_message("Restored the unsaved session. Use Save As to keep it "
                                      "under a name.")
                except SessionError as exc:
                    self.show_message(str(exc), True)
            elif choice == "Discard":
                store.discard_recoverable(entry)
        if not restored and self.config.last_session:
            last = Path(self.config.last_session)
            if (last / "session.json").is_file():
                self.open_session(last, quiet_missing=False)
        if self.session is None:
            self.set_session(Session())
        if not self.config.model:
            QTimer.singleShot(0, lambda: self.choose_model(first_run=True))
        QTimer.singleShot(WARM_UP_DELAY_MS, self.warm_up)
        QTimer.singleShot(WARM_UP_DELAY_MS, self.check_consistency_model)

    def set_session_from_path(self, folder: Path) -> None:
        """Start with the session at ``folder`` (from the command line)."""
        self.open_session(Path(folder))
        if self.session is None:
            self.set_session(Session())
        if not self.config.model:
            QTimer.singleShot(0, lambda: self.choose_model(first_run=True))
        QTimer.singleShot(WARM_UP_DELAY_MS, self.warm_up)
        QTimer.singleShot(WARM_UP_DELAY_MS, self.check_consistency_model)

    def warm_up(self) -> None:
        """Load the generator's libraries in the worker while the artist reads the window."""
        if self._closing or self.worker.engine_loaded or self.worker.busy:
            return
        self.worker.warm_up(on_done=lambda task: task.error and log.warning(
            "warming up the generator failed: %s", task.error))

    def set_session(self, session: Session) -> None:
        """Make ``session`` the window's document (the previous one is flushed and closed)."""
        self._close_session()
        self.session = session
        self._unsubscribe = session.subscribe(self._on_session_change)
        from ..session.autosave import Autosaver

        self.autosaver = Autosaver(
            session, delay=1.0, max_delay=10.0,
            schedule=lambda seconds: self.autosave_timer.start(max(0, round(seconds * 1000))),
            on_error=lambda exc: self.show_message(f"Autosave failed: {exc}", True))
        for widget in (self.style_panel, self.gallery, self.storyboard, self.history):
            widget.set_session(session)
        self.settings_panel.set_settings(session.settings)
        self.settings_panel.set_picture_reference(session.active_reference is not None)
        self.viewing_run = None
        self.viewing_bar.hide()
        self.banner.hide()
        self.grid.clear()
        self.refresh_grid()
        if not session.untitled:
            self.config.last_session = str(session.folder)
            self._save_config()
        self._update_title()

    def _close_session(self) -> None:
        if self.session is None:
            return
        if self.autosaver is not None:
            try:
                self.autosaver.flush()
            except Exception as exc:  # never lose the window over a failed last write
                log.warning("last autosave failed: %s", exc)
            self.autosaver.close()
            self.autosaver = None
        self.autosave_timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for widget in (self.style_panel, self.gallery, self.storyboard, self.history):
            widget.set_session(None)
        self.session.close()
        self.session = None

    def _autosave_due(self) -> None:
        if self.autosaver is not None:
            self.autosaver.poll()

    def _on_session_change(self, change: observer.Change) -> None:
        kind = change.kind
        if kind == observer.SETTINGS:
            self.settings_panel.set_settings(self.session.settings)
            self._update_run_state()
        if kind in (observer.STYLE, observer.REFERENCES):
            self.settings_panel.set_picture_reference(self.session.active_reference is not None)
        if kind in (observer.PANELS, observer.PANEL, observer.HISTORY, observer.STYLE) and \
                self.viewing_run is None:
            self.refresh_grid()
        if kind == observer.HISTORY and self.viewing_run is not None:
            try:
                self.session.run(self.viewing_run)
            except SessionError:
                self.show_run(None)
        self._update_title()

    def _update_title(self) -> None:
        if self.session is None:
            self.setWindowTitle(APP_TITLE)
            return
        where = "" if self.session.untitled else f" ({self.session.folder.parent})"
        self.setWindowTitle(f"{self.session.title}{where} — {APP_TITLE}")

    def _untitled_has_work(self) -> bool:
        s = self.session
        return bool(s and s.untitled and (s.panels or s.references or s.history
                                          or s.style.text.strip()))

    def _settle_untitled(self, closing: str) -> bool:
        """Before leaving an untitled session with work in it: save it, drop it, or stay.

        Returns False when the user chose to stay.
        """
        if not self._untitled_has_work():
            if self.session is not None and self.session.untitled:
                self._drop_autosaver()
                store.discard_untitled(self.session)
            return True
        choice = self.ask("Keep this session?",
                          f"The session is not saved under a name yet. Save it before {closing}?",
                          ["Save…", "Don't save", "Cancel"], default="Save…")
        if choice == "Cancel":
            return False
        if choice == "Don't save":
            self._drop_autosaver()
            store.discard_untitled(self.session)
            return True
        return self.save_as()

    def _drop_autosaver(self) -> None:
        """Stop autosaving (the session is about to be thrown away)."""
        if self.autosaver is not None:
            self.autosaver.close()
            self.autosaver = None
        self.autosave_timer.stop()

    def _stop_jobs(self, what: str) -> bool:
        if not self.worker.busy:
            return True
        choice = self.ask("A generation is running",
                          f"Stop the running generation and {what}?",
                          ["Stop it", "Cancel"], default="Cancel")
        if choice != "Stop it":
            return False
        self.worker.cancel_all()
        for job_id in list(self.plans):
            self.plans.pop(job_id)
        return True

    def new_session(self) -> None:
        if not self._stop_jobs("start a new session") or not self._settle_untitled(
                "starting a new one"):
            return
        self.set_session(Session())
        self.show_message("New session")

    def open_session_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a session folder (…​.stylealigned)", self.config.open_folder or "")
        if folder:
            self.open_session(Path(folder))

    def open_session(self, folder: Path, quiet_missing: bool = False) -> bool:
        """Open a session folder; a session that cannot be loaded is reported, never changed."""
        if self.session is not None and Path(folder).absolute() == self.session.folder:
            return True
        if not self._stop_jobs("open another session") or not self._settle_untitled(
                "opening another"):
            return False
        try:
            session = store.load_session(folder)
        except MissingFilesError as exc:
            choice = "Open anyway" if quiet_missing else self.ask(
                "Pictures are missing", str(exc), ["Open anyway", "Cancel"], default="Cancel",
                detail="Opening it anyway keeps the session; the panels or references whose "
                       "pictures are gone need new ones.")
            if choice != "Open anyway":
                self.show_message(str(exc), True)
                return False
            try:
                session = store.load_session(folder, allow_missing=True)
            except SessionError as again:
                self._load_failed(folder, again)
                return False
        except SessionError as exc:
            self._load_failed(folder, exc)
            return False
        self.config.open_folder = str(Path(folder).parent)
        self.set_session(session)
        self.show_message(f"Opened {session.title}")
        return True

    def _load_failed(self, folder: Path, exc: Exception) -> None:
        message = str(exc)
        if not isinstance(exc, SessionLoadError):
            message = f"Cannot open the session {folder}: {exc}"
        self.show_message(message + " The folder was left untouched.", True)
        if self.config.last_session == str(folder):
            self.config.last_session = ""
            self._save_config()
        if self.session is None:
            self.set_session(Session())

    def save(self) -> bool:
        if self.session is None:
            return False
        if self.session.untitled:
            return self.save_as()
        try:
            store.save_session(self.session)
        except SessionError as exc:
            self.show_message(str(exc), True)
            return False
        self.show_message(f"Saved {self.session.folder}")
        return True

    def save_as(self, folder: str | Path | None = None) -> bool:
        if self.session is None:
            return False
        if folder is None:
            suggested = str(Path(self.config.open_folder or Path.home()) / (
                "My storyboard" if self.session.untitled else self.session.title + " copy"))
            folder, _ = QFileDialog.getSaveFileName(
                self, "Save the session as (a folder is made)", suggested,
                "StyleAligned session (*.stylealigned)")
            if not folder:
                return False
        try:
            store.save_session_as(self.session, folder)
        except SessionError as exc:
            self.show_message(str(exc), True)
            return False
        self.config.last_session = str(self.session.folder)
        self.config.open_folder = str(self.session.folder.parent)
        self._save_config()
        self._update_title()
        self.show_message(f"Saved as {self.session.folder}")
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = store.recent_sessions()
        if not recent:
            action = self.recent_menu.addAction("(none yet)")
            action.setEnabled(False)
            return
        for folder in recent:
            self.recent_menu.addAction(folder.name, lambda f=folder: self.open_session(f))

    # ================================================================ model
    def app_model(self) -> str:
        return self.config.model

    def choose_model(self, first_run: bool = False) -> bool:
        from .models_dialog import ModelDialog

        current = (self.session.settings.model if self.session else "") or self.config.model
        dialog = ModelDialog(current, self, first_run=first_run)
        if not dialog.exec():
            if first_run:
                self.show_message("No model chosen yet: Settings → Model… when you are ready.")
            return False
        self.set_model(dialog.source())
        return True

    def set_model(self, source: str) -> None:
        """Remember ``source`` as the app's model (and the session's, if it names one)."""
        self.config.model = source
        self._save_config()
        if self.session is not None and self.session.settings.model:
            self.session.update_settings(model=source)
        self.settings_panel.set_app_model(source)
        self._update_run_state()
        self.show_message(f"Model: {source}")

    def _effective_model(self) -> str:
        return (self.session.settings.model if self.session else "") or self.config.model

    # ================================================================ generation
    def _settings_edited(self, settings) -> None:
        if self.session is None:
            return
        old = self.session.settings
        changes = {name: getattr(settings, name) for name in settings.__dataclass_fields__
                   if getattr(settings, name) != getattr(old, name)}
        try:
            self.session.update_settings(**changes)
        except SessionError as exc:
            self.show_message(str(exc), True)
            self.settings_panel.set_settings(self.session.settings)

    def generate(self) -> None:
        self._start(None)

    def reroll(self, index: int) -> None:
        self._start(index)

    def reroll_current(self) -> None:
        index = self.storyboard.current_index()
        if index is not None:
            self.reroll(index)

    def _start(self, reroll: int | None) -> None:
        if self.session is None:
            return
        if not self._effective_model() and not self.choose_model(first_run=True):
            return
        try:
            if reroll is None:
                plan = self.session.prepare_generate(default_model=self.config.model)
            else:
                plan = self.session.prepare_reroll(reroll, default_model=self.config.model)
        except SessionError as exc:
            self.show_message(str(exc), True)
            return
        self.banner.hide()
        label = "Generate" if reroll is None else f"Re-roll panel {reroll + 1}"
        job = self.worker.submit(plan.request, label,
                                 after_finish=lambda result, p=plan: write_run(p, result))
        self.plans[job.id] = (plan, self.session)
        if self.viewing_run is not None:
            self.show_run(None)
        if self.worker.current is not None and self.worker.current is not job:
            self.show_message(f"{label} waits for the running job")
        self._update_run_state()

    def cancel(self) -> None:
        if self.worker.current is not None:
            self.worker.cancel()
            self.run_bar.progress.setFormat("Cancelling…")

    def _plan_of(self, job: Job) -> RunPlan | None:
        entry = self.plans.get(job.id)
        return entry[0] if entry and entry[1] is self.session else None

    def _tile_index(self, plan: RunPlan, index: int | None) -> int | None | bool:
        """The grid tile of a request index: the reference, a current panel, or False if gone."""
        if index is None:
            return REFERENCE
        try:
            return self.session.panel_index(plan.panel_ids[index])
        except (SessionError, IndexError):
            return False

    def _on_job_started(self, job: Job) -> None:
        plan = self._plan_of(job)
        self._step_started = None
        self._first_step = None
        if plan is not None:
            if self.viewing_run is not None:
                self.show_run(None)
            self.grid.set_state(REFERENCE, "waiting")
            for index in plan.selected:
                tile = self._tile_index(plan, index)
                if tile is not False:
                    self.grid.set_state(tile, "waiting")
                    card = self.storyboard.cards.get(plan.panel_ids[index])
                    if card is not None:
                        card.set_status("· drawing")
        self.run_bar.progress.setValue(0)
        self.run_bar.progress.setFormat(f"{job.label}: starting…")
        self._update_run_state()

    def _on_job_ended(self, job: Job) -> None:
        entry = self.plans.pop(job.id, None)
        if entry is not None:
            for panel_id in entry[0].panel_ids:
                card = self.storyboard.cards.get(panel_id)
                if card is not None:
                    card.set_status("")
        if job.state is JobState.finished:
            self.run_bar.progress.setValue(1000)
            elapsed = time.monotonic() - (job.started or time.monotonic())
            self.run_bar.progress.setFormat(f"{job.label}: done in {format_seconds(elapsed)}")
        elif job.state is JobState.cancelled:
            self.run_bar.progress.setValue(0)
            self.run_bar.progress.setFormat(f"{job.label}: cancelled")
        elif job.state is JobState.failed:
            self.run_bar.progress.setValue(0)
            self.run_bar.progress.setFormat(f"{job.label}: failed")
        if job.state is not JobState.finished and entry is not None and entry[1] is self.session:
            self.refresh_grid()  # put the last finished pictures back
        self._update_run_state()

    def _on_worker_event(self, wevent: WorkerEvent) -> None:
        job, event = wevent.job, wevent.event
        plan = self._plan_of(job)
        bar = self.run_bar.progress
        if isinstance(event, ev.Loading):
            bar.setValue(int(100 * event.progress))
            bar.setFormat(f"Loading the model: {event.message or ''} {event.progress:.0%}".strip())
        elif isinstance(event, ev.Inverting):
            bar.setValue(int(1000 * event.step / max(1, event.total)))
            bar.setFormat(f"Reading the reference picture: {event.step}/{event.total}")
        elif isinstance(event, ev.Step):
            self._show_step(job, event)
        elif isinstance(event, ev.PanelDone):
            if plan is not None and wevent.image is not None:
                tile = self._tile_index(plan, event.index)
                if tile is not False:
                    self.grid.show_final(tile, wevent.image, "final")
                    self.grid.tiles[tile].path = None  # the file is written when the run ends
        elif isinstance(event, ev.Notice):
            self.show_message(event.message)
        elif isinstance(event, ev.Finished):
            self._finished(job, plan, wevent)
        elif isinstance(event, ev.Cancelled):
            self.show_message(f"{job.label} cancelled")
        elif isinstance(event, ev.Failed):
            self.show_message(f"{job.label} failed: {event.message}", True)

    def _show_step(self, job: Job, event: ev.Step) -> None:
        now = time.monotonic()
        if self._first_step is None:
            self._first_step, self._step_started = event.step, now
        text = f"Step {event.step}/{event.total}"
        done = event.step - self._first_step
        if done > 0 and self._step_started is not None:
            per_step = (now - self._step_started) / done
            text += f" · about {format_seconds(per_step * (event.total - event.step))} left"
        self.run_bar.progress.setValue(int(1000 * event.step / max(1, event.total)))
        self.run_bar.progress.setFormat(f"{job.label}: {text}")

    def _on_previews(self) -> None:
        previews = self.worker.take_previews()
        job = self.worker.current
        if job is None:
            return
        plan = self._plan_of(job)
        if plan is None or self.viewing_run is not None:
            return
        total = plan.request.sampling.steps
        for index, (job_id, step, image) in previews.items():
            if job_id != job.id:
                continue
            tile = self._tile_index(plan, index)
            if tile is not False:
                self.grid.show_preview(tile, image, step, total)

    def _finished(self, job: Job, plan: RunPlan | None, wevent: WorkerEvent) -> None:
        entry = self.plans.get(job.id)
        if entry is None:
            return
        plan, session = entry
        try:
            record = session.record_run(plan, "finished")
        except SessionError as exc:
            self.show_message(f"The run finished but could not be filed: {exc}", True)
            return
        if session is not self.session:
            return
        for index, image in wevent.images.items():
            tile = self._tile_index(plan, index)
            if tile is False:
                continue
            name = REFERENCE_FILE if index is None else panel_file_name(index)
            self.grid.show_final(tile, image, "new")
            self.grid.tiles[tile].path = plan.folder / name
        self.refresh_grid()
        self.history.refresh()
        made = len(record.generated)
        self.show_message(f"{job.label}: {made} panel(s) ready · {run_title(record)}")
        self.score_run(record.id)

    # ================================================================ consistency scores
    def _dino(self) -> str:
        return dino_source(self.config.dino_model)

    def score_run(self, run_id: str) -> bool:
        """Compute a finished run's set consistency in the worker and file it in the session.

        Only with the DINO model on this computer (else the history shows how to get it);
        a failure becomes the history's hint, never a dialog. False when there is nothing to
        score (not finished, fewer than 2 pictures).
        """
        session = self.session
        if session is None or self._closing:
            return False
        record = session.run(run_id)
        paths = [session.path(relative) for _, relative in record.images()]
        if record.status != "finished" or len(paths) < 2:
            return False
        source = self._dino()

        def done(task: Task) -> None:
            if session is not self.session:
                return  # another session by now: its history is not shown
            if task.error is not None:
                log.warning("scoring run %s failed: %s", run_id, task.error)
                self.history.set_consistency_problem(
                    f"The consistency score of the run {run_id} could not be computed: "
                    f"{task.error}", missing_model=False)
                return
            outcome: ConsistencyOutcome = task.result
            if outcome.missing is not None:
                self.history.set_consistency_problem(outcome.missing)
                return
            self.history.set_consistency_problem(None)
            with contextlib.suppress(SessionError):  # the run was deleted meanwhile
                session.set_run_consistency(run_id, outcome.score)

        self.worker.run_task(lambda: score_pictures(paths, source), done)
        return True

    def check_consistency_model(self) -> None:
        """Find out in the worker whether the DINO model is here; the history's hint says."""
        if self._closing:
            return
        source = self._dino()

        def done(task: Task) -> None:
            if source != self._dino():
                return  # the setting changed again meanwhile
            if task.error is not None:
                self.history.set_consistency_problem(task.error, missing_model=False)
            else:
                self.history.set_consistency_problem(task.result)

        self.worker.run_task(lambda: dino_missing(source), done)

    def set_dino_source(self, source: str) -> None:
        """Use ``source`` (hub id or folder; empty: the default) for consistency scores."""
        self.config.dino_model = source.strip()
        self._save_config()
        self.settings_panel.set_dino_source(self.config.dino_model)
        self.check_consistency_model()
        self.show_message(f"Consistency scores use {self._dino()}")

    def explain_consistency(self) -> None:
        """The help behind the history's hint: what is missing, and a way to point to it."""
        problem = self.history.consistency_problem
        if problem is None:
            return
        choice = self.ask("Consistency scores", problem, ["Choose a folder…", "Close"],
                          default="Close")
        if choice == "Choose a folder…":
            self.settings_dock.raise_()
            self.settings_panel.advanced_section.toggle.setChecked(True)
            self.settings_panel.choose_dino_folder()

    def _update_run_state(self) -> None:
        running = self.worker.current is not None
        waiting = len(self.worker.pending)
        self.run_bar.cancel_button.setEnabled(running)
        self.cancel_action.setEnabled(running)
        self.run_bar.queue_label.setText(f"{waiting} waiting" if waiting else "")
        self.run_bar.generate_button.setText("Generate" if not running else "Queue another")
        self.run_bar.tiny_label.setVisible(self._effective_model() == "tiny")
        if not running and not waiting and self.run_bar.progress.format() == "Ready":
            self.run_bar.progress.setValue(0)

    # ================================================================ the grid
    def _latest_images(self) -> tuple[Path | None, dict[str, tuple[Path, RunRecord]]]:
        """The newest reference picture and, per panel id, its newest picture and run."""
        reference = None
        panels: dict[str, tuple[Path, RunRecord]] = {}
        for record in self.session.history:
            if record.status != "finished":
                continue
            if record.reference_file:
                reference = self.session.path(f"{record.folder}/{record.reference_file}")
            for run_panel in record.generated:
                panels[run_panel.panel_id] = (
                    self.session.path(f"{record.folder}/{run_panel.file}"), record)
        return reference, panels

    def refresh_grid(self) -> None:
        """Show the storyboard's newest pictures (or the history run being viewed)."""
        if self.session is None:
            return
        if self.viewing_run is not None:
            self._show_record(self.session.run(self.viewing_run))
            return
        panels = self.session.panels
        style = self.session.style
        active = self.session.active_reference
        reference_title = "Reference (picture)" if active else "Reference"
        reference_prompt = (active.caption or active.name) if active else (
            ", ".join(t for t in (style.reference_prompt.strip(), style.text.strip()) if t))
        self.grid.set_panels([p.prompt for p in panels], reference_title, reference_prompt)
        running = self._running_plan()
        reference, latest = self._latest_images()
        if running is None or not running.selected:
            self._set_tile_file(REFERENCE, reference, "")
        for index, panel in enumerate(panels):
            if running is not None and panel.id in running.panel_ids and \
                    running.panel_ids.index(panel.id) in running.selected:
                continue  # live previews own this tile
            found = latest.get(panel.id)
            if found is None:
                self.grid.tiles[index].path = None
                self.grid.tiles[index].clear("not generated yet")
                continue
            path, record = found
            run_panel = record.panel(panel.id)
            outdated = run_panel is not None and (run_panel.seed != panel.seed
                                                  or run_panel.subject != panel.prompt.strip())
            self._set_tile_file(index, path, "outdated" if outdated else "")

    def _running_plan(self) -> RunPlan | None:
        job = self.worker.current
        return None if job is None else self._plan_of(job)

    def _set_tile_file(self, index, path: Path | None, state: str) -> None:
        tile = self.grid.tiles.get(index)
        if tile is None:
            return
        if path is None or not path.is_file():
            tile.path = None
            tile.clear("not generated yet")
            return
        if getattr(tile, "path", None) != path or tile.image() is None:
            tile.path = path
            image = self.thumbnails.request(path, GRID_IMAGE)
            if image is not None and not image.isNull():
                tile.set_final(image, state)
            else:
                tile.final = True
                tile.set_state("loading…")
        else:
            tile.set_state(state)
        tile.setProperty("stale", state == "outdated")
        tile.setToolTip("The prompt or seed changed since this picture was made"
                        if state == "outdated" else "")

    def _thumbnail_ready(self, path: str, size: int, image: QImage) -> None:
        if size != GRID_IMAGE or image.isNull():
            return
        for tile in self.grid.tiles.values():
            if getattr(tile, "path", None) is not None and str(tile.path) == path:
                state = tile.state.text()
                tile.set_final(image, "" if state == "loading…" else state)

    def show_run(self, run_id: str | None) -> None:
        """Show a history run's pictures in the grid (None: back to the storyboard)."""
        if self.session is None:
            return
        if run_id is not None and self.worker.current is not None and \
                self._plan_of(self.worker.current) is not None:
            self.show_message("A generation is running: its live previews stay in view")
            self.history.clear_selection()
            return
        self.viewing_run = run_id
        if run_id is None:
            self.viewing_bar.hide()
            self.history.clear_selection()
            self.grid.clear()
            for tile in self.grid.tiles.values():
                tile.path = None
            self.refresh_grid()
            return
        record = self.session.run(run_id)
        self.viewing_label.setText(f"Showing the run of {run_title(record)}")
        self.viewing_bar.show()
        self._show_record(record)

    def _show_record(self, record: RunRecord) -> None:
        prompts = [p.subject or p.prompt for p in record.panels]
        reference_prompt = (record.style.caption if record.style.kind == "picture"
                            else record.style.prompt)
        self.grid.set_panels(prompts, "Reference", reference_prompt)
        files = dict(record.images())
        for tile_index, tile in self.grid.tiles.items():
            relative = files.get(tile_index)
            if relative is None:
                tile.path = None
                tile.clear("not in this run")
            else:
                self._set_tile_file(tile_index, self.session.path(relative), "")

    def restore_run(self, run_id: str | None) -> None:
        if self.session is None or run_id is None:
            return
        try:
            notes = self.session.restore_run(run_id, settings=True, seeds=True)
        except SessionError as exc:
            self.show_message(str(exc), True)
            return
        self.show_run(None)
        text = "Restored the run's settings, style and seeds (seeds locked)"
        self.show_message(text + (": " + "; ".join(notes) if notes else ""), bool(notes))

    def delete_run(self, run_id: str) -> None:
        if self.session is None:
            return
        choice = self.ask("Delete this run?", "Delete the run and its pictures from the "
                          "session folder?", ["Delete", "Cancel"], default="Cancel")
        if choice == "Delete":
            self.session.remove_run(run_id)
            if self.viewing_run == run_id:
                self.show_run(None)

    # ================================================================ per-picture actions
    def _tile_path(self, index) -> Path | None:
        tile = self.grid.tiles.get(index)
        path = getattr(tile, "path", None) if tile is not None else None
        return path if path is not None and Path(path).is_file() else None

    def _tile_name(self, index) -> str:
        return "Reference" if index is REFERENCE else f"Panel {index + 1}"

    def view_picture(self, index) -> None:
        path = self._tile_path(index)
        image = QImage(str(path)) if path is not None else self.grid.tiles[index].image()
        if image is None or image.isNull():
            return
        title = self._tile_name(index)
        if path is None:
            title += " (preview)"
        viewer = ImageViewer(image, f"{title} — {APP_TITLE}", self)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.show()

    def save_picture(self, index, target: str | None = None) -> Path | None:
        path = self._tile_path(index)
        if path is None:
            self.show_message("That picture is not finished yet", True)
            return None
        if target is None:
            stem = "reference" if index is REFERENCE else f"panel-{index + 1:02d}"
            suggested = str(Path(self.config.export_folder or Path.home()) / f"{stem}.png")
            target, _ = QFileDialog.getSaveFileName(
                self, "Save picture as", suggested,
                "PNG with its parameters (*.png);;JPEG (*.jpg *.jpeg);;WebP (*.webp)")
            if not target:
                return None
        target_path = Path(target)
        try:
            if target_path.suffix.lower() in ("", ".png"):
                target_path = target_path.with_suffix(".png")
                shutil.copyfile(path, target_path)  # keeps the PNG's parameters chunk
            elif not QImage(str(path)).save(str(target_path)):
                raise OSError(f"cannot write {target_path.name}")
        except OSError as exc:
            self.show_message(f"Could not save {target_path}: {exc}", True)
            return None
        self.config.export_folder = str(target_path.parent)
        self.show_message(f"Saved {target_path}")
        return target_path

    def copy_picture(self, index) -> None:
        path = self._tile_path(index)
        if path is None:
            return
        QGuiApplication.clipboard().setImage(QImage(str(path)))
        self.show_message(f"Copied {self._tile_name(index).lower()} to the clipboard")

    def use_as_reference(self, index) -> None:
        path = self._tile_path(index)
        if path is None or self.session is None:
            return
        try:
            reference = self.session.add_reference(path)
            caption = ""
            if index is not REFERENCE and self.viewing_run is None:
                caption = self.session.panels[index].prompt.strip()
            if caption and not reference.caption:
                self.session.set_reference_caption(reference.id, caption)
            self.session.set_active_reference(reference.id)
        except SessionError as exc:
            self.show_message(str(exc), True)
            return
        self.show_message(f"{self._tile_name(index)} is now the style reference")

    # ================================================================ control maps
    def _compute_control_map(self, panel_id: str) -> None:
        request = self.storyboard.control_request(panel_id)
        if request is None:
            return
        key, path, mode, low, high, width, height = request
        # the engine's choice (generator.py): the session's estimator, else tiny's for tiny
        depth_model = (self.session.settings.depth_model.strip()
                       or ("tiny" if self._effective_model() == "tiny" else DEFAULT_DEPTH_MODEL))
        card = self.storyboard.cards.get(panel_id)
        if card is not None:
            card.control_note.setText(f"{mode} map: computing…")
            if card.control_thumb.image is None:
                picture = self.thumbnails.load_now(path, CONTROL_THUMB)
                if not picture.isNull():
                    card.control_thumb.set_image(picture)

        def done(task: Task) -> None:
            if task.error is not None:
                note = f"{mode} map not available yet: {task.error}"
                self.storyboard.set_control_map(panel_id, key, None, note)
            else:
                self.storyboard.set_control_map(panel_id, key, task.result, f"{mode} map")

        self.worker.run_task(lambda: make_control_map(path, mode, low, high, width, height,
                                                      depth_model), done)

    # ================================================================ export
    def shown_items(self) -> list[SheetItem]:
        """The finished pictures in the grid, in order, as export items."""
        items = []
        for index in [REFERENCE, *sorted(i for i in self.grid.tiles if i is not REFERENCE)]:
            path = self._tile_path(index)
            if path is None:
                continue
            tile = self.grid.tiles[index]
            name = "reference.png" if index is REFERENCE else f"panel-{index + 1:02d}.png"
            items.append(SheetItem(self._tile_name(index), tile.prompt.text(), path, name))
        return items

    def _export_target(self, title: str, name: str, filter_: str) -> str | None:
        suggested = str(Path(self.config.export_folder or Path.home()) / name)
        target, _ = QFileDialog.getSaveFileName(self, title, suggested, filter_)
        return target or None

    def export_png(self, target: str | None = None) -> Path | None:
        items = self.shown_items()
        if not items:
            self.show_message("Nothing to export yet: generate first", True)
            return None
        target = target or self._export_target("Export the contact sheet", "contact-sheet.png",
                                               "PNG (*.png)")
        if not target:
            return None
        try:
            path = export_contact_sheet_png(items, target)
        except (OSError, ValueError) as exc:
            self.show_message(f"Could not export the contact sheet: {exc}", True)
            return None
        self.config.export_folder = str(path.parent)
        self.show_message(f"Exported {path}")
        return path

    def export_pdf(self, target: str | None = None) -> Path | None:
        items = self.shown_items()
        if not items:
            self.show_message("Nothing to export yet: generate first", True)
            return None
        target = target or self._export_target("Export the contact sheet as PDF",
                                               "contact-sheet.pdf", "PDF (*.pdf)")
        if not target:
            return None
        style = self.session.style.text if self.session else ""
        try:
            path = export_contact_sheet_pdf(items, target, default_title(self.session.title),
                                            f"Style: {style}" if style else "")
        except (OSError, ValueError) as exc:
            self.show_message(f"Could not export the PDF: {exc}", True)
            return None
        self.config.export_folder = str(path.parent)
        self.show_message(f"Exported {path}")
        return path

    def export_pictures_dialog(self, folder: str | None = None) -> list[Path]:
        items = self.shown_items()
        if not items:
            self.show_message("Nothing to export yet: generate first", True)
            return []
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Export the pictures into a folder",
                                                      self.config.export_folder or "")
            if not folder:
                return []
        clashes = [i.name for i in items if (Path(folder) / i.name).exists()]
        if clashes and self.ask("Replace files?", f"{len(clashes)} file(s) with these names "
                                f"exist in {folder} ({', '.join(clashes[:3])}…). Replace them?",
                                ["Replace", "Cancel"], default="Cancel") != "Replace":
            return []
        try:
            written = export_pictures(items, folder)
        except OSError as exc:
            self.show_message(f"Could not export the pictures: {exc}", True)
            return []
        self.config.export_folder = str(folder)
        self.show_message(f"Exported {len(written)} picture(s) with their parameters to {folder}")
        return written

    # ================================================================ window state
    def _restore_layout(self) -> None:
        if self.config.geometry:
            self.restoreGeometry(QByteArray.fromHex(self.config.geometry.encode()))
        else:
            screen = QGuiApplication.primaryScreen().availableGeometry()
            self.resize(min(1500, int(screen.width() * 0.9)), min(940, int(screen.height() * 0.9)))
        if self.config.window_state:
            self.restoreState(QByteArray.fromHex(self.config.window_state.encode()))

    def _save_config(self) -> None:
        try:
            self.config.save()
        except OSError as exc:
            log.warning("could not save the desktop settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt)
        if not self._stop_jobs("quit") or not self._settle_untitled("quitting"):
            event.ignore()
            return
        self._closing = True
        self.config.geometry = bytes(self.saveGeometry().toHex()).decode()
        self.config.window_state = bytes(self.saveState().toHex()).decode()
        if self.session is not None and not self.session.untitled:
            self.config.last_session = str(self.session.folder)
        elif self.session is not None:
            self.config.last_session = ""
        self._save_config()
        self._close_session()
        self.worker.shutdown(timeout=10.0)
        self.thumbnails.shutdown()
        event.accept()
