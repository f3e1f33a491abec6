"""Downloading a model from the Hugging Face hub: ``huggingface_hub.snapshot_download`` in a
background thread (never the engine's) whose reports reach the dialog through a ThreadBridge, the
files it fetches (safetensors only, in the chosen precision), and its failures in words. A
cancelled download keeps its partial files and resumes where it stopped next time."""

from __future__ import annotations

import io
import logging
import platform
import shutil
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QProgressBar

from ...engine.hub import complete_snapshot
from ..threads import ThreadBridge

log = logging.getLogger(__name__)

# What a diffusers SDXL or SD 1.x / 2.x repository needs: configs, tokenizers and the safetensors
# weights of each component. Left out: pickle weights, ONNX/Flax/OpenVINO exports, the big
# single-file checkpoints at the top of SDXL and SD repositories, and SD's safety checker (the
# engine decodes its own pictures and never loads it; hub.OPTIONAL_COMPONENTS).
_IGNORE_ALWAYS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.onnx", "*.onnx_data", "*.msgpack",
                  "*.h5", "*.ot", "*openvino*", "sd_xl_*.safetensors", "v1-5-pruned*.safetensors",
                  "v2-1_*.safetensors", "512-base-ema*.safetensors", "768-v-ema*.safetensors",
                  "safety_checker/*", "*.png", "*.jpg"]
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
