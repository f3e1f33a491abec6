"""The mouse wheel scrolls what is under the pointer; it edits a value only in the field that has
the keyboard focus (a click or Tab puts it there).

Without this, one notch while scrolling the storyboard changed a *locked* seed, or switched a
control mode, of whatever card passed under the pointer.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

VALUE_WIDGETS = (QAbstractSpinBox, QComboBox, QAbstractSlider)
"""Widgets whose value the wheel changes (scroll bars excepted: scrolling is their job)."""


def scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    """The nearest scroll area ``widget`` sits in."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


class _UnfocusedWheel(QObject):
    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt)
        if event.type() != QEvent.Type.Wheel or watched.hasFocus():
            return False
        # Not for this field: the scroll area around it scrolls instead (handed over here, as
        # Qt passes an ignored wheel event on only when it came from the mouse itself).
        area = scroll_area_of(watched)
        if area is not None:
            viewport = area.viewport()
            at = viewport.mapFromGlobal(event.globalPosition().toPoint())
            QApplication.sendEvent(viewport, QWheelEvent(
                QPointF(at), event.globalPosition(), event.pixelDelta(), event.angleDelta(),
                event.buttons(), event.modifiers(), event.phase(), event.inverted()))
        return True


@functools.cache
def _unfocused_wheel() -> _UnfocusedWheel:
    return _UnfocusedWheel(QApplication.instance())


def wheel_edits_only_when_focused(root: QWidget) -> None:
    """Apply the rule to ``root`` and every value widget inside it (call again for widgets
    made later, e.g. a new storyboard card)."""
    for widget in (root, *root.findChildren(QWidget)):
        if isinstance(widget, VALUE_WIDGETS) and not isinstance(widget, QScrollBar):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel does not focus it
            widget.installEventFilter(_unfocused_wheel())
