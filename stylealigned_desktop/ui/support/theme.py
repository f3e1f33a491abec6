"""The look: Fusion with a dark or a light palette that follows the system, plus icons and QSS.

The colour scheme comes from Qt's style hints (the desktop's light/dark setting) and follows it
live. ``STYLEALIGNED_THEME=dark|light`` forces one (used by the screenshot script).
"""

from __future__ import annotations

import os
from functools import lru_cache

from PySide6.QtCore import QByteArray, QPoint, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QIcon,
    QIconEngine,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from ...paths import resource

ACCENT = "#e0873a"  # warm orange: reads well on both palettes, not the usual "AI blue"
CHARACTER_COLOURS = ("#e0873a", "#3a9be0", "#6fbf45", "#d14fa8", "#c9b326", "#35b5aa")
"""One colour per character (by its place in the session): its chips on the cards and its
subject mask over the pictures, so the chips are the masks' legend."""

_icon_colour = "#202020"


def system_is_dark(app: QGuiApplication) -> bool:
    """Whether the desktop asks for a dark look (or STYLEALIGNED_THEME forces one)."""
    forced = os.environ.get("STYLEALIGNED_THEME", "").lower()
    if forced in ("dark", "light"):
        return forced == "dark"
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    # Unknown: trust the platform theme's own palette (KDE, some GTK themes set it).
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def make_palette(dark: bool) -> QPalette:
    role = QPalette.ColorRole
    group = QPalette.ColorGroup
    if dark:
        colours = {
            role.Window: "#2b2b2e", role.WindowText: "#e6e6e6", role.Base: "#1f1f22",
            role.AlternateBase: "#2f2f33", role.Text: "#e6e6e6", role.Button: "#36363a",
            role.ButtonText: "#e6e6e6", role.ToolTipBase: "#3a3a3e", role.ToolTipText: "#f0f0f0",
            role.PlaceholderText: "#8a8a8f", role.Mid: "#4a4a50", role.Dark: "#18181a",
            role.Light: "#505056", role.Midlight: "#404045", role.Shadow: "#000000",
            role.BrightText: "#ffffff", role.Link: "#f0a060",
        }
        disabled = "#77777c"
    else:
        colours = {
            role.Window: "#f2f1ef", role.WindowText: "#202020", role.Base: "#ffffff",
            role.AlternateBase: "#f7f6f4", role.Text: "#202020", role.Button: "#e9e8e5",
            role.ButtonText: "#202020", role.ToolTipBase: "#fffbe8", role.ToolTipText: "#202020",
            role.PlaceholderText: "#8a8a8a", role.Mid: "#c4c2be", role.Dark: "#a09e9a",
            role.Light: "#ffffff", role.Midlight: "#dddbd7", role.Shadow: "#505050",
            role.BrightText: "#000000", role.Link: "#b0581a",
        }
        disabled = "#a0a0a0"
    palette = QPalette()
    for r, colour in colours.items():
        palette.setColor(r, QColor(colour))
    palette.setColor(role.Highlight, QColor(ACCENT))
    palette.setColor(role.HighlightedText, QColor("#1a1a1a"))
    palette.setColor(role.Accent, QColor(ACCENT))
    for r in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, r, QColor(disabled))
    return palette


def stylesheet() -> str:
    path = resource("qss", "app.qss")
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def apply_theme(app: QApplication) -> bool:
    """Style ``app`` for the current system scheme; returns whether it is dark."""
    global _icon_colour
    app.setStyle("Fusion")
    dark = system_is_dark(app)
    app.setPalette(make_palette(dark))
    _icon_colour = "#e6e6e6" if dark else "#303030"
    app.setStyleSheet(stylesheet())
    app.setProperty("stylealigned_dark", dark)
    return dark


def follow_system(app: QApplication, on_change=None) -> None:
    """Re-apply the theme when the desktop switches between dark and light."""

    def changed(*_):
        apply_theme(app)
        for widget in app.allWidgets():  # icons are drawn at paint time in the new colour
            widget.update()
        if on_change is not None:
            on_change()

    app.styleHints().colorSchemeChanged.connect(changed)


@lru_cache(maxsize=64)
def _svg(name: str) -> str:
    path = resource("icons", f"{name}.svg")
    return path.read_text(encoding="utf-8") if path.is_file() else ""


class SvgIconEngine(QIconEngine):
    """Draws an icon from resources/icons in the current theme's colour at paint time.

    So icons follow a live switch between the dark and the light look, and disabled buttons
    get a dimmed icon. ``colour`` pins a colour instead (e.g. on the orange Generate button).
    """

    def __init__(self, name: str, colour: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.colour = colour

    def _colour(self, mode) -> str:
        if self.colour:
            return self.colour
        if mode == QIcon.Mode.Disabled:
            return "#6a6a6a" if _icon_colour != "#303030" else "#a8a8a8"
        return _icon_colour

    def paint(self, painter: QPainter, rect, mode, state) -> None:
        svg = _svg(self.name).replace("#000000", self._colour(mode))
        renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(rect))
        painter.restore()

    def pixmap(self, size: QSize, mode, state) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(QPoint(0, 0), size), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> QIconEngine:
        return SvgIconEngine(self.name, self.colour)


def icon(name: str, colour: str | None = None) -> QIcon:
    """An icon from resources/icons/<name>.svg in the theme's text colour (see SvgIconEngine)."""
    if not _svg(name):
        return QIcon()
    return QIcon(SvgIconEngine(name, colour))
