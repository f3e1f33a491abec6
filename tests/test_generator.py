"""The storyboard engine: micro-batch exactness, re-roll, previews, cancel, out-of-memory fallback."""

import threading

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine import generator
from stylealigned_desktop.engine.generator import (
    Engine,
    GenerationError,
    initial_noise,
    make_scheduler,
)
from stylealigned_desktop.engine.install import style_aligned
from stylealigned_desktop.engine.preview import latent_to_rgb
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings

SIZE, STEPS = 128, 3
PROMPTS = ["a toy train, macro photo", "a boat, macro photo", "a car, macro photo",
           "a plane, macro photo", "a bike, macro photo"]
SEEDS = [10, 11, 12, 13, 14]
TOL = 1e-4


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    # an unlimited preview budget: every picture's preview on every step, whatever this machine's speed
    return Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))


def _request(settings=None, guidance=5.0, order=None, scheduler="ddim", **kwargs):
    order = list(order or range(len(PROMPTS) - 1))
    panels = tuple(Panel(PROMPTS[1 + i], SEEDS[1 + i]) for i in order)
    return SetRequest(
        model="tiny",
        style=GeneratedReference(PROMPTS[0], SEEDS[0]),
        panels=panels,
        sampling=Sampling(steps=STEPS, guidance=guidance, width=SIZE, height=SIZE, scheduler=scheduler),
        settings=settings or StyleAlignedSettings(),
        **kwargs,
    )


def _full_batch(pipe, settings, guidance, scheduler="ddim"):
    latents = torch.cat([initial_noise(s, SIZE, SIZE) for s in SEEDS])
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(original.config, scheduler)
    try:
        with style_aligned(pipe, settings):
            return pipe(PROMPTS, latents=latents, num_inference_steps=STEPS, guidance_scale=guidance,
                        height=SIZE, width=SIZE, output_type="latent").images
    finally:
        pipe.scheduler = original


def _max_diff(result, full, order):
    diffs = [(result.latents[None] - full[0]).abs().max().item()]
    for position, panel in enumerate(order):
        if position in result.latents:
            diffs.append((result.latents[position] - full[1 + panel]).abs().max().item())
    return max(diffs)


SETTINGS = {
    "default": StyleAlignedSettings(),
    "all-knobs": StyleAlignedSettings(share_group_norm=True, shared_score_shift=0.69, shared_score_scale=0.8,
                                      adain_values=True, only_self_level=0.3),
    "no-adain": StyleAlignedSettings(adain_queries=False, adain_keys=False),
    "adain-only": StyleAlignedSettings(share_attention=False, share_group_norm=True),
}


@pytest.mark.parametrize("guidance", [5.0, 1.0], ids=["cfg", "no-cfg"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_micro_batches_and_orders_match_the_full_batch(engine, tiny_pipe, name, guidance):
    settings = SETTINGS[name]
    full = _full_batch(tiny_pipe, settings, guidance)
    for micro_batch, order in [(1, [0, 1, 2, 3]), (2, [3, 1, 0, 2]), (3, [2, 0, 3, 1]), (4, [1, 2, 3, 0])]:
        result = engine.generate(_request(settings, guidance, order=order, micro_batch=micro_batch))
        assert _max_diff(result, full, order) < TOL, (micro_batch, order)


def test_full_attention_share_runs_as_one_batch_and_matches(engine, tiny_pipe):
    settings = StyleAlignedSettings(full_attention_share=True)
    full = _full_batch(tiny_pipe, settings, 5.0)
    seen = []
    result = engine.generate(_request(settings, micro_batch=1), seen.append)
    assert _max_diff(result, full, [0, 1, 2, 3]) < TOL
    assert any(isinstance(e, ev.Notice) and "one batch" in e.message for e in seen)
    with pytest.raises(GenerationError, match="re-roll"):
        engine.generate(_request(settings, only=(1,)))


@pytest.mark.parametrize("scheduler", ["euler", "dpmpp-2m"])
def test_other_schedulers_are_exact_too(engine, tiny_pipe, scheduler):
    full = _full_batch(tiny_pipe, StyleAlignedSettings(), 5.0, scheduler)
    result = engine.generate(_request(scheduler=scheduler, micro_batch=2))
    assert _max_diff(result, full, [0, 1, 2, 3]) < TOL
    kinds = {"euler": EulerDiscreteScheduler, "dpmpp-2m": DPMSolverMultistepScheduler}
    assert isinstance(make_scheduler(tiny_pipe.scheduler.config, scheduler), kinds[scheduler])


def test_reroll_of_a_subset_equals_the_full_set(engine):
    whole = engine.generate(_request(micro_batch=4))
    subset = engine.generate(_request(only=(3, 1), micro_batch=1))
    assert sorted(subset.panels) == [1, 3]
    for index in (1, 3):
        torch.testing.assert_close(subset.latents[index], whole.latents[index], rtol=0, atol=TOL)
        diff = np.abs(np.asarray(subset.panels[index], int) - np.asarray(whole.panels[index], int))
        assert diff.max() <= 1
    torch.testing.assert_close(subset.latents[None], whole.latents[None], rtol=0, atol=TOL)


def test_a_panel_does_not_depend_on_the_others(engine):
    base = engine.generate(_request())
    changed = SetRequest(**{**_request().__dict__, "panels": (Panel("something else", 99),) + _request().panels[1:]})
    other = engine.generate(changed)
    assert (other.latents[0] - base.latents[0]).abs().max() > 1e-2
    for index in (1, 2, 3):
        torch.testing.assert_close(other.latents[index], base.latents[index], rtol=0, atol=TOL)


def test_no_negative_prompt_zeroes_the_unconditional_text_like_diffusers(tiny_pipe):
    none = Engine._encode(tiny_pipe, ["a cat"], None, cfg=True)
    empty = Engine._encode(tiny_pipe, ["a cat"], "", cfg=True)
    assert torch.count_nonzero(none.negative_embeds) == 0 and torch.count_nonzero(none.negative_pooled) == 0
    assert torch.count_nonzero(empty.negative_embeds) > 0


def test_previews_every_step_for_every_picture(engine):
    seen = []
    result = engine.generate(_request(micro_batch=2, previews="factors"), seen.append)
    previews = [e for e in seen if isinstance(e, ev.Preview)]
    assert len(previews) == STEPS * 5
    assert {p.index for p in previews} == {None, 0, 1, 2, 3}
    first = next(p for p in previews if p.index == 0 and p.step == 1)
    last = next(p for p in previews if p.index == 0 and p.step == STEPS)
    assert first.image.mode == "RGB" and first.image.size == (SIZE // 8, SIZE // 8)
    assert np.asarray(first.image).dtype == np.uint8
    assert np.abs(np.asarray(first.image, int) - np.asarray(last.image, int)).mean() > 1
    # the last preview (predicted x0 at the last step) is the final latent seen through the same factors
    final = np.asarray(latent_to_rgb(result.latents[0]), int)
    assert np.abs(np.asarray(last.image, int) - final).mean() < 3
    steps = [e.step for e in seen if isinstance(e, ev.Step)]
    assert steps == list(range(1, STEPS + 1))
    done = [e for e in seen if isinstance(e, ev.PanelDone)]
    assert [d.index for d in done] == [None, 0, 1, 2, 3]
    assert done[1].metadata["seed"] == SEEDS[1] and done[1].metadata["prompt"] == PROMPTS[1]
    assert isinstance(seen[-1], ev.Finished)


@pytest.mark.parametrize("cancel_at", [1, 2])
def test_cancel_stops_within_a_step_and_the_engine_runs_the_next_request(engine, cancel_at):
    cancel = threading.Event()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, ev.Step) and event.step == cancel_at:
            cancel.set()

    request = SetRequest(**{**_request().__dict__, "sampling": Sampling(steps=6, width=SIZE, height=SIZE)})
    assert engine.generate(request, on_event, cancel) is None
    steps = [e.step for e in seen if isinstance(e, ev.Step)]
    assert max(steps) < cancel_at + 2
    assert isinstance(seen[-1], ev.Cancelled) and not any(isinstance(e, ev.Finished) for e in seen)
    # ready at once, and nothing of the cancelled run is left installed
    assert not any(type(p).__name__ == "SharedSelfAttnProcessor" for p in engine._pipe.unet.attn_processors.values())
    assert engine.generate(_request()) is not None


def test_cancel_between_micro_batches(engine):
    cancel = threading.Event()
    calls = []
    original = engine._unet

    def counting(*args, **kwargs):
        calls.append(args[1].shape[0])
        if len(calls) == 2:  # the reference branch, then the first micro-batch
            cancel.set()
        return original(*args, **kwargs)

    engine._unet = counting
    try:
        assert engine.generate(_request(micro_batch=1), cancel=cancel) is None
    finally:
        del engine._unet
    assert len(calls) == 2


def test_out_of_memory_halves_the_micro_batch_and_gives_the_same_pictures(engine):
    expected = engine.generate(_request(micro_batch=4))
    original = engine._unet
    # rows: a call with more than 2 panels and the reference riding along (x2 for CFG) "does not fit"
    fail_above = 2 * (2 + 1)

    def limited(pipe, latents, *args, **kwargs):
        if latents.shape[0] > fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(pipe, latents, *args, **kwargs)

    engine._unet = limited
    seen = []
    try:
        result = engine.generate(_request(micro_batch=4), seen.append)
    finally:
        del engine._unet
    notices = [e.message for e in seen if isinstance(e, ev.Notice) and not e.message.startswith(("memory mode", "previews:"))]
    assert notices and "2 panel(s) at a time" in notices[0]
    assert result.metadata["micro_batch"] == 2
    for index in range(4):
        torch.testing.assert_close(result.latents[index], expected.latents[index], rtol=0, atol=TOL)


def test_out_of_memory_with_the_reference_riding_along_runs_it_alone_from_then_on(engine, monkeypatch):
    """The engine with the first panels in the references' call (generator.REFERENCE_RIDES_ALONG):
    the same pictures (1e-4), and out of memory there falls back to the references alone."""
    expected = engine.generate(_request(micro_batch=1))
    monkeypatch.setattr(generator, "REFERENCE_RIDES_ALONG", True)
    riding = engine.generate(_request(micro_batch=2))
    for index in range(4):
        torch.testing.assert_close(riding.latents[index], expected.latents[index], rtol=0, atol=TOL)
    original = engine._unet
    failures = []

    def reference_only_fits_alone(pipe, latents, *args, **kwargs):
        if latents.shape[0] > 2:  # the reference with a panel (x2 for CFG) "does not fit"
            failures.append(latents.shape[0])
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(pipe, latents, *args, **kwargs)

    engine._unet = reference_only_fits_alone
    seen = []
    try:
        result = engine.generate(_request(micro_batch=1), seen.append)
    finally:
        del engine._unet
    assert failures == [4]  # tried once, then the reference runs alone at every step
    notices = [e.message for e in seen if isinstance(e, ev.Notice) and not e.message.startswith(("memory mode", "previews:"))]
    assert len(notices) == 1 and "reference on its own" in notices[0]
    for index in range(4):
        torch.testing.assert_close(result.latents[index], expected.latents[index], rtol=0, atol=TOL)


def test_out_of_memory_at_one_panel_fails_with_a_clear_message(engine):
    original = engine._unet
    calls = []

    def panels_never_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the reference branch fits
            return original(*args, **kwargs)
        raise torch.OutOfMemoryError("CUDA out of memory")

    engine._unet = panels_never_fit
    seen = []
    try:
        with pytest.raises(GenerationError, match="one panel at a time"):
            engine.generate(_request(micro_batch=2), seen.append)
    finally:
        del engine._unet
    assert isinstance(seen[-1], ev.Failed) and "out of memory" in seen[-1].message
    assert len(calls) == 1 + 2  # micro-batch 2, then 1, then the clear failure
    assert engine.generate(_request()) is not None


def test_models_are_loaded_once_and_reused(tiny_pipe):
    loads = []

    def loader(*args, **kwargs):
        loads.append(args)
        return tiny_pipe

    engine = Engine(loader=loader)
    engine.generate(_request())
    engine.generate(_request(only=(0,)))
    assert len(loads) == 1
