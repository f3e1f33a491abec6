"""One anchor of a character (spec section 13): its seed, and the artist's picture that stands
in for the generated anchor when one is dropped on it (or chosen with a click)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QFrame, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout

from ...session.json_fields import MAX_SEED
from ..support import (
    THUMB_BUTTON_ROOM,
    accept_as_copy,
    accept_pictures,
    connect_command,
    icon,
    local_paths,
)

ANCHOR_THUMB = 56


class AnchorSlot(QFrame):
    """An anchor: a picture button (click: choose a picture; drop one on the slot), a clear
    button, and the seed the anchor is drawn with when it has no picture."""

    seed_edited = Signal(int, int)
    """(anchor, seed)"""
    files_dropped = Signal(int, list)
    image_dropped = Signal(int, QImage)
    choose_requested = Signal(int)
    clear_requested = Signal(int)

    def __init__(self, anchor: int, parent=None) -> None:
        super().__init__(parent)
        self.anchor = anchor
        self.setObjectName("AnchorSlot")
        self.setAcceptDrops(True)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        self.picture = QToolButton()
        self.picture.setIconSize(QSize(ANCHOR_THUMB, ANCHOR_THUMB))
        # wide enough for the picture and for the words it shows without one
        words = max(self.picture.fontMetrics().horizontalAdvance(w) for w in ("generated", "Anchor 8"))
        self.picture.setFixedSize(max(ANCHOR_THUMB, words + 12) + THUMB_BUTTON_ROOM,
                                  ANCHOR_THUMB + THUMB_BUTTON_ROOM)
        self.picture.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        connect_command(self.picture.clicked, lambda: self.choose_requested.emit(self.anchor))
        self.clear = QToolButton()
        self.clear.setIcon(icon("close"))
        self.clear.setAutoRaise(True)
        self.clear.setToolTip("Remove the picture: this anchor is generated again")
        connect_command(self.clear.clicked, lambda: self.clear_requested.emit(self.anchor))
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setKeyboardTracking(False)  # a typed seed is one edit, when it is done
        self.seed.setToolTip("The seed this anchor is drawn with (when it has no picture)")
        self.seed.valueChanged.connect(lambda value: self.seed_edited.emit(self.anchor, value))
        layout.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.clear, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.seed)

    def show_anchor(self, seed: int, picture: QImage | None, has_picture: bool) -> None:
        """Show the seed and the picture (None while its thumbnail is being read)."""
        self.seed.blockSignals(True)
        self.seed.setValue(min(seed, MAX_SEED))
        self.seed.blockSignals(False)
        self.seed.setEnabled(not has_picture)
        self.clear.setVisible(has_picture)
        if has_picture and picture is not None and not picture.isNull():
            self.picture.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
            self.picture.setIcon(QIcon(QPixmap.fromImage(picture)))
        else:
            self.picture.setIcon(QIcon())
            self.picture.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.picture.setText("…" if has_picture else f"Anchor {self.anchor + 1}\ngenerated")
        self.picture.setToolTip(
            "The artist's design of this character (inverted like a reference picture); "
            "click to choose another" if has_picture else
            "Generated from the description with the seed below; drop a picture of the "
            "character here (or click) to use your own design")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        accept_pictures(event)

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        mime = event.mimeData()
        if mime.hasUrls():
            local, _ = local_paths(mime.urls())
            self.files_dropped.emit(self.anchor, local)
            accept_as_copy(event)
        elif mime.hasImage():
            self.image_dropped.emit(self.anchor, QImage(mime.imageData()))
            accept_as_copy(event)
        else:
            event.ignore()
