"""One storyboard panel as a card: drag handle, prompt, seed and its lock, its own size (spec
section 12: a wide establishing shot beside tall close-ups), control picture and map, its
notes (folded: scene, shot, camera, duration, action, dialogue, notes), and the card's tools. The card knows no view: it signals its edits and requests upward, and the
:class:`~.view.StoryboardView` that owns it makes them through the session."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
)

from ...engine.limits import PANEL_SIZE_STEP
from ...engine.request import CONTROL_MODES
from ...prompts_file import parse_size
from ...session.generation import SDXL_SIDE, panorama_sizes, size_presets
from ...session.json_fields import MAX_SEED
from ...session.model import Panel
from ..support import (
    ElidedLabel,
    accept_as_copy,
    accept_pictures,
    connect_command,
    icon,
    local_paths,
    set_style_flag,
    size_key,
    size_label,
    small_combo,
    wheel_edits_only_when_focused,
)
from .character_names import CharacterChips, NamePromptEdit
from .control_thumb import ControlThumb
from .dragging import PANEL_MIME, DragHandle
from .notes_editor import NotesEditor

SET_SIZE, CUSTOM_SIZE, PANORAMA = "set", "custom", "panorama:"
SIZE_TIP = ("This panel's own size: the sizes listed are the model's (about its native size: "
            "SDXL 1024, SD 1.5 and SD 2 base 512, SD 2.1-768 768), for a wide establishing shot or a "
            "tall close-up; “Same as the set” follows Settings → Size; a panorama (4:1, 3:1 at the "
            "model's height) is drawn as overlapping windows of the model's size in the set's style. "
            f"Custom sizes are multiples of {PANEL_SIZE_STEP}.")


MODE_TIPS = {
    "canny": "Edges: the outlines of the picture guide the panel's composition",
    "depth": "Depth: near and far of the picture guide the panel's composition",
    "map": "Ready-made map: the picture already is an edge or depth map",
}


class PanelCard(QFrame):
    """One panel of the storyboard."""

    clicked = Signal(str)
    edited = Signal(str, object)
    """The panel's id and the changes to its fields (prompt, seed, seed_locked, size)."""
    control_edited = Signal(str, object)
    """The panel's id and the changes to its control (mode, scale, map_kind)."""
    notes_edited = Signal(str, object)
    """The panel's id and the changes to its notes (the PanelNotes fields)."""
    new_seed_requested = Signal(str)
    reroll_requested = Signal(str)
    duplicate_requested = Signal(str)
    delete_requested = Signal(str)
    control_files_dropped = Signal(str, list)
    control_image_dropped = Signal(str, QImage)
    control_choose_requested = Signal(str)
    control_clear_requested = Signal(str)

    def __init__(self, panel: Panel) -> None:
        super().__init__()
        self.panel_id = panel.id
        self.setObjectName("PanelCard")
        self.setAcceptDrops(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._set_size = (1024, 1024)
        """The set's size: where Custom… starts for a panel that follows the set."""
        self._native = SDXL_SIDE
        """The model's native side: the presets are its base's (``show_native_side``)."""
        self._size: tuple[int, int] | None = None
        self._size_mode: str | None = None
        """The panel's own size and its mode as last shown."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addLayout(self._build_title_row())
        layout.addWidget(self._build_prompt())
        self.chips = CharacterChips()  # whom the prompt names ([Mira]), an unknown one flagged
        self.known_names: list[str] = []
        layout.addWidget(self.chips)
        layout.addLayout(self._build_seed_row())
        layout.addLayout(self._build_size_row())
        layout.addLayout(self._build_control_row())
        self.notes_editor = NotesEditor()  # filled by the view: the numbers depend on the others
        self.notes_editor.edited.connect(lambda changes: self.notes_edited.emit(self.panel_id, changes))
        layout.addWidget(self.notes_editor)

        self._filling = False
        self._control_key: tuple | None = None
        self.update_from(panel, 0)
        wheel_edits_only_when_focused(self)
        for button in self.findChildren(QToolButton):
            button.installEventFilter(self)  # a click on a card's button selects the card too

    # ----- construction ---------------------------------------------------------------------
    def _build_title_row(self) -> QHBoxLayout:
        """The drag handle, "Panel n", the drawing status, and re-roll, duplicate, delete."""
        top = QHBoxLayout()
        top.setSpacing(4)
        self.handle = DragHandle(self)
        self.title = QLabel("Panel")
        self.title.setObjectName("PanelTitle")
        self.status = QLabel("")
        self.status.setObjectName("Hint")
        top.addWidget(self.handle)
        top.addWidget(self.title)
        top.addWidget(self.status)
        top.addStretch(1)
        self.reroll_button = self._tool("reroll", "Re-roll: draw this panel again with a new "
                                        "seed (a locked seed is kept), keep the others",
                                        self.reroll_requested)
        self.duplicate_button = self._tool("duplicate", "Duplicate this panel (Ctrl+J)",
                                           self.duplicate_requested)
        self.delete_button = self._tool("delete", "Delete this panel", self.delete_requested)
        for button in (self.reroll_button, self.duplicate_button, self.delete_button):
            top.addWidget(button)
        return top

    def _build_prompt(self) -> QPlainTextEdit:
        self.prompt = NamePromptEdit()
        self.prompt.setPlaceholderText("What this panel shows, e.g. “[Mira] jumps over the "
                                       "fence”. The style text is added to it.")
        self.prompt.setAcceptDrops(False)  # a picture dropped on the text goes to the card
        self.prompt.setTabChangesFocus(True)
        line = self.prompt.fontMetrics().lineSpacing()
        self.prompt.setFixedHeight(int(line * 2.6) + 12)
        self.prompt.textChanged.connect(self._prompt_edited)
        return self.prompt

    def _build_seed_row(self) -> QHBoxLayout:
        """The seed, its lock and the dice that draws a new one."""
        seed_row = QHBoxLayout()
        seed_row.setSpacing(4)
        seed_label = QLabel("Seed")
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setToolTip("The random start of this panel: same seed, same prompt and "
                             "settings give the same picture")
        self.seed.setMinimumWidth(110)
        self.seed.valueChanged.connect(self._seed_edited)
        self.lock = QToolButton()
        self.lock.setCheckable(True)
        self.lock.setAutoRaise(True)
        self.lock.toggled.connect(self._lock_edited)
        self.new_seed = self._tool("dice", "Draw a new seed now", self.new_seed_requested)
        seed_row.addWidget(seed_label)
        seed_row.addWidget(self.seed)
        seed_row.addWidget(self.lock)
        seed_row.addWidget(self.new_seed)
        seed_row.addStretch(1)
        return seed_row

    def _build_size_row(self) -> QHBoxLayout:
        """The panel's own size: same as the set, a preset of the model's base, a panorama, or a
        custom width × height."""
        size_row = QHBoxLayout()
        size_row.setSpacing(4)
        self.size_choice = small_combo()
        self.size_choice.setMinimumContentsLength(12)
        self._fill_presets()
        self.size_choice.setToolTip(SIZE_TIP)
        self.size_choice.currentIndexChanged.connect(self._size_chosen)
        self.custom_width, self.custom_height = QSpinBox(), QSpinBox()
        for box in (self.custom_width, self.custom_height):
            box.setRange(PANEL_SIZE_STEP, 4096)
            box.setSingleStep(PANEL_SIZE_STEP)
            box.setValue(1024)
            box.setToolTip(SIZE_TIP)
            box.editingFinished.connect(self._custom_size_edited)
        self.times = QLabel("×")
        size_row.addWidget(QLabel("Size"))
        size_row.addWidget(self.size_choice, 1)
        size_row.addWidget(self.custom_width)
        size_row.addWidget(self.times)
        size_row.addWidget(self.custom_height)
        return size_row

    def _build_control_row(self) -> QHBoxLayout:
        """The control picture's thumbnail beside its mode, strength and note."""
        control_row = QHBoxLayout()
        control_row.setSpacing(6)
        self.control_thumb = ControlThumb()
        self.control_thumb.setToolTip("Control picture: drop a picture on this panel or click "
                                      "to choose one; it guides the composition")
        connect_command(self.control_thumb.clicked,
                        lambda: self.control_choose_requested.emit(self.panel_id))
        control_row.addWidget(self.control_thumb, 0,
                              Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        control_form = QVBoxLayout()
        control_form.setSpacing(2)
        control_form.addLayout(self._build_mode_row())
        strength_row = QHBoxLayout()
        self.strength_label = strength_label = QLabel("Strength")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.0, 2.0)
        self.strength.setSingleStep(0.05)
        self.strength.setDecimals(2)
        self.strength.setToolTip("How firmly the control picture holds the composition (0.8 is "
                                 "the paper's default; lower leaves more freedom)")
        self.strength.valueChanged.connect(self._control_edited)
        strength_row.addWidget(strength_label)
        strength_row.addWidget(self.strength, 1)
        control_form.addLayout(strength_row)
        self.control_note = ElidedLabel("")
        self.control_note.setObjectName("Hint")
        control_form.addWidget(self.control_note)
        control_form.addStretch(1)
        control_row.addLayout(control_form, 1)
        return control_row

    def _build_mode_row(self) -> QHBoxLayout:
        """How the control picture is read (edges, depth, a ready-made map and of what), and
        the button that removes it."""
        mode_row = QHBoxLayout()
        self.mode = small_combo()
        for mode in CONTROL_MODES:
            self.mode.addItem({"canny": "Edges (canny)", "depth": "Depth",
                               "map": "Ready-made map"}[mode], mode)
            self.mode.setItemData(self.mode.count() - 1, MODE_TIPS[mode],
                                  Qt.ItemDataRole.ToolTipRole)
        self.mode.currentIndexChanged.connect(self._control_edited)
        self.clear_control = self._tool("close", "Remove the control picture",
                                        self.control_clear_requested)
        self.map_kind = small_combo()
        self.map_kind.setMinimumContentsLength(5)
        for kind, label in (("canny", "of edges"), ("depth", "of depth")):
            self.map_kind.addItem(label, kind)
        self.map_kind.setToolTip("What the ready-made map shows: outlines (for the edges "
                                 "ControlNet) or near and far (for the depth ControlNet)")
        self.map_kind.currentIndexChanged.connect(self._control_edited)
        mode_row.addWidget(self.mode, 1)
        mode_row.addWidget(self.map_kind)
        mode_row.addWidget(self.clear_control)
        return mode_row

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt)
        # buttons take no focus, so without this the lock of one card was clicked while Ctrl+R
        # still re-rolled the card framed before
        if event.type() == QEvent.Type.MouseButtonPress:
            self.clicked.emit(self.panel_id)
        return False

    def _tool(self, name: str, tip: str, signal) -> QToolButton:
        """A card button that sends ``signal`` with this card's panel id."""
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        connect_command(button.clicked, lambda: signal.emit(self.panel_id))
        return button

    # ----- session -> widgets ---------------------------------------------------------------
    def update_from(self, panel: Panel, index: int) -> None:
        self._filling = True
        try:
            self.title.setText(f"Panel {index + 1}")
            if self.prompt.toPlainText() != panel.prompt:
                cursor = self.prompt.textCursor()
                position = cursor.position()
                self.prompt.setPlainText(panel.prompt)
                cursor.setPosition(min(position, len(panel.prompt)))
                self.prompt.setTextCursor(cursor)
            self.seed.setValue(min(panel.seed, MAX_SEED))
            self.lock.setChecked(panel.seed_locked)
            self._show_lock(panel.seed_locked)
            self._show_size(panel.size, panel.size_mode)
            control = panel.control
            self.mode.setCurrentIndex(max(0, self.mode.findData(control.mode)))
            self.map_kind.setCurrentIndex(max(0, self.map_kind.findData(
                getattr(control, "map_kind", "depth"))))
            self.strength.setValue(control.scale)
            has_picture = control.image is not None
            for widget in (self.mode, self.strength, self.strength_label, self.clear_control):
                widget.setVisible(has_picture)
            self.map_kind.setVisible(has_picture and control.mode == "map")
            if not has_picture:
                self.control_thumb.set_empty()
                self.control_note.setText("Optional: a picture that guides the layout")
                self._control_key = None
        finally:
            self._filling = False

    def show_set_size(self, size: tuple[int, int]) -> None:
        """The set's size changed (or is first known): Custom… starts from it."""
        self._set_size = size
        if self.size_choice.currentData() == SET_SIZE:
            self._fill_custom(size)

    def show_native_side(self, native: int) -> None:
        """The model's native side changed (another base): offer its base's sizes and panoramas."""
        if native != self._native:
            self._native = native
            self._fill_presets()
            self._filling = True  # showing the panel's size anew is no edit of it (it may be moving)
            try:
                self._show_size(self._size, self._size_mode)
            finally:
                self._filling = False

    def _fill_presets(self) -> None:
        """Same as the set, the model's sizes (``size_presets``), the panoramas (4:1 and 3:1 at the
        model's height: one row of windows), Custom…."""
        choice = self.size_choice
        choice.blockSignals(True)
        choice.clear()
        choice.addItem("Same as the set", SET_SIZE)
        for size in size_presets(self._native):  # data as text: Qt compares Python tuples by identity
            choice.addItem(size_label(*size), size_key(size))
        for width, height in panorama_sizes(self._native):
            choice.addItem(f"Panorama {width // height}:1  ({width} × {height})", PANORAMA + size_key((width, height)))
        choice.addItem("Custom…", CUSTOM_SIZE)
        choice.blockSignals(False)

    def _fill_custom(self, size: tuple[int, int]) -> None:
        for box, value in zip((self.custom_width, self.custom_height), size, strict=True):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    def _show_size(self, size: tuple[int, int] | None, mode: str | None) -> None:
        self._size, self._size_mode = size, mode
        custom = self.size_choice.currentData() == CUSTOM_SIZE
        if size is None:
            index = 0
            self._fill_custom(self._set_size)  # Custom… starts from the set's size
        else:
            index = self.size_choice.findData((PANORAMA if mode == "panorama" else "") + size_key(size))
            typed = custom and size == (self.custom_width.value(), self.custom_height.value())
            if index < 0 or typed:  # a size that is no preset, or the one the user is typing
                index = self.size_choice.findData(CUSTOM_SIZE)
            self.custom_width.setValue(size[0])
            self.custom_height.setValue(size[1])
        self.size_choice.setCurrentIndex(index)
        custom = self.size_choice.currentData() == CUSTOM_SIZE
        for widget in (self.custom_width, self.times, self.custom_height):
            widget.setVisible(custom)

    def _size_chosen(self, _index: int) -> None:
        choice = self.size_choice.currentData()
        custom = choice == CUSTOM_SIZE
        for widget in (self.custom_width, self.times, self.custom_height):
            widget.setVisible(custom)
        if custom:
            self._custom_size_edited()
        elif choice.startswith(PANORAMA):  # one edit, so one undo step
            self._edit(size=parse_size(choice.removeprefix(PANORAMA)), size_mode="panorama")
        else:
            self._edit(size=None if choice == SET_SIZE else parse_size(choice))

    def _custom_size_edited(self) -> None:
        """Typed sizes are rounded to the nearest multiple of 64 (the UNet needs whole tokens)."""
        size = []
        for box in (self.custom_width, self.custom_height):
            value = max(PANEL_SIZE_STEP, round(box.value() / PANEL_SIZE_STEP) * PANEL_SIZE_STEP)
            if value != box.value():
                box.setValue(value)
            size.append(value)
        self._edit(size=tuple(size))

    def _show_lock(self, locked: bool) -> None:
        self.lock.setIcon(icon("lock" if locked else "unlock"))
        self.lock.setToolTip("Seed locked: Generate keeps it (click to unlock)" if locked else
                             "Seed free: Generate draws a new one each time (click to lock)")

    def set_selected(self, selected: bool) -> None:
        set_style_flag(self, "selected", selected)

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    # ----- widgets -> session ---------------------------------------------------------------
    def _edit(self, **changes) -> None:
        if self._filling:
            return
        self.edited.emit(self.panel_id, changes)

    def _prompt_edited(self) -> None:
        self.chips.show_names(self.prompt.toPlainText(), self.known_names)
        self._edit(prompt=self.prompt.toPlainText())

    def show_characters(self, names: list[str]) -> None:
        """The session's character names: completed after ``[``, and checked in the chips."""
        self.known_names = list(names)
        self.prompt.set_names(self.known_names)
        self.chips.show_names(self.prompt.toPlainText(), self.known_names)

    def _seed_edited(self, value: int) -> None:
        self._edit(seed=value)

    def _lock_edited(self, locked: bool) -> None:
        self._show_lock(locked)
        self._edit(seed_locked=locked)

    def _control_edited(self, *_args) -> None:
        if self._filling:
            return
        changes = {"mode": self.mode.currentData(), "scale": round(self.strength.value(), 2)}
        if self.mode.currentData() == "map":
            changes["map_kind"] = self.map_kind.currentData()
        self.control_edited.emit(self.panel_id, changes)

    # ----- drops and clicks -----------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.clicked.emit(self.panel_id)
        super().mousePressEvent(event)

    def focusInEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.clicked.emit(self.panel_id)
        super().focusInEvent(event)

    def _drop_highlight(self, on: bool) -> None:
        set_style_flag(self, "dropTarget", on)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        mime = event.mimeData()
        if mime.hasFormat(PANEL_MIME):
            event.ignore()  # reordering is the list's business
            return
        if accept_pictures(event):
            self._drop_highlight(True)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._drop_highlight(False)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._drop_highlight(False)
        mime = event.mimeData()
        if mime.hasUrls():
            local, _ = local_paths(mime.urls())
            self.control_files_dropped.emit(self.panel_id, local)
            accept_as_copy(event)
        elif mime.hasImage():
            self.control_image_dropped.emit(self.panel_id, QImage(mime.imageData()))
            accept_as_copy(event)
