"""Panels and dialogs that fit a small screen (1280×800) without cutting a line: content that
scrolls up and down but never sideways, and dialogs as tall as their wrapped lines need."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class VerticalScroller(QScrollArea):
    """``content`` scrolled up and down only: never narrower than its rows need, so no row is
    cut or hidden behind a horizontal scrollbar. Its size hint is the content's height at the
    width it has, wrapped lines included (a plain QScrollArea stops at 24 lines)."""

    def __init__(self, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(content)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(content.minimumSizeHint().width()
                             + self.verticalScrollBar().sizeHint().width())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt)
        content = self.widget()
        hint = content.sizeHint()
        width = max(self.viewport().width(), hint.width())
        height = content.heightForWidth(width) if content.hasHeightForWidth() else -1
        frame = 2 * self.frameWidth()
        return QSize(hint.width() + frame, max(height, hint.height()) + frame)


def fit_to_screen(window: QWidget) -> None:
    """Make a dialog as tall as its layout needs at its width, wrapped lines included, but no
    taller than the screen (what does not fit scrolls in its :class:`VerticalScroller`), and
    keep it on the screen. Qt's own adjustSize stops at two thirds of the screen's height,
    which squeezed the rows of a tall dialog at 1280×800."""
    layout = window.layout()
    layout.activate()
    width = max(window.width(), layout.totalMinimumSize().width())
    needed = (layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
              else layout.totalSizeHint().height())
    screen = (window.screen() or QGuiApplication.primaryScreen()).availableGeometry()
    title_bar = max(0, window.frameGeometry().height() - window.height())
    window.resize(width, min(max(needed, layout.totalMinimumSize().height()),
                             screen.height() - title_bar))
    frame = window.frameGeometry()
    if frame.bottom() > screen.bottom():
        window.move(frame.left(), max(screen.top(), screen.bottom() - frame.height()))
