"""Choosing the model: a hub download with progress and cancel, a local folder, a single
.safetensors file, or the built-in ``tiny`` model (random weights, for trying the app); and the
other models the app may need (ControlNets, depth estimator, DINO, CLIP), each downloadable.

Downloads go into the Hugging Face cache through ``huggingface_hub.snapshot_download`` in a
background thread (never the engine's; its reports reach the dialog through a ThreadBridge): a
cancelled download keeps its partial files and resumes where it stopped next time.
"""

from __future__ import annotations

import io
import logging
import platform
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.hub import (
    OPTIONAL_MODELS,
    PICKLES_REFUSED,
    complete_snapshot,
    has_only_pickle_weights,
    missing_parts,
)
from ..engine.models import TINY, ModelSourceError, classify_source
from .actions import connect_command
from .bridge import ThreadBridge

log = logging.getLogger(__name__)

DEFAULT_HUB_ID = "stabilityai/stable-diffusion-xl-base-1.0"
TINY_LABEL = "Built-in “tiny” model: random weights, pictures are noise, for trying the app"

# What a diffusers SDXL repository needs: configs, tokenizers and the safetensors weights of each
# component. Left out: pickle weights, ONNX/Flax/OpenVINO exports and the big single-file
# checkpoints at the top of SDXL repositories (sd_xl_*.safetensors).
_IGNORE_ALWAYS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.onnx", "*.onnx_data", "*.msgpack",
                  "*.h5", "*.ot", "*openvino*", "sd_xl_*.safetensors", "*.png", "*.jpg"]
_FULL_PRECISION = ["*/diffusion_pytorch_model.safetensors", "*/model.safetensors"]


def download_patterns(half_precision: bool) -> list[str]:
    """ignore_patterns for snapshot_download: fp16 variant files only, or full precision only."""
    if half_precision:
        return _IGNORE_ALWAYS + _FULL_PRECISION
    return _IGNORE_ALWAYS + ["*.fp16.safetensors"]


SINGLE_MODEL_PATTERNS = _IGNORE_ALWAYS + ["*.fp16.safetensors"]
"""ignore_patterns for a ControlNet, depth, DINO or CLIP repository: its full-precision
safetensors weights and configs (the loaders cast to the engine's dtype)."""


def likely_gpu() -> bool:
    """A cheap guess (no torch import) whether half-precision weights suit this machine."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return True
    return shutil.which("nvidia-smi") is not None or shutil.which("rocm-smi") is not None


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def is_cached(repo_id: str) -> bool:
    """Whether a hub model is completely in the Hugging Face cache (a cancelled download
    leaves its index and some files: that is not a model yet)."""
    return complete_snapshot(repo_id) is not None


def show_progress(bar: QProgressBar, text: QLabel, done: float, total: float, rate: float) -> None:
    """A download's bytes on a 0..1000 bar and in words (done, total, speed, time left)."""
    if total > 0:
        bar.setValue(int(1000 * min(1.0, done / total)))
    left = f", about {int((total - done) / rate)} s left" if rate > 0 and total > done else ""
    text.setText(f"{human_bytes(done)} of {human_bytes(total)} · {human_bytes(rate)}/s{left}")


class DownloadCancelled(Exception):
    """Raised inside the download threads once the user pressed Cancel."""


class ModelDownload(QObject):
    """One snapshot download in a background thread, reporting bytes and cancellable."""

    progress = Signal(float, float, float)
    """bytes done, bytes expected so far (grows as files are discovered), bytes per second."""
    finished = Signal(str)
    """The local snapshot folder."""
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, download_fn: Callable | None = None, parent=None) -> None:
        super().__init__(parent)
        self._download_fn = download_fn
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._bridge = ThreadBridge(self)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, repo_id: str, half_precision: bool = False, patterns: list[str] | None = None) -> None:
        """Download ``repo_id``: an SDXL pipeline in the chosen precision, or with ``patterns``
        (ignore_patterns) any other repository."""
        self._cancel.clear()
        self._bridge.wake()
        patterns = download_patterns(half_precision) if patterns is None else patterns
        self._thread = threading.Thread(target=self._run, args=(repo_id, patterns),
                                        name="stylealigned-download", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _progress_class(self):
        from huggingface_hub.utils import tqdm as hf_tqdm

        owner = self
        started = time.monotonic()
        lock = threading.Lock()

        class Progress(hf_tqdm):
            """Reports the "bytes written" bar of snapshot_download; raises on cancel."""

            def __init__(self, *args, **kwargs):
                kwargs["disable"] = False  # a GUI has no TTY; keep counting anyway
                kwargs["file"] = io.StringIO()
                self._bytes_bar = kwargs.get("name") == "huggingface_hub.snapshot_download"
                super().__init__(*args, **kwargs)

            def update(self, n=1):
                if owner._cancel.is_set():
                    raise DownloadCancelled()
                with lock:
                    result = super().update(n)
                    if self._bytes_bar:
                        elapsed = max(1e-3, time.monotonic() - started)
                        owner._bridge.post(owner.progress.emit, float(self.n),
                                           float(self.total or 0), float(self.n) / elapsed)
                return result

        return Progress

    def _run(self, repo_id: str, patterns: list[str]) -> None:
        try:
            download = self._download_fn
            if download is None:
                from huggingface_hub import snapshot_download as download
            folder = download(repo_id, ignore_patterns=patterns, tqdm_class=self._progress_class())
        except DownloadCancelled:
            self._bridge.post(self.cancelled.emit)
            return
        except Exception as exc:
            if self._cancel.is_set():
                self._bridge.post(self.cancelled.emit)
                return
            log.warning("download of %s failed: %r", repo_id, exc)
            self._bridge.post(self.failed.emit, download_error_message(repo_id, exc))
            return
        if self._cancel.is_set():
            self._bridge.post(self.cancelled.emit)
            return
        self._bridge.post(self.finished.emit, str(folder))


def download_error_message(repo_id: str, exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name in ("RepositoryNotFoundError",) or "404" in text:
        return (f"“{repo_id}” was not found on the Hugging Face hub (or it is private: log in "
                "with `hf auth login` first).")
    if name in ("GatedRepoError",) or "gated" in text.lower():
        return (f"“{repo_id}” is gated: accept its licence on huggingface.co and log in with "
                "`hf auth login`, then try again.")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "offline" in text.lower():
        return (f"Could not download “{repo_id}”: there is no connection to the Hugging Face hub "
                "(or offline mode is on). Connect and try again; what was downloaded is kept.")
    if isinstance(exc, OSError) and "space" in text.lower():
        return f"Not enough disk space to download “{repo_id}”: {text}"
    return f"Could not download “{repo_id}”: {text} ({name}). What was downloaded is kept."


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

        layout = QVBoxLayout(self)
        intro = QLabel(
            "StyleAligned Desktop draws with an SDXL model. Pick where it comes from; you can "
            "change it later in Settings." if first_run else
            "Pick the SDXL model to draw with.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.group = QButtonGroup(self)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)

        self.hub_radio = QRadioButton("Download from the Hugging Face hub")
        self.hub_id = QLineEdit(DEFAULT_HUB_ID)
        self.hub_id.setPlaceholderText("owner/model, e.g. " + DEFAULT_HUB_ID)
        self.half_precision = QCheckBox("Half-precision weights only (for GPUs; half the download)")
        self.half_precision.setChecked(likely_gpu())
        from huggingface_hub import constants

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

        self.folder_radio = QRadioButton("A diffusers model folder on this computer")
        self.folder_path = QLineEdit()
        self.folder_path.setPlaceholderText("folder with model_index.json")
        folder_browse = QPushButton("Browse…")
        connect_command(folder_browse.clicked, self._browse_folder)

        self.file_radio = QRadioButton("A single .safetensors checkpoint")
        self.file_path = QLineEdit()
        self.file_path.setPlaceholderText("e.g. sd_xl_base_1.0.safetensors")
        file_browse = QPushButton("Browse…")
        connect_command(file_browse.clicked, self._browse_file)

        self.tiny_radio = QRadioButton(TINY_LABEL)
        tiny_note = QLabel("Works offline and fast, but every picture is coloured noise: use it "
                           "to learn the app, not to make art.")
        tiny_note.setObjectName("Hint")
        tiny_note.setWordWrap(True)

        row = 0
        for radio, kind in ((self.hub_radio, self.HUB), (self.folder_radio, self.FOLDER),
                            (self.file_radio, self.FILE), (self.tiny_radio, self.TINY)):
            self.group.addButton(radio, kind)
        grid.addWidget(self.hub_radio, row, 0, 1, 3)
        row += 1
        grid.addWidget(self.hub_id, row, 1)
        grid.addWidget(self.download_button, row, 2)
        row += 1
        grid.addWidget(self.half_precision, row, 1, 1, 2)
        row += 1
        grid.addWidget(cache, row, 1, 1, 2)
        row += 1
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_download_button)
        grid.addLayout(progress_row, row, 1, 1, 2)
        row += 1
        grid.addWidget(self.progress_text, row, 1, 1, 2)
        row += 1
        grid.addWidget(self.folder_radio, row, 0, 1, 3)
        row += 1
        grid.addWidget(self.folder_path, row, 1)
        grid.addWidget(folder_browse, row, 2)
        row += 1
        grid.addWidget(self.file_radio, row, 0, 1, 3)
        row += 1
        grid.addWidget(self.file_path, row, 1)
        grid.addWidget(file_browse, row, 2)
        row += 1
        grid.addWidget(self.tiny_radio, row, 0, 1, 3)
        row += 1
        grid.addWidget(tiny_note, row, 1, 1, 2)
        grid.setColumnMinimumWidth(0, 18)

        self.other_models = OtherModelsBox(download_fn, self)
        layout.addWidget(self.other_models)

        self.message = QLabel("")
        self.message.setObjectName("ErrorBanner")
        self.message.setWordWrap(True)
        self.message.hide()
        layout.addWidget(self.message)
        layout.addStretch(1)

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

    # ----- choice ---------------------------------------------------------------------------
    def _select_current(self, current: str) -> None:
        try:
            kind = classify_source(current) if current else None
        except ModelSourceError:
            kind = None
        if kind == "tiny":
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
            self.TINY: TINY,
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
        path, _ = QFileDialog.getOpenFileName(self, "Choose an SDXL checkpoint", "",
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


class OtherModelsBox(QGroupBox):
    """The hub models besides SDXL that the app may need (``engine.hub.OPTIONAL_MODELS``):
    whether each is on this computer (a complete snapshot) and a Download button, one download
    at a time with progress and cancel. A cancelled download stays "not downloaded"."""

    def __init__(self, download_fn: Callable | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Other models (optional: control maps, consistency scores)", parent)
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
