"""The engine's live previews: each is the chosen decoder applied to the step's predicted x0
(the scheduler's own), and previews never change a picture."""

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.preview_decoders import TinyAutoencoder
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.tiny import build_tiny_preview_decoder

WIDTH, HEIGHT, STEPS = 128, 96, 3


def _request(scheduler="euler", previews="tiny", steps=3):
    return SetRequest(
        model="tiny",
        style=GeneratedReference("a lighthouse, ink", 5),
        panels=(Panel("a boat, ink", 6), Panel("a gull, ink", 7, size=(64, 128))),
        sampling=Sampling(steps=steps, guidance=5.0, width=WIDTH, height=HEIGHT, scheduler=scheduler),
        previews=previews,
    )


class X0Spy:
    """Records each scheduler's own predicted x0 per step: ``pred_original_sample`` where the
    step reports it (DDIM, Euler), DPM++'s converted model output otherwise."""

    def __init__(self, monkeypatch):
        self.seen = []
        for cls in (DDIMScheduler, EulerDiscreteScheduler):
            self._wrap_step(monkeypatch, cls)
        original = DPMSolverMultistepScheduler.convert_model_output

        def convert(scheduler, *args, **kwargs):
            x0 = original(scheduler, *args, **kwargs)
            self.seen.append(x0.clone())
            return x0
        monkeypatch.setattr(DPMSolverMultistepScheduler, "convert_model_output", convert)

    def _wrap_step(self, monkeypatch, cls):
        original = cls.step

        def step(scheduler, *args, **kwargs):
            output = original(scheduler, *args, **kwargs)
            self.seen.append(output.pred_original_sample.clone())
            return output
        monkeypatch.setattr(cls, "step", step)


@pytest.fixture
def engine(tiny_pipe):
    # an unlimited budget: every row's preview on every step, whatever this machine's speed
    return Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp-2m"])
def test_each_preview_is_the_tiny_decoder_on_the_schedulers_predicted_x0(engine, monkeypatch, scheduler):
    spy = X0Spy(monkeypatch)
    decoded = []  # what the engine hands the decoder, tensor for tensor
    original = TinyAutoencoder.decode
    monkeypatch.setattr(TinyAutoencoder, "decode", lambda self, x0: decoded.append(x0) or original(self, x0))
    seen = []
    engine.generate(_request(scheduler), seen.append)
    previews = [e for e in seen if isinstance(e, ev.Preview)]
    assert len(previews) == len(decoded) == 3 * STEPS  # the reference and two panels, every step
    assert any(isinstance(e, ev.Notice) and "tiny autoencoder" in e.message for e in seen)
    decoder = TinyAutoencoder(build_tiny_preview_decoder())
    # two size groups step in turn: the set's size (reference, panel 0), then panel 1's own size
    per_step = [spy.seen[2 * i: 2 * i + 2] for i in range(STEPS)]
    for preview, given in zip(previews, decoded):
        set_group, own_group = per_step[preview.step - 1]
        x0 = own_group[0] if preview.index == 1 else set_group[0 if preview.index is None else 1]
        assert torch.equal(given, x0)  # the scheduler's own x0, not a formula's near copy
        expected = decoder.decode(x0)
        assert preview.image.size == expected.size == ((64, 128) if preview.index == 1 else (WIDTH, HEIGHT))
        assert preview.image.tobytes() == expected.tobytes()


def test_previews_off_and_on_give_identical_pictures(engine):
    off_events, on_events = [], []
    off = engine.generate(_request("dpmpp-2m", previews="off"), off_events.append)
    on = engine.generate(_request("dpmpp-2m", previews="tiny"), on_events.append)
    assert not [e for e in off_events if isinstance(e, ev.Preview)]
    assert [e for e in on_events if isinstance(e, ev.Preview)]
    for index in (0, 1):
        assert off.panels[index].tobytes() == on.panels[index].tobytes()
    assert off.reference.tobytes() == on.reference.tobytes()


def test_a_full_vae_preview_comes_every_fifth_step_only(engine):
    seen = []
    engine.generate(_request("euler", previews="vae", steps=6), seen.append)
    assert sorted({e.step for e in seen if isinstance(e, ev.Preview)}) == [5]
