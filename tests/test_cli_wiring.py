"""The command line's wiring, run in-process so the UNet's inputs can be seen: the SDXL size
conditioning of a non-square set, and ``--device cuda:N``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image

from stylealigned_desktop import cli
from stylealigned_desktop.engine.preview_decoders import FullVae, LatentFactors, TinyAutoencoder
from stylealigned_desktop.engine.request import GeneratedReference, Panel, SetRequest, check_device


@pytest.fixture
def unet_time_ids(monkeypatch):
    """The ``time_ids`` of every UNet call (original size, crop, target size per row)."""
    seen = []
    forward = UNet2DConditionModel.forward

    def recording(self, *args, **kwargs):
        seen.append(kwargs["added_cond_kwargs"]["time_ids"].detach().clone())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", recording)
    return seen


def test_generate_a_non_square_set_conditions_on_height_then_width(tmp_path, unet_time_ids, monkeypatch):
    decoded = []  # the command line shows no previews, so it decodes none (issue 27)
    for decoder in (LatentFactors, TinyAutoencoder, FullVae):
        monkeypatch.setattr(decoder, "decode", lambda self, x0: decoded.append(x0))
    out = tmp_path / "wide"
    code = cli.main(["generate", "--model", "tiny", "--steps", "2", "--width", "128", "--height", "64",
                     "--quiet", "--reference-prompt", "a castle", "--prompt", "a knight", "--scheduler", "euler",
                     "--out", str(out)])
    assert code == 0
    assert unet_time_ids and decoded == []
    expected = torch.tensor([64.0, 128.0, 0.0, 0.0, 64.0, 128.0])  # SDXL: (height, width), crop, (height, width)
    for time_ids in unet_time_ids:
        assert torch.equal(time_ids.float().cpu(), expected.expand_as(time_ids))
    for name in ("reference.png", "panel-01.png"):
        with Image.open(out / name) as picture:
            assert picture.size == (128, 64)


def test_device_accepts_cuda_n(tmp_path, capsys):
    assert check_device("cuda:1") == "cuda:1" and check_device("cpu") == "cpu"
    for bad in ("cuda:", "cuda:x", "gpu", "cuda:1 "):
        with pytest.raises(ValueError, match="cuda:N"):
            check_device(bad)
    assert SetRequest(model="tiny", style=GeneratedReference("a"), panels=(Panel("b", 1),), device="cuda:2").device == "cuda:2"
    with pytest.raises(SystemExit) as refused:
        cli.main(["generate", "--device", "gpu", "--model", "tiny", "--reference-prompt", "a", "--prompt", "b",
                  "--out", str(tmp_path / "x")])
    assert refused.value.code == 2 and "cuda:N" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("the rest checks the message on a computer without the asked-for GPU")
    code = cli.main(["generate", "--device", "cuda:1", "--model", "tiny", "--steps", "1", "--width", "64",
                     "--height", "64", "--quiet", "--reference-prompt", "a", "--prompt", "b",
                     "--out", str(tmp_path / "y")])
    assert code == 2 and "'cuda:1' was asked for" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["generate", "--out", "o", "--prompt", "b"], ["evaluate", "run"],
                                     ["invert", "p.png", "--out", "t.safetensors"],
                                     ["preprocess", "p.png", "--mode", "canny", "--out", "m.png"]])
def test_every_sub_command_takes_cuda_n(command, capsys):
    assert cli.build_parser().parse_args([*command, "--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(SystemExit) as refused:
        cli.build_parser().parse_args([*command, "--device", "gpu"])
    assert refused.value.code == 2 and "cuda:N" in capsys.readouterr().err


def test_the_desktop_apps_exit_code_is_the_one_the_app_exits_with():
    """The event loop's result is the process's exit code (it was always 0)."""
    script = ("import sys; from PySide6.QtCore import QTimer; from PySide6.QtWidgets import QApplication; "
              "from stylealigned_desktop.ui.app import _run; app = QApplication(sys.argv[:1]); "
              "QTimer.singleShot(0, lambda: app.exit(3)); raise SystemExit(_run(app))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr


def test_generate_previews_takes_the_settings_names_and_refuses_others(capsys):
    from stylealigned_desktop.engine.preview_choice import PREVIEW_LABELS
    from stylealigned_desktop.engine.request import PREVIEW_KINDS

    parser = cli.build_parser()
    base = ["generate", "--reference-prompt", "a castle", "--prompt", "a knight", "--out", "x"]
    assert parser.parse_args(base).previews == "off"  # nothing shows them: none decoded by default
    for kind in PREVIEW_LABELS:  # Settings → Previews' choices, every one
        assert parser.parse_args([*base, "--previews", kind]).previews == kind
    assert tuple(PREVIEW_LABELS) == PREVIEW_KINDS
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--previews", "taesd"])
    assert "'auto', 'factors', 'tiny', 'vae', 'off'" in capsys.readouterr().err


def test_generate_previews_writes_each_pictures_newest_preview_then_removes_them(tmp_path, monkeypatch):
    """With a decoder chosen, OUT/previews/ holds each picture's newest preview (at its full
    size with the tiny autoencoder) while the set runs, named as its picture; the finished
    pictures written, the previews go."""
    from stylealigned_desktop.cli.preview_files import PreviewFiles

    seen = {}
    remove = PreviewFiles.remove

    def record_then_remove(self):
        for path in sorted(self.folder.iterdir()):
            with Image.open(path) as picture:
                seen[path.name] = (picture.format, picture.size)
        remove(self)

    monkeypatch.setattr(PreviewFiles, "remove", record_then_remove)
    out = tmp_path / "run"
    code = cli.main(["generate", "--model", "tiny", "--steps", "2", "--width", "128", "--height", "64", "--quiet",
                     "--reference-prompt", "a castle", "--prompt", "a knight", "--prompt", "a tower",
                     "--panel-sizes", "set,64x128", "--previews", "tiny", "--out", str(out)])
    assert code == 0
    assert seen == {"reference.jpg": ("JPEG", (128, 64)), "panel-01.jpg": ("JPEG", (128, 64)),
                    "panel-02.jpg": ("JPEG", (64, 128))}
    assert not (out / "previews").exists()
    assert {path.name for path in out.glob("*.png")} >= {"reference.png", "panel-01.png", "panel-02.png"}
