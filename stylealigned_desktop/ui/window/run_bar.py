"""The bar above the pictures: Generate, Cancel, the progress of the run and the queue (driven
by :class:`~.run_controller.RunController`)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton

from ..support import icon


class RunBar(QFrame):
    """Generate / Cancel, the progress bar with step count and time left, the queue."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 2)
        self.generate_button = QPushButton(icon("generate", "#1a1a1a"), "Generate")
        self.generate_button.setObjectName("GenerateButton")
        self.generate_button.setToolTip("Generate every panel in one shared style (Ctrl+Enter)")
        self.generate_button.setIconSize(QSize(16, 16))
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.setObjectName("CancelButton")
        self.cancel_button.setToolTip("Stop the running generation (Esc)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Ready")
        self.progress.setMinimumWidth(140)
        self.queue_label = QLabel("")
        self.queue_label.setObjectName("Hint")
        self.tiny_label = QLabel("tiny model: its pictures are noise")
        self.tiny_label.setObjectName("TinyWarning")
        self.tiny_label.setToolTip("The built-in tiny model has random weights. Choose a real "
                                   "SDXL model (Settings → Model) to make art.")
        layout.addWidget(self.generate_button)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.progress, 1)
        layout.addWidget(self.queue_label)
