"""The Characters list beside the reference gallery (spec section 13): who appears in the
storyboard, what they look like, the words that find them in a picture, their anchors (seeds
with lock and re-roll, or the artist's own design dropped on an anchor), and how strongly the
panels share them.

Every edit is a ``Session`` method (character_edits.py); the panel refills itself from the
session's CHARACTERS notifications, so undo and redo show here as any edit does. A dropped
picture is read and checked in the background pool, then copied into the session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...session import observer
from ...session.characters import CHARACTER_LAYERS, MAX_ANCHORS, Character
from ...session.errors import SessionError
from ...session.model import Session
from ...session.pictures import PreparedPicture, prepare_picture, prepare_picture_data
from ..support import PICTURE_FILTER, connect_command, icon, import_error, png_bytes, small_combo
from ..threads import BackgroundPool, ThumbnailLoader
from .anchor_slot import ANCHOR_THUMB, AnchorSlot


def parse_words(text: str) -> tuple[str, ...]:
    """Subject words as typed: separated by commas or spaces, each once."""
    words: list[str] = []
    for word in text.replace(",", " ").split():
        if word not in words:
            words.append(word)
    return tuple(words)


class CharactersPanel(QWidget):
    """The session's characters: a list, the chosen one's details and anchors, the settings."""

    message = Signal(str, bool)

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent=None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self.current: str | None = None
        self._filling = False
        self._subscription = observer.Subscription(self._on_change)
        self.thumbnails = thumbnails or ThumbnailLoader(self)
        self.pool: BackgroundPool = self.thumbnails.pool
        self.thumbnails.ready.connect(lambda *_: self._show_anchors())
        self.slots: list[AnchorSlot] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._build_title_row())
        self.list = QListWidget()
        self.list.setObjectName("CharacterList")
        self.list.setMaximumHeight(4 * self.list.fontMetrics().height() + 12)
        self.list.currentItemChanged.connect(self._picked)
        layout.addWidget(self.list)
        self.hint = QLabel("Add the characters the panels show; write [Name] in a panel's "
                           "prompt and the character looks the same in every panel.")
        self.hint.setObjectName("Hint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.details = self._build_details()
        layout.addWidget(self.details)
        layout.addLayout(self._build_settings_row())
        layout.addStretch(1)  # a tall dock leaves the room below, not between the rows
        self._fill()

    # ----- construction ---------------------------------------------------------------------
    def _tool(self, name: str, tip: str, slot, text: str = "") -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        if text:
            button.setText(text)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        connect_command(button.clicked, slot)
        return button

    def _build_title_row(self) -> QHBoxLayout:
        top = QHBoxLayout()
        title = QLabel("Characters")
        title.setObjectName("PanelTitle")
        top.addWidget(title)
        top.addStretch(1)
        self.add_button = self._tool("add", "Add a character (then name and describe it)",
                                     self.add_character, "Add character")
        self.remove_button = self._tool("delete", "Remove the selected character",
                                        self.remove_character)
        top.addWidget(self.add_button)
        top.addWidget(self.remove_button)
        return top

    def _build_details(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.name = QLineEdit()
        self.name.setToolTip("Panels name the character as [Name]; renaming rewrites them")
        self.name.editingFinished.connect(lambda: self._edit(name=self.name.text()))
        self.description = QLineEdit()
        self.description.setPlaceholderText("e.g. a red-haired girl in a yellow raincoat")
        self.description.setToolTip("What the model reads wherever a panel says [Name]")
        self.description.editingFinished.connect(
            lambda: self._edit(description=self.description.text()))
        self.words = QLineEdit()
        self.words.setToolTip("The words whose attention finds the character in a picture "
                              "(its mask); empty: the description's words")
        self.words.editingFinished.connect(lambda: self._edit(words=parse_words(self.words.text())))
        form.addRow("Name", self.name)
        form.addRow("Looks", self.description)
        form.addRow("Words", self.words)
        anchors = QHBoxLayout()
        self.anchor_row = QHBoxLayout()
        anchors.addLayout(self.anchor_row)
        tools = QVBoxLayout()
        self.lock = QToolButton()
        self.lock.setCheckable(True)
        self.lock.setAutoRaise(True)
        self.lock.toggled.connect(lambda locked: self._edit(seeds_locked=locked))
        self.reroll_button = self._tool("dice", "New seeds for this character's anchors",
                                        self.reroll)
        tools.addWidget(self.lock)
        tools.addWidget(self.reroll_button)
        tools.addStretch(1)
        anchors.addLayout(tools)
        anchors.addStretch(1)
        form.addRow("Anchors", anchors)
        return box

    def _build_settings_row(self) -> QHBoxLayout:
        """How strongly panels share their characters (spec section 13's settings)."""
        row = QHBoxLayout()
        self.dropout = QDoubleSpinBox()
        self.dropout.setRange(0.0, 1.0)
        self.dropout.setSingleStep(0.05)
        self.dropout.setKeyboardTracking(False)  # a typed value is one edit, when it is done
        self.dropout.setToolTip("Character dropout: lower makes panels more alike, but poses "
                                "freeze; 1 shares nothing")
        self.dropout.valueChanged.connect(
            lambda v: self._edit_settings(character_dropout=round(v, 2)))
        self.layers = small_combo()
        for layers in CHARACTER_LAYERS:
            self.layers.addItem({"up": "up blocks", "all": "all blocks"}[layers], layers)
        self.layers.setToolTip("Where panels read the anchors: the up blocks (the paper's "
                               "choice) or every block")
        self.layers.currentIndexChanged.connect(
            lambda _i: self._edit_settings(character_layers=self.layers.currentData()))
        self.anchor_count = QSpinBox()
        self.anchor_count.setRange(1, MAX_ANCHORS)
        self.anchor_count.setKeyboardTracking(False)
        self.anchor_count.setToolTip("Anchors per character: more agree better, cost more")
        self.anchor_count.valueChanged.connect(
            lambda v: self._edit_settings(anchors_per_character=v))
        for label, widget in (("Dropout", self.dropout), ("in", self.layers),
                              ("Anchors", self.anchor_count)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        return row

    # ----- session -> widgets ---------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        self.session = session
        self.current = None
        self._subscription.follow(session)
        self._fill()

    def _on_change(self, change: observer.Change) -> None:
        if change.kind == observer.CHARACTERS:
            self._fill()

    def _character(self) -> Character | None:
        if self.session is None or self.current is None:
            return None
        return self.session.character(self.current)

    def _fill(self) -> None:
        self._filling = True
        try:
            characters = self.session.characters if self.session else ()
            if self.current not in [c.name for c in characters]:
                self.current = characters[-1].name if characters else None
            self.list.clear()
            for character in characters:
                item = QListWidgetItem(character.name + (f" · {character.description}"
                                                         if character.description else ""))
                item.setData(Qt.ItemDataRole.UserRole, character.name)
                item.setToolTip(character.description or "no description yet")
                self.list.addItem(item)
                if character.name == self.current:
                    self.list.setCurrentItem(item)
            settings = self.session.character_settings if self.session else None
            if settings is not None:
                self.dropout.setValue(settings.character_dropout)
                self.layers.setCurrentIndex(max(0, self.layers.findData(settings.character_layers)))
                self.anchor_count.setValue(settings.anchors_per_character)
            self._show_details()
        finally:
            self._filling = False

    def _show_details(self) -> None:
        character = self._character()
        self.details.setVisible(character is not None)
        self.remove_button.setEnabled(character is not None)
        self.hint.setVisible(character is None)
        if character is None:
            return
        was, self._filling = self._filling, True
        try:
            self.name.setText(character.name)
            self.description.setText(character.description)
            self.words.setText(", ".join(character.words))
            default = ", ".join(character.subject_words) or "the description's words"
            self.words.setPlaceholderText(f"default: {default}")
            self.lock.setChecked(character.seeds_locked)
            self.lock.setIcon(icon("lock" if character.seeds_locked else "unlock"))
            self.lock.setToolTip("Anchor seeds locked: Generate keeps them (click to unlock)"
                                 if character.seeds_locked else
                                 "Anchor seeds free: Generate draws new ones (click to lock)")
            self._show_anchors()
        finally:
            self._filling = was

    def _show_anchors(self) -> None:
        character = self._character()
        count = 0 if character is None else min(
            len(character.anchor_seeds), self.session.character_settings.anchors_per_character)
        while len(self.slots) > count:
            self.slots.pop().deleteLater()
        while len(self.slots) < count:
            slot = AnchorSlot(len(self.slots))
            slot.seed_edited.connect(self._seed_edited)
            slot.files_dropped.connect(self.set_anchor_files)
            slot.image_dropped.connect(self.set_anchor_image)
            slot.choose_requested.connect(self.choose_anchor_picture)
            slot.clear_requested.connect(self.clear_anchor_picture)
            # top-aligned: a slot with a picture shows its clear button and is taller
            self.anchor_row.addWidget(slot, 0, Qt.AlignmentFlag.AlignTop)
            self.slots.append(slot)
        for anchor, slot in enumerate(self.slots):
            relative = character.picture(anchor)
            image = None
            if relative is not None:
                image = self.thumbnails.request(self.session.path(relative), ANCHOR_THUMB)
            slot.show_anchor(character.anchor_seeds[anchor], image, relative is not None)

    # ----- widgets -> session ---------------------------------------------------------------
    def _guard(self, action: Callable, *args, **kwargs):
        if self.session is None:
            return None
        try:
            return action(*args, **kwargs)
        except SessionError as exc:
            self.message.emit(str(exc), True)
            self._fill()  # the widgets show the session again, not the refused text
            return None

    def _picked(self, item: QListWidgetItem | None, _old=None) -> None:
        if self._filling or item is None:
            return
        self.current = item.data(Qt.ItemDataRole.UserRole)
        self._show_details()

    def add_character(self) -> None:
        if self.session is None:
            return
        taken = {c.name for c in self.session.characters}
        number = 1 + len(taken)
        while f"Character {number}" in taken:
            number += 1
        added = self._guard(self.session.add_character, f"Character {number}")
        if added is not None:
            self.current = added.name
            self._fill()
            self.name.setFocus()
            self.name.selectAll()

    def remove_character(self) -> None:
        if self._character() is not None:
            self._guard(self.session.remove_character, self.current)

    def _edit(self, **changes) -> None:
        character = self._character()
        if self._filling or character is None:
            return
        if all(getattr(character, k) == v for k, v in changes.items()):
            return
        edited = self._guard(self.session.update_character, character.name, **changes)
        if edited is not None:
            self.current = edited.name
            self._fill()

    def _edit_settings(self, **changes) -> None:
        if not self._filling:
            self._guard(self.session.update_character_settings, **changes)

    def reroll(self) -> None:
        if self._character() is not None:
            self._guard(self.session.reroll_character, self.current)

    def _seed_edited(self, anchor: int, seed: int) -> None:
        if not self._filling and self._character() is not None:
            self._guard(self.session.set_anchor_seed, self.current, anchor, seed)

    def set_anchor_files(self, anchor: int, paths: list[str]) -> None:
        if len(paths) != 1 or Path(paths[0]).is_dir():
            self.message.emit("Drop one picture of the character on an anchor", True)
            return
        self._read(anchor, Path(paths[0]).name, prepare_picture, Path(paths[0]))

    def set_anchor_image(self, anchor: int, image: QImage) -> None:
        if not image.isNull():
            self._read(anchor, "pasted.png", prepare_picture_data, png_bytes(image), "pasted.png")

    def _read(self, anchor: int, name: str, prepare: Callable[..., PreparedPicture], *args) -> None:
        """Read and check the picture in the pool, then copy it into the session."""
        session, character = self.session, self.current
        if session is None or character is None:
            return

        def done(prepared: PreparedPicture | None, error: BaseException | None) -> None:
            if session is not self.session or session.character(character) is None:
                return  # another session, or the character went meanwhile
            if error is not None:
                self.message.emit(import_error(name, error), True)
            elif self._guard(session.set_character_prepared, character, anchor, prepared):
                self.message.emit(f"{character}'s anchor {anchor + 1} is now {name}", False)

        self.pool.submit(prepare, *args, on_done=done)

    def choose_anchor_picture(self, anchor: int) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a picture of the character", "",
                                              PICTURE_FILTER)
        if path:
            self.set_anchor_files(anchor, [path])

    def clear_anchor_picture(self, anchor: int) -> None:
        if self._character() is not None:
            self._guard(self.session.clear_character_picture, self.current, anchor)
