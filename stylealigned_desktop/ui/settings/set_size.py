"""The set's size in the Settings panel: a preset of the model's base or width × height.

The presets follow the model (spec section 14): the sizes its base was trained at about (SDXL
1024 × 1024 and its aspects, SD 1.5 and SD 2 base 512, SD 2.1-768 768; ``size_presets``), told
from the model's config by whoever shows the model (:meth:`SetSizeChoice.show_native_side`).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ...session.generation import SDXL_SIDE, size_presets
from ..support import size_key, size_label, small_combo


def size_tip(native: int) -> str:
    """What the size presets are, for a model trained at ``native`` pixels a side."""
    return (f"Picture size. This model was trained at about {native} × {native}: these sizes give "
            "the best pictures; far larger ones repeat their subject (a wide panel's own size can "
            "be a panorama, drawn as windows of the model's size). Custom sizes must be multiples of 8.")


class SetSizeChoice(QWidget):
    """A preset combo above width × height boxes; ``edited`` when a preset is picked (the boxes'
    own ``valueChanged`` tells of typed sizes)."""

    edited = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.native = 0
        """The model's native side the presets are of (0: none shown yet)."""
        self.preset = small_combo()
        self.width_box, self.height_box = QSpinBox(), QSpinBox()
        for box in (self.width_box, self.height_box):
            box.setRange(64, 4096)
            box.setSingleStep(64)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.preset)
        boxes = QHBoxLayout()
        for widget in (self.width_box, QLabel("×"), self.height_box, QLabel("px")):
            boxes.addWidget(widget)
        boxes.addStretch(1)
        layout.addLayout(boxes)
        self.show_native_side(SDXL_SIDE)
        self.preset.currentIndexChanged.connect(self._preset_chosen)

    def show_native_side(self, native: int) -> None:
        """Offer the presets of a model trained at ``native`` pixels a side."""
        if native == self.native:
            return
        self.native = native
        blocked = self.preset.blockSignals(True)
        self.preset.clear()
        for width, height in size_presets(native):
            self.preset.addItem(size_label(width, height), size_key((width, height)))
        self.preset.addItem("Custom", None)
        self.preset.blockSignals(blocked)
        for widget in (self.preset, self.width_box, self.height_box):
            widget.setToolTip(size_tip(native))
        self.sync()

    def sync(self) -> None:
        """Show the preset of the boxes' size, else Custom."""
        index = self.preset.findData(size_key((self.width_box.value(), self.height_box.value())))
        blocked = self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.count() - 1)
        self.preset.blockSignals(blocked)

    def _preset_chosen(self, index: int) -> None:
        data = self.preset.itemData(index)
        if data is None:
            return
        width, height = (int(v) for v in data.split("x"))
        for box, value in ((self.width_box, width), (self.height_box, height)):
            blocked = box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(blocked)
        self.edited.emit()
