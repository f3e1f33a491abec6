"""The main window: it builds the widgets, the docks and the one table of commands, and wires them
to the controllers that do the work (each owns one job and the widgets of that job):

- :class:`~.session_controller.SessionController`: the document (new, open, save, recover, autosave)
- :class:`~.run_controller.RunController`: running sets, the run bar, where pictures are made
- :class:`~.grid_controller.GridController`: what the picture grid shows, history runs, per-picture
  actions
- :class:`~.export_controller.ExportController` (pictures, contact sheets),
  :class:`~.deliver_controller.DeliverController` (the storyboard PDF, animatic, timeline,
  Storyboarder project), :class:`~.consistency_controller.ConsistencyController`,
  :class:`~.control_maps.ControlMapController`

The window holds no generation logic; see ``docs/architecture.md`` for the flow of one run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.hub import DEFAULT_DEPTH_MODEL
from ...engine.maker import PictureMakerFactory, this_computer
from ...session import observer
from ...session.model import Session
from ..dialogs import SERVER, maker_factory
from ..gallery import CharactersPanel, ReferenceGallery
from ..grid import HistoryView, PreviewGrid
from ..settings import SettingsPanel, StylePanel
from ..storyboard import StoryboardView
from ..support import (
    Command,
    DesktopConfig,
    VerticalScroller,
    accept_as_copy,
    accept_pictures,
    connect_command,
    icon,
    make_actions,
    wheel_edits_only_when_focused,
)
from ..threads import ThumbnailLoader
from .consistency_controller import ConsistencyController
from .control_maps import ControlMapController
from .deliver_controller import DeliverController
from .export_controller import ExportController
from .grid_controller import GridController
from .host import APP_TITLE
from .masks_note import show_masks
from .run_bar import RunBar
from .run_controller import RunController
from .session_controller import SessionController

log = logging.getLogger(__name__)

WARM_UP_DELAY_MS = 1500
"""After start-up, the worker imports torch and diffusers once the window has been shown."""

RECENT = "<recent>"
"""In a menu table: the File → Open recent submenu."""

MENUS: tuple[tuple[str, tuple], ...] = (
    ("&File", ("new", "open", RECENT, None, "save", "save_as", None,
               ("&Export", "export", ("export_png", "export_pdf", "export_pictures", None,
                                      "export_storyboard_pdf", "export_animatic",
                                      "export_timeline", "export_storyboarder")),
               None, "quit")),
    ("&Edit", ("undo", "redo", None, "paste", "add_pictures")),
    ("&Storyboard", ("new_panel", "duplicate_panel", "reroll", None, "import_prompts",
                     "export_prompts")),
    ("&Run", ("generate", "cancel", "cancel_all")),
    ("Se&ttings", ("model", "where")),
)
"""Each menu: command names, None for a separator, (title, icon, entries) for a submenu."""


class MainWindow(QMainWindow):
    """See the module docstring. ``engine_factory`` builds the picture maker in the worker."""

    def __init__(self, config: DesktopConfig | None = None,
                 engine_factory: PictureMakerFactory = this_computer, parent=None) -> None:
        super().__init__(parent)
        self.config = config or DesktopConfig.load()
        self.thumbnails = ThumbnailLoader(self)
        self.setWindowTitle(APP_TITLE)
        self.setDockNestingEnabled(True)
        self._build_central()
        self._build_docks()

        if engine_factory is this_computer:  # unless told otherwise: as the settings say
            engine_factory = maker_factory(self.config)
        self.runs = RunController(self, self.run_bar, engine_factory, self)
        self.worker = self.runs.worker
        self.pictures = GridController(self, self.grid, self.history, self.viewing_bar,
                                        self.viewing_label, self.thumbnails,
                                        self.runs.running_plan, self)
        self.runs.grid = self.pictures
        self.sessions = SessionController(self, self.runs.stop_all, self)
        self.exports = ExportController(self, self.pictures.shown_items, self)
        self.deliver = DeliverController(self, self)
        self.scores = ConsistencyController(self, self.worker, self.history, self)
        self.control_maps = ControlMapController(self.storyboard, self.thumbnails, self.worker,
                                                 self._depth_model, self)
        self._wire()
        make_actions(self, self._commands())
        self.sessions.undo.bind(self.undo_action, self.redo_action, self)
        self.runs.running_changed.connect(self.cancel_action.setEnabled)
        self.runs.running_changed.connect(self.cancel_all_action.setEnabled)  # nothing to cancel when idle
        self._build_menus()
        self.statusBar().addPermanentWidget(self.run_bar.tiny_label)
        self.statusBar().showMessage("Welcome. Describe a style, add panels, press Generate.")
        self._restore_layout()
        self.runs.update_state()
        wheel_edits_only_when_focused(self)  # storyboard cards apply it as they are made
        self.setAcceptDrops(True)  # drops that no dock or card takes (see dropEvent)

    @property
    def session(self) -> Session | None:
        return self.sessions.session

    # ================================================================ construction
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 0, 4, 4)
        layout.setSpacing(4)
        self.run_bar = RunBar()
        layout.addWidget(self.run_bar)

        self.banner = QFrame()
        self.banner_topic = ""
        """What the banner's problem is about (a later success of it hides the banner)."""
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
        connect_command(close.clicked, self.banner.hide)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(close)
        self.banner.hide()
        layout.addWidget(self.banner)

        self.viewing_bar = QFrame()
        viewing = QHBoxLayout(self.viewing_bar)
        viewing.setContentsMargins(6, 2, 6, 2)
        self.viewing_label = QLabel("")
        self.viewing_label.setWordWrap(True)  # a long run title must not widen the window
        self.viewing_restore = QPushButton(icon("restore"), "Restore its settings and seeds")
        self.viewing_back = QPushButton("Back to the storyboard")
        viewing.addWidget(self.viewing_label, 1)
        viewing.addWidget(self.viewing_restore)
        viewing.addWidget(self.viewing_back)
        self.viewing_bar.hide()
        layout.addWidget(self.viewing_bar)

        self.grid = PreviewGrid()
        layout.addWidget(self.grid, 1)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area, scroll: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        if scroll:
            widget = VerticalScroller(widget)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    @staticmethod
    def _boxed(*widgets: QWidget) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 4, 6, 6)
        for widget in widgets:
            layout.addWidget(widget, 1 if isinstance(widget, ReferenceGallery) else 0)
        return box

    def _build_docks(self) -> None:
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.style_panel = StylePanel()
        self.gallery = ReferenceGallery(self.thumbnails)
        # scrolls when the window is short: squeezed, the gallery's wrapped hint overlapped it
        self.style_dock = self._dock("Style and references", "StyleDock",
                                     self._boxed(self.style_panel, self.gallery), left,
                                     scroll=True)
        self.storyboard = StoryboardView(pool=self.thumbnails.pool)
        self.storyboard_dock = self._dock("Storyboard", "StoryboardDock",
                                          self._boxed(self.storyboard), left)
        self.splitDockWidget(self.style_dock, self.storyboard_dock, Qt.Orientation.Vertical)
        self.characters = CharactersPanel(self.thumbnails)  # beside the references (spec 13)
        self.characters_dock = self._dock("Characters", "CharactersDock",
                                          self._boxed(self.characters), left, scroll=True)
        self.tabifyDockWidget(self.style_dock, self.characters_dock)
        self.style_dock.raise_()
        self.settings_panel = SettingsPanel()
        self.settings_panel.set_app_model(self.config.model)
        self.settings_panel.set_server(self.config.server_url
                                       if self.config.picture_maker == SERVER else "")
        self.settings_panel.set_dino_source(self.config.dino_model)
        self.settings_dock = self._dock("Settings", "SettingsDock",
                                        self._boxed(self.settings_panel), right, scroll=True)
        self.history = HistoryView(self.thumbnails)
        self.history_dock = self._dock("History", "HistoryDock", self._boxed(self.history), right)
        self.tabifyDockWidget(self.settings_dock, self.history_dock)
        self.settings_dock.raise_()
        self.resizeDocks([self.style_dock, self.settings_dock], [400, 340],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.style_dock, self.storyboard_dock], [330, 470],
                         Qt.Orientation.Vertical)

    def _wire(self) -> None:
        """The signals between widgets and controllers (and between controllers)."""
        for topic, widget in (("style", self.style_panel), ("gallery", self.gallery),
                              ("storyboard", self.storyboard), ("characters", self.characters)):
            # a part's later success (a re-import that worked) replaces its problem
            widget.message.connect(lambda text, problem, topic=topic:
                                   self.show_message(text, problem, topic))
        self.settings_panel.problem.connect(lambda text: self.show_message(text, True))
        self.settings_panel.changed.connect(self._settings_edited)
        self.settings_panel.picture_taken.connect(self._picture_taken)
        connect_command(self.settings_panel.model_change_requested, self.runs.choose_model)
        self.settings_panel.dino_source_changed.connect(self.scores.set_dino_source)
        self.storyboard.reroll_requested.connect(self.runs.reroll)
        self.grid.reroll_requested.connect(self.runs.reroll)  # a tile's button and its menu
        connect_command(self.viewing_restore.clicked, self.pictures.restore_viewed_run)
        connect_command(self.viewing_back.clicked, lambda: self.pictures.show_run(None))
        self.runs.drawing.connect(self._show_drawing)
        self.runs.run_filed.connect(self._run_filed)
        self.runs.model_changed.connect(self.settings_panel.set_app_model)
        self.settings_panel.native_side_changed.connect(self.storyboard.set_native_side)
        self.storyboard.set_native_side(self.settings_panel.set_size.native)  # the model at start
        self.runs.server_changed.connect(self.settings_panel.set_server)
        self.runs.no_gpu.connect(self.settings_panel.set_no_gpu)
        self.sessions.replaced.connect(self._session_replaced)
        self.sessions.changed.connect(self._session_changed)
        connect_command(self.sessions.moved, self.pictures.refresh)
        self.scores.dino_source_changed.connect(self.settings_panel.set_dino_source)
        self.scores.dino_folder_wanted.connect(self._choose_dino_folder)
        self.gallery.list.session_dropped.connect(self.sessions.open_session)

    def _commands(self) -> list[Command]:
        key = QKeySequence.StandardKey
        s, r, board, gallery = self.sessions, self.runs, self.storyboard, self.gallery
        return [
            Command("new", "&New session", s.new_session, key.New, "new"),
            Command("open", "&Open session…", s.open_session_dialog, key.Open, "open"),
            Command("save", "&Save", s.save, key.Save, "save"),
            Command("save_as", "Save &as…", s.save_as, key.SaveAs),
            Command("quit", "&Quit", self.close, key.Quit),
            Command("generate", "&Generate", r.generate, ("Ctrl+Return", "Ctrl+Enter"),
                    "generate", "Generate every panel in one shared style"),
            Command("cancel", "&Cancel", r.cancel, "Esc", "cancel",
                    "Stop the running generation"),
            Command("cancel_all", "Cancel &all (and the waiting ones)", r.cancel_all,
                    "Shift+Esc"),
            Command("new_panel", "&New panel", board.add_panel, "Ctrl+Shift+N", "add"),
            Command("duplicate_panel", "&Duplicate panel", board.duplicate_current, "Ctrl+J",
                    "duplicate"),
            Command("reroll", "&Re-roll selected panel", self._reroll_current, "Ctrl+R",
                    "reroll"),
            Command("undo", "&Undo", s.undo.undo, key.Undo),
            Command("redo", "&Redo", s.undo.redo, ("Ctrl+Shift+Z", "Ctrl+Y")),
            Command("paste", "&Paste reference picture", gallery.paste, "Ctrl+Shift+V", "paste"),
            Command("add_pictures", "Add reference &pictures…", gallery.choose_files, None,
                    "add"),
            Command("model", "&Model…", r.choose_model, None, "model"),
            Command("where", "&Where pictures are made…", r.choose_where, None, None,
                    "This computer, or a server with GPUs"),
            Command("export_png", "Contact sheet as &PNG…", self.exports.export_png),
            Command("export_pdf", "Contact sheet as P&DF…", self.exports.export_pdf),
            Command("export_pictures", "Pictures to a &folder…", self.exports.export_pictures),
            Command("export_storyboard_pdf", "&Storyboard PDF…", self.deliver.export_storyboard_pdf),
            Command("export_animatic", "&Animatic…", self.deliver.export_animatic),
            Command("export_timeline", "&Timeline (OpenTimelineIO) and shot list…",
                    self.deliver.export_timeline),
            Command("export_storyboarder", "Story&boarder project…", self.deliver.export_storyboarder),
            Command("import_prompts", "&Import prompts…", board.import_text),
            Command("export_prompts", "E&xport prompts…", board.export_text),
        ]

    def _build_menus(self) -> None:
        def fill(menu, entries) -> None:
            for entry in entries:
                if entry is None:
                    menu.addSeparator()
                elif entry == RECENT:
                    self.recent_menu = menu.addMenu("Open &recent")
                    self.recent_menu.aboutToShow.connect(self._fill_recent)
                elif isinstance(entry, tuple):
                    title, icon_name, inner = entry
                    fill(menu.addMenu(icon(icon_name), title), inner)
                else:
                    menu.addAction(getattr(self, f"{entry}_action"))

        bar = self.menuBar()
        for title, entries in MENUS:
            fill(bar.addMenu(title), entries)
        view = bar.addMenu("&View")
        for dock in (self.style_dock, self.characters_dock, self.storyboard_dock,
                     self.settings_dock, self.history_dock):
            view.addAction(dock.toggleViewAction())
        self.masks_action = QAction("Show subject &masks", self, checkable=True)  # spec 13
        self.masks_action.toggled.connect(lambda on: show_masks(self.pictures, self, on))
        view.addAction(self.masks_action)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.sessions.recent_sessions()
        if not recent:
            action = self.recent_menu.addAction("(none yet)")
            action.setEnabled(False)
            return
        for folder in recent:
            action = self.recent_menu.addAction(folder.name)
            connect_command(action.triggered, lambda f=folder: self.sessions.open_session(f))

    # ================================================================ messages
    def show_message(self, text: str, problem: bool = False, topic: str = "") -> None:
        """Status bar text; problems also go into the banner above the pictures (see Host).
        A success about a ``topic`` clears the banner's problem about it."""
        self.statusBar().showMessage(text, 15000 if problem else 8000)
        if not problem and topic:
            self.clear_problem(topic)
        if problem:
            self.banner_text.setText(text)
            self.banner_topic = topic
            self.banner.show()

    def clear_problem(self, topic: str) -> None:
        if self.banner_topic == topic:
            self.banner.hide()

    def hide_problem(self) -> None:
        self.banner.hide()

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

    # ================================================================ start-up
    def startup(self) -> None:
        """Offer to restore work after a crash, else reopen the last session; pick a model."""
        self.sessions.restore_or_reopen()
        self._after_start()

    def set_session_from_path(self, folder: Path) -> None:
        """Start with the session at ``folder`` (from the command line)."""
        self.sessions.open_or_new(folder)
        self._after_start()

    def _after_start(self) -> None:
        QTimer.singleShot(0, self.runs.choose_first_model)
        QTimer.singleShot(WARM_UP_DELAY_MS, self.runs.warm_up)
        QTimer.singleShot(WARM_UP_DELAY_MS, self.scores.check_model)

    # ================================================================ wiring
    def _session_replaced(self, session: Session | None) -> None:
        for widget in (self.style_panel, self.gallery, self.characters, self.storyboard,
                       self.history):
            widget.set_session(session)
        if session is None:
            return
        self.settings_panel.set_settings(session.settings)
        self.settings_panel.set_picture_reference(session.style.uses_picture)
        self.banner.hide()
        self.statusBar().clearMessage()  # the last session's news, not this one's
        self.runs.forget_outcome()
        self.pictures.reset()

    def _session_changed(self, change: observer.Change) -> None:
        kind = change.kind
        if kind == observer.SETTINGS:
            self.settings_panel.set_settings(self.session.settings)
            self.runs.update_state()
        if kind in (observer.STYLE, observer.REFERENCES):
            self.settings_panel.set_picture_reference(self.session.style.uses_picture)
        self.pictures.on_session_change(change)
        self.runs.recheck_refusal()

    def _settings_edited(self, settings) -> None:
        if not self.sessions.update_settings(settings) and self.session is not None:
            self.settings_panel.set_settings(self.session.settings)

    def _picture_taken(self, taken) -> None:
        if not self.sessions.take_picture(taken) and self.session is not None:
            self.settings_panel.set_settings(self.session.settings)

    def _reroll_current(self) -> None:
        index = self.storyboard.current_index()
        if index is not None:
            self.runs.reroll(index)

    def _show_drawing(self, panel_ids: list[str], text: str) -> None:
        for panel_id in panel_ids:
            card = self.storyboard.cards.get(panel_id)
            if card is not None:
                card.set_status(text)

    def _run_filed(self, run_id: str) -> None:
        self.history.refresh()
        self.scores.score_run(run_id)

    def _depth_model(self) -> str:
        """The depth estimator the engine uses (generator.py): the session's, else tiny's for tiny."""
        chosen = self.session.settings.depth_model.strip() if self.session else ""
        return chosen or ("tiny" if self.runs.uses_tiny() else DEFAULT_DEPTH_MODEL)

    def _choose_dino_folder(self) -> None:
        self.settings_dock.raise_()
        self.settings_panel.advanced_section.toggle.setChecked(True)
        self.settings_panel.choose_dino_folder()

    # ================================================================ window state
    def _restore_layout(self) -> None:
        if self.config.geometry:
            self.restoreGeometry(QByteArray.fromHex(self.config.geometry.encode()))
        else:
            screen = QGuiApplication.primaryScreen().availableGeometry()
            self.resize(min(1500, int(screen.width() * 0.9)), min(940, int(screen.height() * 0.9)))
        if self.config.window_state:
            self.restoreState(QByteArray.fromHex(self.config.window_state.encode()))

    def save_config(self) -> None:
        try:
            self.config.save()
        except OSError as exc:
            log.warning("could not save the desktop settings: %s", exc)

    # ================================================================ drops
    # What lands anywhere else on the window is taken as if dropped on the reference gallery:
    # a session folder opens, pictures and folders of pictures become references.
    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        accept_pictures(event)

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self.gallery.list.take(event.mimeData()):
            accept_as_copy(event)
        else:
            event.ignore()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt)
        """Quit: the session is saved, then the window goes at once, whatever the worker is
        doing (a running step is cancelled; a warm-up import is not waited for)."""
        if not self.sessions.may_leave("quit", "quitting"):
            event.ignore()
            return
        self.runs.closing = self.scores.closing = True
        self.deliver.cancel_animatic()  # its thread removes the unfinished film
        self.config.geometry = bytes(self.saveGeometry().toHex()).decode()
        self.config.window_state = bytes(self.saveState().toHex()).decode()
        self.sessions.remember_on_quit()
        self.save_config()
        self.sessions.close_session()
        self.hide()
        self.runs.shutdown()
        self.thumbnails.shutdown()
        event.accept()
