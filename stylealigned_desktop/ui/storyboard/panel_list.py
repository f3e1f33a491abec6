"""The storyboard's column of panel cards, reordered by dragging a card's handle: it shows where
the dragged panel will land, scrolls when the pointer nears an edge, and says where it was
dropped."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from ..support import ACCENT
from .dragging import PANEL_MIME

EDGE = 48
"""A dragged panel held this close to the top or bottom of the list scrolls it (px)."""


class PanelList(QWidget):
    """The column of cards; takes panel drags and shows where the panel will land.

    ``scroll`` is the scroll area it is shown in (scrolled while a panel is dragged near its
    edges); a drop is handed up as ``panel_dropped``.
    """

    panel_dropped = Signal(str, int)
    """A dragged panel's id and the gap it was dropped in (0: before the first card)."""

    def __init__(self, scroll: QScrollArea) -> None:
        super().__init__()
        self.scroll = scroll
        self.setAcceptDrops(True)
        self.column = QVBoxLayout(self)
        # the cards keep their height; the scroll area scrolls instead of squeezing them
        self.column.setSizeConstraint(QVBoxLayout.SizeConstraint.SetMinimumSize)
        self.column.setContentsMargins(2, 2, 2, 2)
        self.column.setSpacing(6)
        self.column.addStretch(1)
        self._indicator_y: int | None = None
        self._scroll_by = 0
        self._pointer_y = 0
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setInterval(30)
        self._scroll_timer.timeout.connect(self._scroll_step)

    def cards(self) -> list[QWidget]:
        return [self.column.itemAt(i).widget() for i in range(self.column.count() - 1)]

    def drop_index(self, y: float) -> int:
        """The position a dragged panel lands at when dropped at height ``y``."""
        cards = self.cards()
        for i, card in enumerate(cards):
            if y < card.geometry().center().y():
                return i
        return len(cards)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.mimeData().hasFormat(PANEL_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt)
        if not event.mimeData().hasFormat(PANEL_MIME):
            event.ignore()
            return
        event.acceptProposedAction()
        self._show_drop_at(event.position().y())
        self._auto_scroll(event.position().y())

    def _show_drop_at(self, y: float) -> None:
        index = self.drop_index(y)
        cards = self.cards()
        if index < len(cards):
            self._indicator_y = cards[index].geometry().top() - 3
        elif cards:
            self._indicator_y = cards[-1].geometry().bottom() + 3
        self.update()

    def _auto_scroll(self, y: float) -> None:
        """Near the top or bottom of the visible part, the list scrolls (a long storyboard's
        end is reachable while dragging); faster the closer to the edge."""
        viewport = self.scroll.viewport()
        at = self.mapTo(viewport, QPoint(0, int(y))).y()
        if at < EDGE:
            self._scroll_by = -max(2, (EDGE - at) // 2)
        elif at > viewport.height() - EDGE:
            self._scroll_by = max(2, (at - viewport.height() + EDGE) // 2)
        else:
            self._scroll_by = 0
        self._pointer_y = at
        if self._scroll_by and not self._scroll_timer.isActive():
            self._scroll_timer.start()
        elif not self._scroll_by:
            self._scroll_timer.stop()

    def _scroll_step(self) -> None:
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.value() + self._scroll_by)
        viewport = self.scroll.viewport()
        self._show_drop_at(self.mapFrom(viewport, QPoint(0, self._pointer_y)).y())

    def _end_drag(self) -> None:
        self._scroll_timer.stop()
        self._indicator_y = None
        self.update()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._end_drag()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._end_drag()
        mime = event.mimeData()
        if not mime.hasFormat(PANEL_MIME):
            event.ignore()
            return
        panel_id = bytes(mime.data(PANEL_MIME)).decode("utf-8")
        self.panel_dropped.emit(panel_id, self.drop_index(event.position().y()))
        event.acceptProposedAction()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().paintEvent(event)
        if self._indicator_y is not None:
            painter = QPainter(self)
            painter.setPen(QPen(QColor(ACCENT), 3))
            painter.drawLine(4, self._indicator_y, self.width() - 4, self._indicator_y)
