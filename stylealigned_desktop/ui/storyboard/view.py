"""The storyboard: a list of panel cards (prompt, seed, control picture) the artist reorders by drag.

The view owns its cards (:mod:`.card`): each signals the edits of its panel and the view makes
them through ``Session`` methods; the list rebuilds from session notifications, keyed by panel
id, so a card keeps its widgets (and the text cursor) while the artist types. Dropping a picture
anywhere on a card makes it the panel's control picture (read and checked in the background
pool, then set with ``Session.set_panel_control_prepared``); its control map is computed in the
engine's worker (see ``control_map_wanted``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ... import prompts_file
from ...session import observer
from ...session.errors import SessionError
from ...session.generation import SDXL_SIDE
from ...session.json_fields import MAX_SEED
from ...session.model import Panel, Session
from ...session.notes import DEFAULT_DURATION, MAX_DURATION, MIN_DURATION
from ...session.pictures import PreparedPicture, prepare_picture, prepare_picture_data
from ..support import (
    PICTURE_FILTER,
    add_menu_command,
    connect_command,
    icon,
    import_error,
    png_bytes,
)
from ..threads import BackgroundPool
from .card import PanelCard
from .panel_list import PanelList

_FAILED = object()
"""What ``StoryboardView._guard`` returns when the session refused a change."""


def short_prompt(prompt: str, width: int = 40) -> str:
    """``prompt`` for a one-line message: cut at a word boundary, with an ellipsis if cut."""
    short = textwrap.shorten(prompt, width, placeholder="…")
    if short == "…":  # its first word alone is longer than ``width``
        short = prompt[: width - 1] + "…"
    return short


class StoryboardView(QWidget):
    """The panel list with add / import / export, bound to a session."""

    message = Signal(str, bool)
    reroll_requested = Signal(int)
    control_map_wanted = Signal(str)
    """A panel id whose control map thumbnail should be (re)computed."""
    control_picture_settled = Signal(str)
    """A panel id whose dropped control picture was set or refused."""

    def __init__(self, parent=None, pool: BackgroundPool | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self._subscription = observer.Subscription(self._on_change)
        self.cards: dict[str, PanelCard] = {}
        self.current_id: str | None = None
        self.pool = pool or BackgroundPool(self)
        """Where dropped control pictures are read and checked (the window shares one)."""
        self._reading: dict[str, tuple[int, str]] = {}
        """Panel id -> (number of its latest control picture being read: the newest wins,
        the card's note before the reading began)."""
        self._reads = 0
        self._showing_board = False  # the default duration box is being filled, not edited
        self._native = SDXL_SIDE  # the model's native side: the cards offer its base's sizes

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._build_top_row())
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.list = PanelList(self.scroll)
        self.list.panel_dropped.connect(self.move_to_drop)
        self.scroll.setWidget(self.list)
        layout.addWidget(self.scroll, 1)
        self.empty_hint = QLabel("No panels yet. Press “Add panel” (Ctrl+Shift+N) and describe "
                                 "what each picture of the set shows.")
        self.empty_hint.setObjectName("Hint")
        self.empty_hint.setWordWrap(True)
        layout.addWidget(self.empty_hint)
        self._add_move_shortcuts()
        QApplication.instance().focusChanged.connect(self._focus_moved)

    def _build_top_row(self) -> QHBoxLayout:
        """The panel count, Add panel, and the ⋯ menu (import or export the prompts as text)."""
        top = QHBoxLayout()
        self.count = QLabel("")
        self.count.setObjectName("Hint")
        top.addWidget(self.count)
        top.addStretch(1)
        self.add_button = QToolButton()
        self.add_button.setIcon(icon("add"))
        self.add_button.setText("Add panel")
        self.add_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.add_button.setToolTip("Add a panel after the selected one (Ctrl+Shift+N)")
        connect_command(self.add_button.clicked, self.add_panel)
        self.more_button = QToolButton()
        self.more_button.setText("⋯")
        self.more_button.setToolTip("Import or export the panel list as text")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.more_button)
        add_menu_command(menu, "Import prompts from a text file…", self.import_text)
        add_menu_command(menu, "Export prompts to a text file…", self.export_text)
        self.more_button.setMenu(menu)
        self.default_duration = QDoubleSpinBox()
        self.default_duration.setRange(MIN_DURATION, MAX_DURATION)
        self.default_duration.setDecimals(1)
        self.default_duration.setSingleStep(0.5)
        self.default_duration.setSuffix(" s")
        self.default_duration.setValue(DEFAULT_DURATION)
        self.default_duration.setToolTip("How long a panel without its own duration is held in "
                                         "the animatic and the timeline")
        self.default_duration.valueChanged.connect(self.set_default_duration)
        for widget in (QLabel("Panels last"), self.default_duration, self.add_button, self.more_button):
            top.addWidget(widget)
        return top

    def _add_move_shortcuts(self) -> None:
        """Alt+Up / Alt+Down move the selected panel."""
        # Ctrl+J (duplicate) is the window's Storyboard menu: one shortcut, one owner (two
        # actions with the same keys are "ambiguous" to Qt, and neither runs)
        for keys, slot in (("Alt+Up", lambda: self.move_current(-1)),
                           ("Alt+Down", lambda: self.move_current(+1))):
            action = self.addAction("")
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            connect_command(action.triggered, slot)

    def _focus_moved(self, _old, new) -> None:
        """Typing in a card selects it, so Ctrl+J, Ctrl+R, Alt+Up act on the card being edited."""
        widget = new
        while widget is not None and not isinstance(widget, PanelCard):
            widget = widget.parentWidget()
        if widget is not None and self.cards.get(widget.panel_id) is widget:  # one of ours
            self.select(widget.panel_id)

    # ----- binding --------------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        self.session = session
        for card in self.cards.values():
            card.deleteLater()
        self.cards.clear()
        self.current_id = None
        self._subscription.follow(session)
        self.rebuild()

    def _on_change(self, change: observer.Change) -> None:
        if change.kind == observer.PANELS:
            self.rebuild()
        elif change.kind == observer.PANEL and change.panel_id in self.cards:
            index = self.session.panel_index(change.panel_id)
            panel = self.session.panels[index]
            card = self.cards[change.panel_id]
            before = card._control_key
            card.update_from(panel, index)
            self._show_notes()
            if panel.control.image and self._control_key(panel) != before:
                self.control_map_wanted.emit(panel.id)
        elif change.kind == observer.BOARD:
            self._show_notes()
        elif change.kind == observer.CHARACTERS:
            for card in self.cards.values():
                card.show_characters(self._character_names())
        elif change.kind == observer.SETTINGS:
            for panel in self.session.panels if self.session else ():
                card = self.cards.get(panel.id)
                if card:
                    card.show_set_size(self._set_size())
                if card and panel.control.image and self._control_key(panel) != card._control_key:
                    self.control_map_wanted.emit(panel.id)

    def set_native_side(self, native: int) -> None:
        """The model in use is trained at ``native`` pixels a side: the cards offer its sizes."""
        self._native = native
        for card in self.cards.values():
            card.show_native_side(native)

    def _character_names(self) -> list[str]:
        return [c.name for c in self.session.characters] if self.session else []

    def _set_size(self) -> tuple[int, int]:
        return self.session.settings.width, self.session.settings.height

    def _control_key(self, panel: Panel) -> tuple:
        settings = self.session.settings
        control = panel.control
        return (control.image, control.mode, control.canny_low, control.canny_high,
                settings.width, settings.height)

    def rebuild(self) -> None:
        panels = self.session.panels if self.session else ()
        wanted = {p.id for p in panels}
        for panel_id in list(self.cards):
            if panel_id not in wanted:
                card = self.cards.pop(panel_id)
                self.list.column.removeWidget(card)
                card.deleteLater()
        for index, panel in enumerate(panels):
            card = self.cards.get(panel.id)
            if card is None:
                card = PanelCard(panel)
                card.clicked.connect(self.select)
                card.edited.connect(lambda pid, changes: self.edit_panel(pid, **changes))
                card.control_edited.connect(
                    lambda pid, changes: self.edit_control(pid, **changes))
                card.notes_edited.connect(lambda pid, changes: self.edit_notes(pid, **changes))
                card.new_seed_requested.connect(self.new_seed)
                card.reroll_requested.connect(
                    lambda pid: self.reroll_requested.emit(self.session.panel_index(pid)))
                card.duplicate_requested.connect(self.duplicate)
                card.delete_requested.connect(self.delete)
                card.control_files_dropped.connect(self.set_control_files)
                card.control_image_dropped.connect(self.set_control_image)
                card.control_choose_requested.connect(self.choose_control)
                card.control_clear_requested.connect(self.clear_control)
                self.cards[panel.id] = card
                if panel.control.image:
                    QTimer.singleShot(0, lambda pid=panel.id: self.control_map_wanted.emit(pid))
            else:
                self.list.column.removeWidget(card)
            self.list.column.insertWidget(index, card)
            card.show_set_size(self._set_size())
            card.show_native_side(self._native)
            card.show_characters(self._character_names())
            card.update_from(panel, index)
        self._show_notes()
        if self.current_id not in self.cards:
            self.current_id = panels[-1].id if panels else None
        self._show_selection()
        self.count.setText(f"{len(panels)} panel{'s' if len(panels) != 1 else ''}"
                           if panels else "")
        self.empty_hint.setVisible(not panels)

    def order(self) -> list[str]:
        """Panel ids in the order the cards are shown."""
        return [card.panel_id for card in self.list.cards()]

    def card_at(self, index: int) -> PanelCard:
        return self.list.cards()[index]

    def select(self, panel_id: str) -> None:
        if panel_id != self.current_id:
            self.current_id = panel_id
            self._show_selection()
            card = self.cards.get(panel_id)
            if card is not None:
                QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(card, 0, 8))

    def _show_selection(self) -> None:
        for panel_id, card in self.cards.items():
            card.set_selected(panel_id == self.current_id)

    def current_index(self) -> int | None:
        if self.session is None or self.current_id is None:
            return None
        try:
            return self.session.panel_index(self.current_id)
        except SessionError:
            return None

    # ----- edits ----------------------------------------------------------------------------
    def _guard(self, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except SessionError as exc:
            self.message.emit(str(exc), True)
            return _FAILED

    def edit_panel(self, panel_id: str, **changes) -> None:
        if self.session is not None:
            self._guard(lambda: self.session.update_panel(self.session.panel_index(panel_id),
                                                          **changes))

    def edit_notes(self, panel_id: str, **changes) -> None:
        if self.session is not None:
            self._guard(lambda: self.session.update_panel_notes(
                self.session.panel_index(panel_id), **changes))

    def set_default_duration(self, seconds: float) -> None:
        if self.session is not None and not self._showing_board:
            self._guard(lambda: self.session.set_default_duration(seconds))

    def _show_notes(self) -> None:
        """Every card's notes with its scene / shot numbers (a panel's set numbers renumber
        the ones after it) and the set's default duration."""
        if self.session is None:
            return
        default = self.session.board.default_duration
        for panel, number in zip(self.session.panels, self.session.panel_numbers()):
            card = self.cards.get(panel.id)
            if card is not None:
                card.notes_editor.show_notes(panel.notes, number, default)
        self._showing_board = True
        try:
            self.default_duration.setValue(default)
        finally:
            self._showing_board = False

    def edit_control(self, panel_id: str, **changes) -> None:
        if self.session is not None:
            self._guard(lambda: self.session.update_panel_control(
                self.session.panel_index(panel_id), **changes))

    def new_seed(self, panel_id: str) -> None:
        import random

        self.edit_panel(panel_id, seed=random.SystemRandom().randint(0, MAX_SEED))

    def add_panel(self) -> None:
        if self.session is None:
            return
        index = self.current_index()
        position = len(self.session.panels) if index is None else index + 1
        panel = self._guard(self.session.add_panel, "", index=position)
        if panel is not _FAILED:
            self.select(panel.id)
            card = self.cards[panel.id]
            card.prompt.setFocus()
            QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(card))

    def duplicate(self, panel_id: str) -> None:
        if self.session is None:
            return
        copy = self._guard(lambda: self.session.duplicate_panel(self.session.panel_index(panel_id)))
        if copy is not _FAILED:
            self.select(copy.id)

    def duplicate_current(self) -> None:
        if self.current_id:
            self.duplicate(self.current_id)

    def delete(self, panel_id: str) -> None:
        if self.session is None:
            return
        index = self.session.panel_index(panel_id)
        removed = self._guard(self.session.remove_panel, index)
        if removed is not _FAILED:
            panels = self.session.panels
            if panels:
                self.select(panels[min(index, len(panels) - 1)].id)
            label = f"“{short_prompt(removed.prompt)}”" if removed.prompt else f"panel {index + 1}"
            self.message.emit(f"Deleted {label}", False)

    def move(self, panel_id: str, to: int) -> None:
        if self.session is not None:
            self._guard(lambda: self.session.move_panel(self.session.panel_index(panel_id), to))

    def move_to_drop(self, panel_id: str, drop_index: int) -> None:
        """Move a dragged panel to the gap ``drop_index`` (0 = before the first card)."""
        if self.session is None:
            return
        current = self.session.panel_index(panel_id)
        to = drop_index - 1 if drop_index > current else drop_index
        self.move(panel_id, max(0, min(to, len(self.session.panels) - 1)))

    def move_current(self, step: int) -> None:
        index = self.current_index()
        if index is None or self.session is None:
            return
        to = index + step
        if 0 <= to < len(self.session.panels):
            self.move(self.current_id, to)
            self.scroll.ensureWidgetVisible(self.cards[self.current_id])

    # ----- control pictures -----------------------------------------------------------------
    def set_control_files(self, panel_id: str, paths: list[str]) -> None:
        if self.session is None:
            return
        if not paths:
            self.message.emit("Only files on this computer can be used as control pictures",
                              True)
            return
        if len(paths) > 1 or Path(paths[0]).is_dir():
            self.message.emit("Drop one picture on a panel to use it as its control picture",
                              True)
            return
        path = Path(paths[0])
        self._read_control(panel_id, path.name, prepare_picture, path)

    def set_control_image(self, panel_id: str, image: QImage) -> None:
        if self.session is None or image.isNull():
            return
        self._read_control(panel_id, "pasted.png", prepare_picture_data, png_bytes(image),
                           "pasted.png")

    @property
    def reading_controls(self) -> bool:
        """Whether a dropped control picture is still being read."""
        return bool(self._reading)

    def _read_control(self, panel_id: str, name: str,
                      prepare: Callable[..., PreparedPicture], *args) -> None:
        """Read and check a control picture in the pool, then give it to the panel."""
        self._reads += 1
        ticket = self._reads
        card = self.cards.get(panel_id)
        note = card.control_note.text() if card is not None else ""
        self._reading[panel_id] = (ticket, self._reading.get(panel_id, (0, note))[1])
        if card is not None:
            card.control_note.setText(f"reading {name}…")
        session = self.session
        self.pool.submit(prepare, *args, on_done=lambda prepared, error: self._control_read(
            session, panel_id, ticket, name, prepared, error))

    def _control_read(self, session: Session, panel_id: str, ticket: int, name: str,
                      prepared: PreparedPicture | None, error: BaseException | None) -> None:
        latest, note = self._reading.get(panel_id, (None, ""))
        if latest != ticket or session is not self.session:
            return  # a newer picture was dropped on this panel, or the session changed
        del self._reading[panel_id]
        card = self.cards.get(panel_id)
        if card is not None:
            card.control_note.setText(note)  # what holds if nothing changes (refused, same)
        if error is not None:
            self.message.emit(import_error(name, error), True)
        elif any(panel.id == panel_id for panel in session.panels):  # not deleted meanwhile
            index = session.panel_index(panel_id)
            if self._guard(session.set_panel_control_prepared, index, prepared) is not _FAILED:
                self.message.emit(f"Panel {index + 1} now follows {name}", False)
        self.control_picture_settled.emit(panel_id)

    def choose_control(self, panel_id: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a control picture", "", PICTURE_FILTER)
        if path:
            self.set_control_files(panel_id, [path])

    def clear_control(self, panel_id: str) -> None:
        if self.session is not None:
            self._guard(lambda: self.session.clear_panel_control_picture(
                self.session.panel_index(panel_id)))

    def control_request(self, panel_id: str) -> tuple | None:
        """(key, picture path, mode, canny low, canny high, width, height) for a map, or None."""
        if self.session is None or panel_id not in self.cards:
            return None
        panel = self.session.panel(panel_id)
        if not panel.control.image:
            return None
        settings = self.session.settings
        return (self._control_key(panel), str(self.session.path(panel.control.image)),
                panel.control.mode, panel.control.canny_low, panel.control.canny_high,
                settings.width, settings.height)

    def set_control_map(self, panel_id: str, key: tuple, image: QImage | None, note: str) -> None:
        """Show a computed control map (or, with ``image`` None, just the note)."""
        card = self.cards.get(panel_id)
        if card is None or self.session is None:
            return
        panel = self.session.panel(panel_id)
        if not panel.control.image or self._control_key(panel) != key:
            return  # stale: the picture or mode changed since
        card._control_key = key
        if image is not None and not image.isNull():
            card.control_thumb.set_image(image)
        card.control_note.setText(note)

    # ----- text import / export -------------------------------------------------------------
    def import_text(self) -> None:
        if self.session is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import prompts (one per line)", "",
                                              "Text files (*.txt);;All files (*)")
        if not path:
            return
        panels = self._guard(prompts_file.import_panels_file, self.session, path)
        if panels is not _FAILED:
            self.message.emit(f"Added {len(panels)} panel(s) from {Path(path).name}", False)

    def export_text(self) -> None:
        if self.session is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export prompts (one per line)",
                                              "storyboard.txt", "Text files (*.txt)")
        if path and self._guard(prompts_file.export_panels_file, self.session, path) is not _FAILED:
            self.message.emit(f"Wrote the prompts to {Path(path).name}", False)
