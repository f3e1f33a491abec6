"""Per-panel ControlNet inside one style-aligned set (issue 5), on the tiny model."""

import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.control import ControlError
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.images import PictureError
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

SIZE, STEPS, TOL = 128, 3, 1e-4


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("controls")
    paths = {}
    for name, box in {"blocks": (20, 30, 100, 90), "tower": (50, 5, 80, 120)}.items():
        image = Image.new("RGB", (128, 128), "black")
        ImageDraw.Draw(image).rectangle(box, fill="white")
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


def _request(panels, style=None, **kwargs):
    return SetRequest(
        model="tiny",
        style=style or GeneratedReference("a toy train", 1),
        panels=tuple(panels),
        sampling=Sampling(steps=STEPS, guidance=5.0, width=SIZE, height=SIZE),
        settings=StyleAlignedSettings(),
        depth_model="tiny",
        **kwargs,
    )


def _panels(pictures, controlled=True):
    canny = PanelControl(str(pictures["blocks"]), "canny", scale=0.9) if controlled else None
    depth = PanelControl(str(pictures["tower"]), "depth", scale=0.7, guidance_end=0.8) if controlled else None
    ready = PanelControl(str(pictures["tower"]), "map", map_kind="canny", scale=1.0) if controlled else None
    return [Panel("a car", 2, canny), Panel("a boat", 3), Panel("a house", 4, depth), Panel("a tree", 5, ready)]


def test_a_panel_control_changes_that_panel_and_no_other(engine, pictures):
    plain = engine.generate(_request(_panels(pictures, controlled=False)))
    panels = _panels(pictures, controlled=False)
    panels[0] = _panels(pictures)[0]
    controlled = engine.generate(_request(panels))
    assert (controlled.latents[0] - plain.latents[0]).abs().max() > 1e-3
    for index in (None, 1, 2, 3):
        torch.testing.assert_close(controlled.latents[index], plain.latents[index], rtol=0, atol=TOL)


def test_reference_is_identical_with_and_without_panel_controls(engine, pictures):
    plain = engine.generate(_request(_panels(pictures, controlled=False)))
    controlled = engine.generate(_request(_panels(pictures)))
    torch.testing.assert_close(controlled.latents[None], plain.latents[None], rtol=0, atol=TOL)
    for index in (0, 2, 3):
        assert (controlled.latents[index] - plain.latents[index]).abs().max() > 1e-3
    torch.testing.assert_close(controlled.latents[1], plain.latents[1], rtol=0, atol=TOL)


def test_mixed_controls_are_exact_under_any_micro_batch_and_order(engine, pictures):
    panels = _panels(pictures)
    whole = engine.generate(_request(panels, micro_batch=4))
    order = [2, 0, 3, 1]
    shuffled = engine.generate(_request([panels[i] for i in order], micro_batch=3))
    for position, original in enumerate(order):
        torch.testing.assert_close(shuffled.latents[position], whole.latents[original], rtol=0, atol=TOL)
    reroll = engine.generate(_request(panels, micro_batch=1, only=(3, 0)))
    for index in (0, 3):
        torch.testing.assert_close(reroll.latents[index], whole.latents[index], rtol=0, atol=TOL)


def test_controls_work_with_a_reference_picture(engine, pictures, tmp_path):
    style = ReferencePicture(str(pictures["blocks"]), caption="", inversion_offset=0)
    request = _request(_panels(pictures), style=style, cache_dir=str(tmp_path))
    seen = []
    result = engine.generate(request, seen.append)
    assert sorted(result.panels) == [0, 1, 2, 3]
    done = {e.index: e.metadata for e in seen if isinstance(e, ev.PanelDone)}
    assert done[0]["control"]["mode"] == "canny" and done[1]["control"] is None


def test_unreadable_control_picture_fails_before_denoising(engine, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    seen = []
    with pytest.raises(PictureError, match="broken.jpg"):
        engine.generate(_request([Panel("a car", 2, PanelControl(str(bad), "canny"))]), seen.append)
    assert not any(isinstance(e, ev.Step) for e in seen) and isinstance(seen[-1], ev.Failed)


def test_missing_controlnet_fails_before_denoising(engine, pictures, tmp_path):
    seen = []
    request = _request([Panel("a car", 2, PanelControl(str(pictures["blocks"]), "canny"))],
                       controlnet_canny=str(tmp_path / "no-such-controlnet"))
    with pytest.raises(ControlError):
        engine.generate(request, seen.append)
    assert not any(isinstance(e, ev.Step) for e in seen)
