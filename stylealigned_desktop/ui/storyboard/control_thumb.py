"""The control picture's map on a panel card, as a small thumbnail (or an empty dashed frame)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QToolButton

from ..support import THUMB_BUTTON_ROOM

CONTROL_THUMB = 64


_EMPTY_FRAMES: dict[str, QPixmap] = {}


def _empty_frame(colour: QColor) -> QPixmap:
    pixmap = QPixmap(CONTROL_THUMB, CONTROL_THUMB)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(QPen(colour, 1, Qt.PenStyle.DashLine))
    painter.drawRoundedRect(1, 1, CONTROL_THUMB - 3, CONTROL_THUMB - 3, 4, 4)
    font = painter.font()
    font.setPointSize(max(6, font.pointSize() - 2))
    painter.setFont(font)
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                     "drop a\ncontrol\npicture")
    painter.end()
    return pixmap


class ControlThumb(QToolButton):
    """The control picture's map as a small thumbnail; click to choose a picture."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFixedSize(CONTROL_THUMB + THUMB_BUTTON_ROOM, CONTROL_THUMB + THUMB_BUTTON_ROOM)
        self.setIconSize(QSize(CONTROL_THUMB, CONTROL_THUMB))
        self.setAutoRaise(False)
        self.set_empty()

    def set_empty(self) -> None:
        """The dashed "drop a control picture" frame, drawn once per colour: a card is updated
        at every session change (a finished run too), and drawing text costs the UI thread."""
        colour = self.palette().color(QPalette.ColorRole.PlaceholderText)
        key = colour.name(QColor.NameFormat.HexArgb)
        if getattr(self, "image", None) is None and getattr(self, "_empty_key", None) == key:
            return  # already showing it
        if key not in _EMPTY_FRAMES:
            _EMPTY_FRAMES[key] = _empty_frame(colour)
        self.setIcon(_EMPTY_FRAMES[key])
        self._empty_key = key
        self.image: QImage | None = None

    def set_image(self, image: QImage) -> None:
        self.image = image
        self._empty_key = None
        scaled = image.scaled(CONTROL_THUMB, CONTROL_THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        pixmap = QPixmap(CONTROL_THUMB, CONTROL_THUMB)
        pixmap.fill(QColor("#000000"))
        painter = QPainter(pixmap)
        painter.drawImage((CONTROL_THUMB - scaled.width()) // 2,
                          (CONTROL_THUMB - scaled.height()) // 2, scaled)
        painter.end()
        self.setIcon(pixmap)
