"""Pickles never load: every model the user points to (SDXL pipeline, ControlNet, depth
estimator, DINO, CLIP) is loaded from safetensors only. A folder whose weights are ``.bin``
pickles is refused with a clear message, and the pickle is never opened.

The pickles here are "booby-trapped": unpickling one runs ``__reduce__``, which writes a marker
file. torch and the libraries unpickle with ``weights_only=True`` today, which would also stop
this particular object; ``torch.load`` is made permissive here (as older versions were) so the
test sees whether a loader reads the ``.bin`` file at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylealigned_desktop.engine.control import (
    ControlError,
    build_tiny_depth_estimator,
    load_controlnet,
    load_depth_estimator,
    tiny_controlnet,
)
from stylealigned_desktop.engine.models import ModelSourceError, load_pipeline
from stylealigned_desktop.evaluation.metrics import ClipEmbedder, DinoEmbedder, MetricModelError

from .test_metrics import build_tiny_clip, build_tiny_dino


def _write_marker(path):
    Path(path).write_text("unpickled")
    return {}


class Trap:
    """Unpickling this object writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return _write_marker, (self.marker,)


@pytest.fixture
def marker(tmp_path, monkeypatch):
    permissive = torch.load

    def load_anything(*args, **kwargs):
        kwargs["weights_only"] = False
        return permissive(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load_anything)
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a pickle was unpickled"


def trap_weights(folder: Path, marker: Path, pickle_name: str) -> None:
    """Replace the folder's safetensors weights with a booby-trapped pickle of that name."""
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.save(Trap(marker), folder / pickle_name)


def test_a_pipeline_folder_with_pickle_weights_is_refused(tiny_pipe, tmp_path, marker):
    folder = tmp_path / "sdxl"
    tiny_pipe.save_pretrained(folder)
    trap_weights(folder / "unet", marker, "diffusion_pytorch_model.bin")
    with pytest.raises(ModelSourceError, match="safetensors"):
        load_pipeline(str(folder), device="cpu")


def test_a_controlnet_folder_with_pickle_weights_is_refused(tiny_pipe, tmp_path, marker):
    folder = tmp_path / "controlnet"
    tiny_controlnet(tiny_pipe.unet).save_pretrained(folder)
    trap_weights(folder, marker, "diffusion_pytorch_model.bin")
    with pytest.raises(ControlError, match="pickle"):
        load_controlnet(str(folder), device="cpu")


def test_a_depth_estimator_with_pickle_weights_is_refused(tmp_path, marker):
    folder = tmp_path / "depth"
    model, processor = build_tiny_depth_estimator()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    trap_weights(folder, marker, "pytorch_model.bin")
    with pytest.raises(ControlError, match="pickle"):
        load_depth_estimator(str(folder), "cpu")


@pytest.mark.parametrize("build, loader", [(build_tiny_dino, DinoEmbedder), (build_tiny_clip, ClipEmbedder)])
def test_dino_and_clip_with_pickle_weights_are_refused(tmp_path, marker, build, loader):
    folder = build(tmp_path / "model")
    trap_weights(folder, marker, "pytorch_model.bin")
    with pytest.raises(MetricModelError, match="pickle"):
        loader.load(str(folder))


def test_the_trap_works(tmp_path, marker):
    """The booby trap fires when something does unpickle it (so the tests above can fail)."""
    torch.save(Trap(tmp_path / "other-marker"), tmp_path / "weights.bin")
    torch.load(tmp_path / "weights.bin")
    assert (tmp_path / "other-marker").read_text() == "unpickled"
    (tmp_path / "other-marker").unlink()
