"""The model dialog's box of the other models the app may need besides SDXL (ControlNets, depth
estimator, DINO, CLIP): whether each is on this computer, and its download."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QProgressBar, QPushButton, QWidget

from ...engine.hub import (
    OPTIONAL_MODELS,
    PICKLES_REFUSED,
    complete_snapshot,
    has_only_pickle_weights,
    missing_parts,
)
from .model_download import SINGLE_MODEL_PATTERNS, ModelDownload, show_progress


class OtherModelsBox(QGroupBox):
    """The hub models besides SDXL that the app may need (``engine.hub.OPTIONAL_MODELS``):
    whether each is on this computer (a complete snapshot) and a Download button, one download
    at a time with progress and cancel. A cancelled download stays "not downloaded"."""

    def __init__(self, download_fn: Callable | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Other models (optional: control maps, consistency scores, full-size previews)", parent)
        self.download = ModelDownload(download_fn, self)
        self.download.progress.connect(
            lambda done, total, rate: show_progress(self.progress, self.progress_text, done, total, rate))
        self.download.finished.connect(self._on_downloaded)
        self.download.failed.connect(lambda message: self._ended(message))
        self.download.cancelled.connect(
            lambda: self._ended(f"Download of {self._current} cancelled: press Download to resume it."))
        self._current = ""
        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        self.status: dict[str, QLabel] = {}
        self.buttons: dict[str, QPushButton] = {}
        for row, (what, repo_id) in enumerate(OPTIONAL_MODELS):
            name = QLabel(f"{what}<br><span style='color: gray'>{repo_id}</span>")
            name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.status[repo_id] = QLabel("")
            self.buttons[repo_id] = QPushButton("Download")
            self.buttons[repo_id].clicked.connect(lambda _checked=False, r=repo_id: self.start(r))
            grid.addWidget(name, row, 0, 1, 2)
            grid.addWidget(self.status[repo_id], row, 2)
            grid.addWidget(self.buttons[repo_id], row, 3)
        row = len(OPTIONAL_MODELS)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.clicked.connect(self.download.cancel)
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("Hint")
        self.progress_text.setWordWrap(True)
        grid.addWidget(self.progress, row, 0, 1, 3)
        grid.addWidget(self.cancel_button, row, 3)
        grid.addWidget(self.progress_text, row + 1, 0, 1, 4)
        self.progress.hide()
        self.cancel_button.hide()
        self.refresh()

    def refresh(self) -> None:
        running = self.download.running
        for repo_id, label in self.status.items():
            present = complete_snapshot(repo_id) is not None
            label.setText("on this computer" if present else "not downloaded")
            self.buttons[repo_id].setEnabled(not running and not present)

    def start(self, repo_id: str) -> None:
        if self.download.running:
            return
        self._current = repo_id
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.progress_text.setText(f"Connecting to the hub for {repo_id}…")
        self.download.start(repo_id, patterns=SINGLE_MODEL_PATTERNS)
        self.refresh()

    def _ended(self, text: str) -> None:
        self.cancel_button.hide()
        self.download.wait(2.0)  # the thread emits its last signal just before it ends
        self.progress_text.setText(text)
        self.refresh()

    def _on_downloaded(self, folder: str) -> None:
        missing = missing_parts(Path(folder))
        if not missing:
            self.progress.setValue(1000)
            self._ended(f"{self._current} downloaded to {folder}")
        elif has_only_pickle_weights(folder):
            self._ended(f"{self._current} has {PICKLES_REFUSED}.")
        else:
            self._ended(f"{self._current} has no complete .safetensors weights (missing: {', '.join(missing[:3])}); "
                        "pickle weights (.bin) are never downloaded nor loaded.")
