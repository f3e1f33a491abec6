"""The gallery's thumbnails: a picture framed and starred when the style takes from it, and the
drawn stand-in of the generated reference."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap

from ..support import ACCENT, icon

THUMB = 88


def framed_thumbnail(image: QImage | None, active: float | bool | None) -> QIcon:
    """A thumbnail; an active reference (``active``: its share, or True) is framed and starred."""
    active = active is not None and active is not False
    pixmap = QPixmap(THUMB, THUMB)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if image is not None and not image.isNull():
        scaled = image.scaled(THUMB - 8, THUMB - 8, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        painter.drawImage((THUMB - scaled.width()) // 2, (THUMB - scaled.height()) // 2, scaled)
    else:
        painter.setPen(QColor("#888888"))
        painter.drawRect(4, 4, THUMB - 9, THUMB - 9)
    if active:
        painter.setPen(QPen(QColor(ACCENT), 4))
        painter.drawRoundedRect(2, 2, THUMB - 4, THUMB - 4, 4, 4)
        star = icon("star-filled", ACCENT).pixmap(22, 22)
        painter.drawPixmap(THUMB - 26, 4, star)
    painter.end()
    return QIcon(pixmap)


def generated_reference_thumbnail(active: float | None) -> QIcon:
    """The generated reference's entry: a dashed "Aa" card (it has no picture before a run)."""
    image = QImage(THUMB - 8, THUMB - 8, QImage.Format.Format_ARGB32)
    image.fill(QColor(0, 0, 0, 0))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor("#9a9a9a"), 2, Qt.PenStyle.DashLine))
    painter.drawRoundedRect(2, 2, image.width() - 4, image.height() - 4, 6, 6)
    font = painter.font()
    font.setPointSize(20)
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, "Aa")
    painter.end()
    return framed_thumbnail(image, active)
