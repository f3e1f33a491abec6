"""Moving a panel by drag: the MIME type a dragged panel travels as (its id) and the grip on each
card that starts the drag. The panel list (:mod:`.panel_list`) takes the drop."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, Qt
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QApplication, QLabel, QWidget

PANEL_MIME = "application/x-stylealigned-panel"


class DragHandle(QLabel):
    """The grip of a card: press and drag to move the panel."""

    def __init__(self, card: QWidget) -> None:
        super().__init__("⠿")
        self.card = card
        self.setToolTip("Drag to reorder (or Alt+Up / Alt+Down)")
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        font = self.font()
        font.setPointSize(font.pointSize() + 4)
        self.setFont(font)
        self._press: QPoint | None = None

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
            self.card.clicked.emit(self.card.panel_id)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._press is None:
            return
        if (event.position().toPoint() - self._press).manhattanLength() < QApplication.startDragDistance():
            return
        self._press = None
        drag = QDrag(self)
        mime = QMimeData()
        mime.setData(PANEL_MIME, self.card.panel_id.encode("utf-8"))
        drag.setMimeData(mime)
        drag.setPixmap(self.card.grab().scaledToWidth(min(260, self.card.width()),
                                                      Qt.TransformationMode.SmoothTransformation))
        drag.exec(Qt.DropAction.MoveAction)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._press = None
