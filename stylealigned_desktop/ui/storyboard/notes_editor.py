"""A panel card's notes, folded into one line until opened: scene and shot numbers (automatic
unless set), camera / framing (free text with the usual names), duration (the set's default
unless set), action, dialogue and notes: the text of the storyboard's deliverables
(``session/notes.py``, File → Export)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...session.notes import CAMERA_PRESETS, MAX_DURATION, MAX_NUMBER, PanelNotes, PanelNumber
from ..support import ElidedLabel, small_combo


def summary(notes: PanelNotes, number: PanelNumber, default_duration: float) -> str:
    """The folded line: ``1-2 · close-up · 2.5 s · “Who's there?”``."""
    duration = default_duration if notes.duration is None else notes.duration
    parts = [f"{number.scene}-{number.shot}"]
    if notes.camera.strip():
        parts.append(notes.camera.strip())
    parts.append(f"{duration:g} s")
    line = (notes.dialogue or notes.action).strip().splitlines()
    if line:
        parts.append(f"“{line[0]}”")
    return " · ".join(parts)


class NotesEditor(QWidget):
    """Emits ``edited(changes)`` (the PanelNotes fields the artist changed)."""

    edited = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._filling = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        head = QHBoxLayout()
        self.toggle = QToolButton()
        self.toggle.setText("Notes")
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setToolTip("Scene and shot, camera, duration, action, dialogue and notes: "
                               "the text of the storyboard PDF, the animatic and the timeline")
        self.toggle.toggled.connect(self._fold)
        self.summary = ElidedLabel("")
        self.summary.setObjectName("Hint")
        head.addWidget(self.toggle)
        head.addWidget(self.summary, 1)
        outer.addLayout(head)
        self.body = QWidget()
        form = QFormLayout(self.body)
        form.setContentsMargins(4, 0, 0, 0)
        form.setSpacing(3)
        self.scene, self.shot = QSpinBox(), QSpinBox()
        for box, name in ((self.scene, "scene"), (self.shot, "shot")):
            box.setRange(0, MAX_NUMBER)  # 0: automatic
            box.setToolTip(f"The {name} number; “auto” follows the panels before this one")
            box.valueChanged.connect(lambda value, name=name: self._edit(**{name: value or None}))
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.0, MAX_DURATION)  # 0: the set's default
        self.duration.setDecimals(1)
        self.duration.setSingleStep(0.5)
        self.duration.setSuffix(" s")
        self.duration.setToolTip("How long the panel is held in the animatic and the timeline")
        self.duration.valueChanged.connect(lambda value: self._edit(duration=value or None))
        numbers = QHBoxLayout()  # two short rows: the card keeps the storyboard dock's width
        numbers.addWidget(self.scene)
        numbers.addWidget(QLabel("shot"))
        numbers.addWidget(self.shot)
        numbers.addStretch(1)
        form.addRow("Scene", numbers)
        form.addRow("Duration", self.duration)
        self.camera = small_combo()
        self.camera.setEditable(True)
        self.camera.addItem("")
        self.camera.addItems(CAMERA_PRESETS)
        self.camera.lineEdit().setPlaceholderText("wide, close-up, over-the-shoulder…")
        self.camera.currentTextChanged.connect(lambda text: self._edit(camera=text))
        form.addRow("Camera", self.camera)
        self.action = QLineEdit()
        self.action.setPlaceholderText("What happens")
        self.action.textChanged.connect(lambda text: self._edit(action=text))
        form.addRow("Action", self.action)
        self.dialogue = QPlainTextEdit()
        self.dialogue.setPlaceholderText("Who says what")
        self.dialogue.setTabChangesFocus(True)
        self.dialogue.setFixedHeight(int(self.dialogue.fontMetrics().lineSpacing() * 2.4) + 10)
        self.dialogue.textChanged.connect(lambda: self._edit(dialogue=self.dialogue.toPlainText()))
        form.addRow("Dialogue", self.dialogue)
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("For the team: sound, timing, props…")
        self.notes.textChanged.connect(lambda text: self._edit(notes=text))
        form.addRow("Notes", self.notes)
        outer.addWidget(self.body)
        self._fold(False)

    def _fold(self, open_: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.body.setVisible(open_)

    def _edit(self, **changes) -> None:
        if not self._filling:
            self.edited.emit(changes)

    def show_notes(self, notes: PanelNotes, number: PanelNumber, default_duration: float) -> None:
        """Show the panel's notes, its automatic numbers and the set's default duration."""
        self._filling = True
        try:
            self.scene.setSpecialValueText(f"auto ({number.scene})")
            self.shot.setSpecialValueText(f"auto ({number.shot})")
            self.duration.setSpecialValueText(f"default ({default_duration:g} s)")
            self.scene.setValue(notes.scene or 0)
            self.shot.setValue(notes.shot or 0)
            self.duration.setValue(notes.duration or 0.0)
            if self.camera.currentText() != notes.camera:
                self.camera.setCurrentText(notes.camera)
            for field, text in ((self.action, notes.action), (self.notes, notes.notes)):
                if field.text() != text:
                    field.setText(text)
            if self.dialogue.toPlainText() != notes.dialogue:
                self.dialogue.setPlainText(notes.dialogue)
            self.summary.setText(summary(notes, number, default_duration))
        finally:
            self._filling = False
