"""Small widgets (and the label of a size choice) that several parts of the window share."""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QWidget


def size_label(width: int, height: int) -> str:
    """A size as a size chooser shows it: ``1344 × 768  (landscape 7:4)``."""
    shape = "square" if width == height else "landscape" if width > height else "portrait"
    divisor = math.gcd(width, height)
    return f"{width} × {height}  ({shape} {width // divisor}:{height // divisor})"


THUMB_BUTTON_ROOM = 10
"""Pixels a picture button needs beside its icon: the style's frame and the app stylesheet's
2 px padding on each side (8 left the app's own look a pixel short, its picture cut)."""


def size_key(size: tuple[int, int]) -> str:
    """A size as a size chooser's item data: ``"1344x768"`` (read back with ``parse_size``)."""
    return f"{size[0]}x{size[1]}"


def small_combo() -> QComboBox:
    """A combo box that does not insist on the width of its longest item."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


class ElidedLabel(QLabel):
    """One line of text, cut with “…” to the width it gets; the full text is its tooltip."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt)
        self._full = text or ""
        self.setToolTip(self._full if len(self._full) > 20 else "")
        self._elide()

    def text(self) -> str:
        return self._full

    def _elide(self) -> None:
        width = max(10, self.width())
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                                      width))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(event)
        self._elide()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt)
        return QSize(10, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt)
        return QSize(40, super().sizeHint().height())


def set_style_flag(widget: QWidget, name: str, on: bool, *restyled: QWidget) -> None:
    """Set the dynamic property ``name`` that the stylesheet selects on (e.g. ``[stale="true"]``)
    and restyle ``widget`` and ``restyled`` (children its selector reaches): Qt applies a
    stylesheet when a widget is polished, and a changed property alone leaves the old look."""
    if widget.property(name) == on:
        return
    widget.setProperty(name, on)
    for target in (widget, *restyled):
        target.style().unpolish(target)
        target.style().polish(target)
