"""Settings widgets for what runs with the model: memory mode, VAE and LoRAs (issue 12), and
the live preview decoder (issue 27).

Widgets only: they show and edit values (``Lora`` choices, a memory mode, a VAE source) and
signal ``edited``; the Settings panel turns them into the session's ``GenerationSettings``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.lora import LoraError, check_lora_file
from ...engine.models import base_of_source
from ...engine.preview_choice import PREVIEW_LABELS, choose_preview
from ...engine.request import Lora
from ..support import accept_as_copy, connect_command, local_paths, small_combo
from ..support import icon as icon_

MEMORY_LABELS = {
    "auto": "Auto (fits this computer)",
    "fast": "Fast (all on the GPU)",
    "balanced": "Balanced (models take turns)",
    "low": "Low (layer by layer, slowest)",
}
MEMORY_TIP = (
    "Where the models live while pictures are made. Fast keeps everything on the graphics card "
    "(needs about 10 GB for SDXL, 13 GB with a ControlNet). Balanced moves each model to the card "
    "only while it works: 8–12 GB cards. Low brings the model in layer by layer: it runs on very "
    "small cards and Macs with little memory, but slowly. Auto picks the fastest that fits. The "
    "pictures are the same in every mode."
)
FP16_FIX_VAE = "madebyollin/sdxl-vae-fp16-fix"
VAE_TIP = (
    "The decoder that turns the model's result into pixels. Empty: the model's own. "
    f"{FP16_FIX_VAE} decodes in half precision without black or speckled pictures, using less "
    "memory. A hub id, a folder or a .safetensors file."
)
LORA_TIP = (
    "LoRAs add a learned style or character to the model. Drop .safetensors LoRA files "
    "here (kohya or diffusers files) or use Add. The slider is each LoRA's strength: 1 as "
    "trained, 0 off. A LoRA made for another base (SD 1.5 on SDXL, SDXL on SD 2) is refused."
)
WEIGHT_STEPS = 20
"""Slider positions per unit of weight (0.05 per step)."""
WEIGHT_RANGE = (-1.0, 2.0)


def choice_combo(labels: dict[str, str], tip: str) -> QComboBox:
    """A small combo of ``labels`` (value: label), each item's data its value."""
    combo = small_combo()
    for value, label in labels.items():
        combo.addItem(label, value)
    combo.setToolTip(tip)
    return combo


def memory_combo() -> QComboBox:
    return choice_combo(MEMORY_LABELS, MEMORY_TIP)


def show_no_gpu(combo: QComboBox, reason: str | None) -> None:
    """Say beside the modes what Auto picks on a computer without a GPU, and why (None: a GPU)."""
    auto = combo.findData("auto")
    combo.setItemText(auto, "Auto (Fast here: no GPU)" if reason else MEMORY_LABELS["auto"])
    tip = f"{reason[0].upper()}{reason[1:]}.\n\n{MEMORY_TIP}" if reason else MEMORY_TIP
    combo.setToolTip(tip)
    for index in range(combo.count()):
        combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)


PREVIEWS_TIP = (
    "What the live previews are made with while the pictures sharpen. Latent factors: instant, at "
    "1/8 of the size. Tiny autoencoder (TAESDXL, or TAESD for SD 1.x / 2.x; download it in Models "
    "→ Other models): the full size, close to the final picture. Full VAE: exact and slow, every "
    "few steps. Auto takes the tiny autoencoder when it is downloaded and there is a GPU. Previews "
    "never change a picture."
)


def previews_combo() -> QComboBox:
    return choice_combo(PREVIEW_LABELS, PREVIEWS_TIP)


def show_auto_previews(combo: QComboBox, model: str, server: str = "", accelerator: bool = True) -> None:
    """Say beside Auto which decoder it takes for ``model`` (its reason in the tip) on this
    computer (``accelerator``: it has a GPU); a server decides with what it has downloaded."""
    if server:
        label, tip = "Auto (the server's choice)", PREVIEWS_TIP
    else:
        base = base_of_source(model) if model else None
        choice = choose_preview("auto", model, accelerator=accelerator, family=base.family if base else "sdxl")
        label = f"Auto ({PREVIEW_LABELS[choice.decoder].split(' (')[0].lower()} here)"
        tip = f"{choice.said.removeprefix('previews: ')}.\n\n{PREVIEWS_TIP}"
    combo.setItemText(combo.findData("auto"), label)
    combo.setItemData(combo.findData("auto"), tip, Qt.ItemDataRole.ToolTipRole)


class VaeChoice(QWidget):
    """An editable VAE source with the fp16-fix VAE offered and a file/folder chooser."""

    edited = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.combo = small_combo()
        self.combo.setEditable(True)
        self.combo.addItem("", "")
        self.combo.addItem(FP16_FIX_VAE, FP16_FIX_VAE)
        self.combo.lineEdit().setPlaceholderText("the model's own")
        self.combo.setToolTip(VAE_TIP)
        self.combo.activated.connect(lambda _index: self.edited.emit())
        self.combo.lineEdit().editingFinished.connect(self.edited.emit)
        self.choose_button = QToolButton()
        self.choose_button.setIcon(icon_("open"))
        self.choose_button.setAutoRaise(True)
        self.choose_button.setToolTip("Choose a VAE .safetensors file")
        connect_command(self.choose_button.clicked, self.choose_file)
        row.addWidget(self.combo, 1)
        row.addWidget(self.choose_button)

    def source(self) -> str:
        return self.combo.currentText().strip()

    def set_source(self, source: str) -> None:
        if self.combo.currentText() != source:
            self.combo.setEditText(source)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a VAE", self.source(),
                                              "VAE weights (*.safetensors)")
        if path:
            self.set_source(path)
            self.edited.emit()


class LoraRow(QFrame):
    """One LoRA: its file name, a weight slider with its value, and a remove button."""

    weight_changed = Signal()
    remove_requested = Signal()

    def __init__(self, lora: Lora, parent=None) -> None:
        super().__init__(parent)
        self.path = lora.path
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.name = QLabel(Path(lora.path).name)
        self.name.setToolTip(lora.path)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(WEIGHT_RANGE[0] * WEIGHT_STEPS), int(WEIGHT_RANGE[1] * WEIGHT_STEPS))
        self.slider.setToolTip("Strength of this LoRA: 1 as trained, 0 off")
        self.value = QLabel()
        self.value.setMinimumWidth(36)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip(f"Remove {self.name.text()}")
        row.addWidget(self.name, 1)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value)
        row.addWidget(self.remove_button)
        self.set_weight(lora.weight)
        self.slider.valueChanged.connect(self._moved)
        connect_command(self.remove_button.clicked, self.remove_requested.emit)

    def set_weight(self, weight: float) -> None:
        blocked = self.slider.blockSignals(True)
        self.slider.setValue(round(weight * WEIGHT_STEPS))
        self.slider.blockSignals(blocked)
        self._weight = weight
        self.value.setText(f"{weight:.2f}")

    def lora(self) -> Lora:
        return Lora(self.path, self._weight)

    def _moved(self, position: int) -> None:
        self._weight = round(position / WEIGHT_STEPS, 2)
        self.value.setText(f"{self._weight:.2f}")
        self.weight_changed.emit()


class LoraList(QWidget):
    """The session's LoRAs: rows with weight sliders, Add…, and drops of ``.safetensors`` files."""

    edited = Signal()
    refused = Signal(str)
    """A dropped file that is not a LoRA file (shown to the user)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setToolTip(LORA_TIP)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.rows_box = QVBoxLayout()
        layout.addLayout(self.rows_box)
        self.empty_hint = QLabel("No LoRA: drop .safetensors LoRA files made for the model here")
        self.empty_hint.setObjectName("Hint")
        self.empty_hint.setWordWrap(True)  # a narrow Settings dock wraps it instead of scrolling
        layout.addWidget(self.empty_hint)
        self.add_button = QPushButton("Add LoRA…")
        self.add_button.setToolTip(LORA_TIP)
        connect_command(self.add_button.clicked, self.choose_files)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.rows: list[LoraRow] = []
        self.model = ""
        """The chosen model source: dropped LoRAs are checked against its base."""

    def loras(self) -> tuple[Lora, ...]:
        return tuple(row.lora() for row in self.rows)

    def set_loras(self, loras: tuple[Lora, ...]) -> None:
        if self.loras() == tuple(loras):
            return
        if [row.path for row in self.rows] == [lora.path for lora in loras]:
            for row, lora in zip(self.rows, loras):
                row.set_weight(lora.weight)
            return
        for row in self.rows:
            row.deleteLater()
        self.rows = []
        for lora in loras:
            self._add_row(lora)
        self.empty_hint.setVisible(not self.rows)

    def _add_row(self, lora: Lora) -> None:
        row = LoraRow(lora)
        row.weight_changed.connect(self.edited.emit)
        row.remove_requested.connect(lambda row=row: self._remove(row))
        self.rows.append(row)
        self.rows_box.addWidget(row)

    def _remove(self, row: LoraRow) -> None:
        self.rows.remove(row)
        row.deleteLater()
        self.empty_hint.setVisible(not self.rows)
        self.edited.emit()

    def add_files(self, paths: list[str]) -> None:
        """Add LoRA files (weight 1); a file that is not a LoRA for the chosen model's base is
        refused now, with the engine's one line saying why (its header is read, not the weights)."""
        added = False
        base = base_of_source(self.model) if self.model else None
        for path in paths:
            try:
                check_lora_file(Lora(path, 1.0), base)
            except LoraError as refusal:
                self.refused.emit(str(refusal))
                continue
            self._add_row(Lora(path, 1.0))
            added = True
        self.empty_hint.setVisible(not self.rows)
        if added:
            self.edited.emit()

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add LoRA files", "", "LoRA (*.safetensors)")
        if paths:
            self.add_files(paths)

    @staticmethod
    def _takes(event) -> bool:
        """Files, not only PNGs: a picture the app made is for the Settings panel around the list
        (its settings are used), so it passes on to it."""
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        return bool(urls) and not all(url.path().lower().endswith(".png") for url in urls)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._takes(event):
            accept_as_copy(event)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        if not self._takes(event):
            event.ignore()
            return
        local, other = local_paths(event.mimeData().urls())
        if other and not local:
            self.refused.emit(f"Only files on this computer can be added ({other[0]})")
        if local:
            self.add_files(local)
        accept_as_copy(event)
