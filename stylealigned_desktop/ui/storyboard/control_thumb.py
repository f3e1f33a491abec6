"""The control picture's map on a panel card, as a small thumbnail (or an empty dashed frame)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QToolButton

CONTROL_THUMB = 64


class ControlThumb(QToolButton):
    """The control picture's map as a small thumbnail; click to choose a picture."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFixedSize(CONTROL_THUMB + 8, CONTROL_THUMB + 8)
        self.setIconSize(QSize(CONTROL_THUMB, CONTROL_THUMB))
        self.setAutoRaise(False)
        self.set_empty()

    def set_empty(self) -> None:
        pixmap = QPixmap(CONTROL_THUMB, CONTROL_THUMB)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.PlaceholderText), 1,
                            Qt.PenStyle.DashLine))
        painter.drawRoundedRect(1, 1, CONTROL_THUMB - 3, CONTROL_THUMB - 3, 4, 4)
        font = painter.font()
        font.setPointSize(max(6, font.pointSize() - 2))
        painter.setFont(font)
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         "drop a\ncontrol\npicture")
        painter.end()
        self.setIcon(pixmap)
        self.image: QImage | None = None

    def set_image(self, image: QImage) -> None:
        self.image = image
        scaled = image.scaled(CONTROL_THUMB, CONTROL_THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        pixmap = QPixmap(CONTROL_THUMB, CONTROL_THUMB)
        pixmap.fill(QColor("#000000"))
        painter = QPainter(pixmap)
        painter.drawImage((CONTROL_THUMB - scaled.width()) // 2,
                          (CONTROL_THUMB - scaled.height()) // 2, scaled)
        painter.end()
        self.setIcon(pixmap)
