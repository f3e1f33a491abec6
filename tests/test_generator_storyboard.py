"""Several weighted references (spec section 11) and panels of their own size (spec section 12)
on the storyboard engine and the tiny model: the properties the spec pins them down with."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine, GenerationError
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

SIZE, STEPS = 128, 3
TOL = 1e-4
CASTLE = GeneratedReference("a castle, ink wash", 5)
FOREST = GeneratedReference("a forest, ink wash", 6)
SETTINGS = StyleAlignedSettings(share_group_norm=True, shared_score_shift=0.4, adain_values=True)


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    # an unlimited preview budget: every picture's preview on every step, whatever this machine's speed
    return Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))


@pytest.fixture(scope="module")
def mood(tmp_path_factory):
    path = tmp_path_factory.mktemp("mood") / "mood.png"
    image = Image.new("RGB", (160, 120), (200, 40, 30))
    ImageDraw.Draw(image).ellipse((30, 20, 120, 100), fill=(20, 60, 220))
    image.save(path)
    return path


def _panels(*sizes):
    prompts = ["a knight, ink wash", "a dragon, ink wash", "a tower, ink wash", "a horse, ink wash"]
    return tuple(Panel(prompts[k], 30 + k, size=size) for k, size in enumerate(sizes))


def _request(style, panels, tmp_path=None, **kwargs):
    return SetRequest(model="tiny", style=style, panels=panels,
                      sampling=Sampling(steps=STEPS, guidance=5.0, width=SIZE, height=SIZE, scheduler="euler"),
                      settings=SETTINGS, cache_dir=None if tmp_path is None else str(tmp_path / "cache"), **kwargs)


def _close(a, b, tol=TOL):
    return (a - b).abs().max().item() <= tol


def test_mixed_sizes_give_each_panel_its_own_size_time_ids_and_noise(engine, tiny_pipe):
    request = _request(CASTLE, _panels((192, 128), (128, 64), None, (192, 128)), micro_batch=4)
    seen, time_ids = [], []
    original = engine._unet

    def spy(pipe, latents, t, embeds, pooled, ids, residuals=None):
        time_ids.append((tuple(latents.shape[-2:]), ids.tolist()))
        return original(pipe, latents, t, embeds, pooled, ids, residuals)

    engine._unet = spy
    try:
        result = engine.generate(request, seen.append)
    finally:
        del engine._unet
    assert [result.panels[i].size for i in range(4)] == [(192, 128), (128, 64), (128, 128), (192, 128)]
    assert result.reference.size == (128, 128) and tuple(result.latents[0].shape) == (4, 16, 24)
    # SDXL time ids of the panel's own size: original = target = (H, W), crop (0, 0)
    assert {shape: ids[0] for shape, ids in time_ids} == {
        (16, 16): [128.0, 128.0, 0.0, 0.0, 128.0, 128.0], (16, 24): [128.0, 192.0, 0.0, 0.0, 128.0, 192.0],
        (8, 16): [64.0, 128.0, 0.0, 0.0, 64.0, 128.0]}
    # one UNet call per step for the reference, then one per size (panels of a size share one)
    assert len(time_ids) == STEPS * 4
    done = {e.index: e for e in seen if isinstance(e, ev.PanelDone)}
    assert (done[1].metadata["width"], done[1].metadata["height"]) == (128, 64)
    previews = [e for e in seen if isinstance(e, ev.Preview) and e.index == 0]
    assert previews[0].image.size == (192, 128)  # the tiny model's tiny decoder: full size


def test_a_panels_pixels_do_not_depend_on_the_other_panels_sizes(engine):
    one = engine.generate(_request(CASTLE, _panels((192, 128), (128, 64)), micro_batch=1))
    two = engine.generate(_request(CASTLE, _panels((192, 128), (64, 192)), micro_batch=1))
    assert torch.equal(one.latents[0], two.latents[0])
    assert np.array_equal(np.asarray(one.panels[0]), np.asarray(two.panels[0]))
    assert not torch.equal(one.latents[None], one.latents[0][:, :16, :16])


def test_all_sizes_equal_give_todays_set_exactly_and_a_panel_at_the_sets_size_is_unchanged(engine):
    today = engine.generate(_request(CASTLE, _panels(None, None, None), micro_batch=1))
    spelled_out = engine.generate(_request(CASTLE, _panels((SIZE, SIZE), None, (SIZE, SIZE)), micro_batch=1))
    for key in (None, 0, 1, 2):
        assert torch.equal(today.latents[key], spelled_out.latents[key])
    mixed = engine.generate(_request(CASTLE, _panels(None, (192, 64), None), micro_batch=1))
    for key in (None, 0, 2):
        assert torch.equal(today.latents[key], mixed.latents[key])


def test_micro_batching_stays_exact_with_several_references_and_mixed_sizes(engine, mood, tmp_path):
    style = (CASTLE, ReferencePicture(str(mood), "a red and blue circle", weight=2.0, inversion_offset=1))
    panels = _panels((192, 128), None, (192, 128), (128, 64))
    whole = engine.generate(_request(style, panels, tmp_path, micro_batch=4))
    for micro_batch in (1, 2, 3):
        part = engine.generate(_request(style, panels, tmp_path, micro_batch=micro_batch))
        for key in whole.latents:
            assert _close(part.latents[key], whole.latents[key]), (micro_batch, key)
    alone = engine.generate(_request(style, panels, tmp_path, only=(2,), micro_batch=1))
    assert _close(alone.latents[2], whole.latents[2])
    assert sorted(whole.references) == [0, 1] and ("reference", 1) in whole.latents


def test_a_weight_zero_reference_changes_nothing(engine, mood, tmp_path):
    panels = _panels(None, (192, 64))
    alone = engine.generate(_request(CASTLE, panels, micro_batch=2))
    seen = []
    listed = engine.generate(_request((GeneratedReference("a forest", 9, weight=0), CASTLE,
                                       ReferencePicture(str(mood), weight=0)), panels, tmp_path, micro_batch=2),
                             seen.append)
    assert torch.equal(listed.latents[0], alone.latents[0]) and torch.equal(listed.latents[1], alone.latents[1])
    assert torch.equal(listed.latents[("reference", 1)], alone.latents[None])
    assert sorted(listed.references) == [1]  # the unused ones are not run
    assert not any(isinstance(e, ev.Inverting) for e in seen)  # not even inverted


def test_one_reference_listed_twice_at_half_weight_equals_it_once(engine):
    panels = _panels(None, (128, 64))
    once = engine.generate(_request(CASTLE, panels, micro_batch=2))
    twice = engine.generate(_request((GeneratedReference(CASTLE.prompt, CASTLE.seed, weight=0.5),
                                      GeneratedReference(CASTLE.prompt, CASTLE.seed, weight=0.5)), panels, micro_batch=2))
    for key in (0, 1):
        assert _close(twice.latents[key], once.latents[key]), key


def test_blending_a_second_reference_changes_the_panels_and_each_reference_is_drawn_as_alone(engine):
    panels = _panels(None)
    castle = engine.generate(_request(CASTLE, panels))
    forest = engine.generate(_request(FOREST, panels))
    blend = engine.generate(_request((CASTLE, FOREST), panels), (seen := []).append)
    assert _close(blend.latents[None], castle.latents[None])  # references run plainly, as alone
    assert _close(blend.latents[("reference", 1)], forest.latents[None])
    assert not _close(blend.latents[0], castle.latents[0], 1e-3) and not _close(blend.latents[0], forest.latents[0], 1e-3)
    refs = [e for e in seen if isinstance(e, ev.PanelDone) and e.index is None]
    assert [(e.reference, e.metadata["weight"], e.metadata["reference_index"]) for e in refs] == [(0, 0.5, 1), (1, 0.5, 2)]
    assert {e.reference for e in seen if isinstance(e, ev.Preview) and e.index is None} == {0, 1}


def test_control_maps_are_fitted_to_the_panels_own_size(engine, mood):
    from stylealigned_desktop.engine.request import PanelControl

    control = PanelControl(str(mood), mode="canny")
    panels = (Panel("a knight", 1, control, size=(192, 64)),)
    prepared = engine._prepare_controls(engine.pipeline("tiny"), _request(CASTLE, panels), [0])
    assert tuple(prepared[0].image.shape) == (1, 3, 64, 192)
    result = engine.generate(_request(CASTLE, panels, controlnet_canny="tiny"))
    assert result.panels[0].size == (192, 64)


def test_full_attention_share_refuses_several_references_and_sizes(engine):
    settings = StyleAlignedSettings(full_attention_share=True)
    for request in (_request((CASTLE, FOREST), _panels(None)), _request(CASTLE, _panels((192, 64)))):
        with pytest.raises(GenerationError, match="one reference"):
            engine.generate(SetRequest(**{**request.__dict__, "settings": settings}))


def test_a_weight_is_a_share_of_listings(engine):
    """Weights 2/3 and 1/3 blend exactly as listing the first reference twice at 1/3 each: the
    ln w bias and the mixture statistics count a reference's weight, nothing else."""
    panels = _panels(None, (192, 64))
    weighted = engine.generate(_request((GeneratedReference(CASTLE.prompt, CASTLE.seed, weight=2), FOREST), panels))
    listed = engine.generate(_request((CASTLE, FOREST, CASTLE), panels))
    for key in (0, 1):
        assert _close(weighted.latents[key], listed.latents[key]), key
    even = engine.generate(_request((CASTLE, FOREST), panels))
    assert not _close(weighted.latents[0], even.latents[0], 1e-3)
