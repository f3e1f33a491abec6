"""Choosing the model: a hub download with progress and cancel, a local folder, a single
.safetensors file, or the built-in ``tiny`` model (random weights, for trying the app); and the
other models the app may need (:mod:`.other_models`). Downloads: :mod:`.model_download`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.hub import missing_parts
from ...engine.models import TINY, TINY_MODELS, ModelSourceError, classify_source, known_base
from ..support import VerticalScroller, connect_command, fit_to_screen
from .model_download import ModelDownload, is_cached, likely_gpu, show_progress
from .other_models import OtherModelsBox

DEFAULT_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"
TINY_LABEL = "Built-in “tiny” model: random weights, pictures are noise, for trying the app"
TINY_BASES = {"tiny": "SDXL", "tiny-sd15": "SD 1.5", "tiny-sd2": "SD 2 base", "tiny-sd2v": "SD 2.1 (v-prediction)"}
"""What each built-in tiny model is shaped like (the choice beside the tiny button)."""

class ModelDialog(QDialog):
    """Pick the model the app generates with. ``source()`` is the choice after ``exec()``."""

    HUB, FOLDER, FILE, TINY = range(4)

    def __init__(self, current: str = "", parent: QWidget | None = None,
                 download_fn: Callable | None = None, first_run: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose the model")
        self.setMinimumWidth(620)
        self._source = ""
        self.download = ModelDownload(download_fn, self)
        self.download.progress.connect(self._on_progress)
        self.download.finished.connect(self._on_downloaded)
        self.download.failed.connect(self._on_download_failed)
        self.download.cancelled.connect(self._on_download_cancelled)

        # the choices scroll on a short screen; the problem and the buttons stay in view
        content = QWidget()
        body = QVBoxLayout(content)
        body.setContentsMargins(0, 0, 0, 0)
        intro = QLabel(
            "StyleAligned Desktop draws with an SDXL, SD 1.5 or SD 2.x model (which one is told from "
            "the model itself). Pick where it comes from; you can change it later in Settings."
            if first_run else "Pick the SDXL, SD 1.5 or SD 2.x model to draw with.")
        intro.setWordWrap(True)
        body.addWidget(intro)
        self.group = QButtonGroup(self)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        body.addLayout(grid)
        row = self._add_hub_source(grid, 0)
        row = self._add_local_sources(grid, row)
        self._add_tiny_source(grid, row)
        grid.setColumnMinimumWidth(0, 18)
        self.other_models = OtherModelsBox(download_fn, self)
        body.addWidget(self.other_models)
        body.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(VerticalScroller(content), 1)
        self.message = QLabel("")
        self.message.setObjectName("ErrorBanner")
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Use this model")
        self.buttons.accepted.connect(self.try_accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        for widget, kind in ((self.hub_id, self.HUB), (self.folder_path, self.FOLDER),
                             (self.file_path, self.FILE)):
            widget.textEdited.connect(lambda _t, k=kind: self.group.button(k).setChecked(True))
        self.group.idToggled.connect(lambda *_: self._refresh())
        self._select_current(current)
        self._refresh()

    # ----- construction (one radio button and its fields per source, rows of one grid) ------
    def _add_hub_source(self, grid: QGridLayout, row: int) -> int:
        """A hub id to download, its precision, where it goes, the download's progress; the
        next free row."""
        from huggingface_hub import constants

        self.hub_radio = QRadioButton("Download from the Hugging Face hub")
        self.group.addButton(self.hub_radio, self.HUB)
        self.hub_id = QLineEdit(DEFAULT_HUB_ID)
        self.hub_id.setPlaceholderText("owner/model, e.g. " + DEFAULT_HUB_ID)
        self.half_precision = QCheckBox("Half-precision weights only (for GPUs; half the download)")
        self.half_precision.setChecked(likely_gpu())
        cache = QLabel(f"Saved in the Hugging Face cache ({constants.HF_HUB_CACHE}), about 7 GB "
                       "for SDXL. A cancelled download resumes where it stopped.")
        cache.setObjectName("Hint")
        cache.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("Hint")
        self.progress_text.hide()
        self.download_button = QPushButton("Download")
        connect_command(self.download_button.clicked, self.start_download)
        self.cancel_download_button = QPushButton("Cancel download")
        connect_command(self.cancel_download_button.clicked, self.download.cancel)
        self.cancel_download_button.hide()
        grid.addWidget(self.hub_radio, row, 0, 1, 3)
        grid.addWidget(self.hub_id, row + 1, 1)
        grid.addWidget(self.download_button, row + 1, 2)
        grid.addWidget(self.half_precision, row + 2, 1, 1, 2)
        grid.addWidget(cache, row + 3, 1, 1, 2)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_download_button)
        grid.addLayout(progress_row, row + 4, 1, 1, 2)
        grid.addWidget(self.progress_text, row + 5, 1, 1, 2)
        return row + 6

    def _add_local_sources(self, grid: QGridLayout, row: int) -> int:
        """A diffusers model folder or a single checkpoint file on this computer, typed or
        browsed for; the next free row."""
        self.folder_radio = QRadioButton("A diffusers model folder on this computer")
        self.folder_path = QLineEdit()
        self.file_radio = QRadioButton("A single .safetensors checkpoint")
        self.file_path = QLineEdit()
        for radio, path, kind, hint, browse in (
                (self.folder_radio, self.folder_path, self.FOLDER, "folder with model_index.json",
                 self._browse_folder),
                (self.file_radio, self.file_path, self.FILE, "e.g. sd_xl_base_1.0.safetensors",
                 self._browse_file)):
            path.setPlaceholderText(hint)
            browse_button = QPushButton("Browse…")
            connect_command(browse_button.clicked, browse)
            self.group.addButton(radio, kind)
            grid.addWidget(radio, row, 0, 1, 3)
            grid.addWidget(path, row + 1, 1)
            grid.addWidget(browse_button, row + 1, 2)
            row += 2
        return row

    def _add_tiny_source(self, grid: QGridLayout, row: int) -> None:
        self.tiny_radio = QRadioButton(TINY_LABEL)
        self.group.addButton(self.tiny_radio, self.TINY)
        tiny_note = QLabel("Works offline and fast, but every picture is coloured noise: use it "
                           "to learn the app, not to make art.")
        tiny_note.setObjectName("Hint")
        tiny_note.setWordWrap(True)
        self.tiny_choice = QComboBox()
        for name in TINY_MODELS:
            self.tiny_choice.addItem(f"{name}: shaped like {TINY_BASES[name]}", name)
        self.tiny_choice.activated.connect(lambda _i: self.tiny_radio.setChecked(True))
        grid.addWidget(self.tiny_radio, row, 0, 1, 3)
        grid.addWidget(self.tiny_choice, row + 1, 1, 1, 2, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(tiny_note, row + 2, 1, 1, 2)

    # ----- choice ---------------------------------------------------------------------------
    def _select_current(self, current: str) -> None:
        try:
            kind = classify_source(current) if current else None
        except ModelSourceError:
            kind = None
        if kind == "tiny":
            self.tiny_choice.setCurrentIndex(max(0, self.tiny_choice.findData(current.strip())))
            self.tiny_radio.setChecked(True)
        elif kind == "folder":
            self.folder_path.setText(current)
            self.folder_radio.setChecked(True)
        elif kind == "single_file":
            self.file_path.setText(current)
            self.file_radio.setChecked(True)
        else:
            if kind == "hub":
                self.hub_id.setText(current)
            self.hub_radio.setChecked(True)

    def kind(self) -> int:
        return self.group.checkedId()

    def candidate(self) -> str:
        return {
            self.HUB: self.hub_id.text().strip(),
            self.FOLDER: self.folder_path.text().strip(),
            self.FILE: self.file_path.text().strip(),
            self.TINY: self.tiny_choice.currentData() or TINY,
        }.get(self.kind(), "")

    def source(self) -> str:
        return self._source

    def validate(self) -> str | None:
        """None when the candidate is usable, else a message naming the problem."""
        candidate = self.candidate()
        if not candidate:
            return "Enter a hub id, choose a folder or a file, or pick the built-in tiny model."
        try:
            kind = classify_source(candidate)
        except ModelSourceError as exc:
            return str(exc)
        expected = {self.HUB: "hub", self.FOLDER: "folder", self.FILE: "single_file",
                    self.TINY: "tiny"}[self.kind()]
        if kind != expected:
            return {"hub": f"{candidate} is not a hub id like {DEFAULT_HUB_ID}",
                    "folder": f"{candidate} is not a folder",
                    "single_file": f"{candidate} is not a .safetensors file"}.get(expected, "")
        if kind == "hub" and not is_cached(candidate):
            return (f"“{candidate}” is not downloaded yet: press Download first "
                    "(or choose another source).")
        if kind in ("folder", "single_file"):
            try:
                known_base(candidate)
            except ModelSourceError as exc:
                return str(exc)
        return None

    def try_accept(self) -> None:
        problem = self.validate()
        if problem:
            self.show_message(problem)
            return
        self._source = self.candidate()
        self.accept()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        if text and self.isVisible():
            fit_to_screen(self)  # taller for the message's lines, not squeezing the choices

    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        fit_to_screen(self)
        super().showEvent(event)

    def _refresh(self) -> None:
        downloading = self.download.running
        self.download_button.setEnabled(self.kind() == self.HUB and not downloading)
        self.ok_button.setEnabled(not downloading)
        self.show_message("")

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a diffusers model folder")
        if folder:
            self.folder_path.setText(folder)
            self.folder_radio.setChecked(True)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose an SDXL, SD 1.5 or SD 2.x checkpoint", "",
                                              "Safetensors checkpoint (*.safetensors)")
        if path:
            self.file_path.setText(path)
            self.file_radio.setChecked(True)

    # ----- download -------------------------------------------------------------------------
    def start_download(self) -> None:
        repo_id = self.hub_id.text().strip()
        try:
            if classify_source(repo_id) != "hub":
                raise ModelSourceError(f"{repo_id} is not a hub id like {DEFAULT_HUB_ID}")
        except ModelSourceError as exc:
            self.show_message(str(exc))
            return
        self.hub_radio.setChecked(True)
        self.show_message("")
        self.progress.setValue(0)
        self.progress.show()
        self.progress_text.setText(f"Connecting to the hub for {repo_id}…")
        self.progress_text.show()
        self.cancel_download_button.show()
        self.download.start(repo_id, self.half_precision.isChecked())
        self._refresh()

    def _on_progress(self, done: float, total: float, rate: float) -> None:
        show_progress(self.progress, self.progress_text, done, total, rate)

    def _download_ended(self) -> None:
        self.cancel_download_button.hide()
        # the thread emits its last signal just before it ends
        self.download.wait(2.0)
        self._refresh()

    def _on_downloaded(self, folder: str) -> None:
        self._download_ended()
        self.progress.setValue(1000)
        self.progress_text.setText(f"Downloaded to {folder}")
        missing = missing_parts(Path(folder))
        if missing:
            self.show_message(
                f"The download finished but lacks {', '.join(missing[:3])} in the chosen precision: "
                "untick “Half-precision weights only” and download again.")
            return
        self._source = self.hub_id.text().strip()
        self.accept()

    def _on_download_failed(self, message: str) -> None:
        self._download_ended()
        self.progress.hide()
        self.progress_text.hide()
        self.show_message(message)

    def _on_download_cancelled(self) -> None:
        self._download_ended()
        self.progress_text.setText("Download cancelled. Press Download to resume it.")

    def reject(self) -> None:
        for download in (self.download, self.other_models.download):
            if download.running:
                download.cancel()
                download.wait(5.0)
        super().reject()

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.hub_id.hasFocus():
            self.start_download()
            return
        super().keyPressEvent(event)


