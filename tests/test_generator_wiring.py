"""The engine's wiring against diffusers and the spec, at a size where width != height: which
text, strength and window a ControlNet gets (vs ``StableDiffusionXLControlNetPipeline``), what a
preview shows (the scheduler's predicted x0), the SDXL size conditioning, and the reference
row's inputs in reference-picture sets for Euler and DPM++ (spec 7.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    ControlNetModel,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionXLControlNetPipeline,
)
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.control import tiny_controlnet
from stylealigned_desktop.engine.generator import Engine, initial_noise, make_scheduler
from stylealigned_desktop.engine.preview import latent_to_rgb
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .test_generator_picture import picture  # noqa: F401 (the reference picture fixture)

WIDTH, HEIGHT = 128, 64  # not square: a swapped width/height shows
TIME_IDS = [float(HEIGHT), float(WIDTH), 0.0, 0.0, float(HEIGHT), float(WIDTH)]  # (h, w), crop, (h, w)
NO_SHARING = StyleAlignedSettings(share_attention=False, adain_queries=False, adain_keys=False,
                                  adain_values=False, share_group_norm=False)


@pytest.fixture()
def engine(tiny_pipe):
    # an unlimited preview budget: every picture's preview on every step, whatever this machine's speed
    return Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))


class Calls:
    """Every forward call of a model class: its sample, timestep and SDXL time ids."""

    def __init__(self, monkeypatch, model_class):
        self.samples, self.timesteps, self.time_ids = [], [], []
        forward = model_class.forward

        def recording(module, sample, timestep, *args, **kwargs):
            self.samples.append(sample.detach().clone())
            self.timesteps.append(float(torch.as_tensor(timestep).flatten()[0]))
            self.time_ids.append(kwargs["added_cond_kwargs"]["time_ids"].detach().clone())
            return forward(module, sample, timestep, *args, **kwargs)

        monkeypatch.setattr(model_class, "forward", recording)

    def assert_size_conditioning(self):
        assert self.time_ids
        for ids in self.time_ids:
            assert ids.shape[1] == 6 and ids.float().tolist() == [TIME_IDS] * ids.shape[0]


def _maps(folder):
    """Two different edge maps at exactly the output size (no resampling on either side)."""
    paths = []
    for name, box in (("blocks", (10, 8, 70, 50)), ("tower", (80, 4, 110, 60))):
        image = Image.new("RGB", (WIDTH, HEIGHT), "black")
        ImageDraw.Draw(image).rectangle(box, outline="white", width=2)
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
    return paths


def _control_request(panels, scheduler, steps):
    return SetRequest(model="tiny", style=GeneratedReference("a toy train", 1), panels=tuple(panels),
                      sampling=Sampling(steps=steps, guidance=5.0, width=WIDTH, height=HEIGHT, scheduler=scheduler),
                      settings=NO_SHARING, micro_batch=2)


def _relative_error(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_controlled_panels_equal_diffusers_controlnet_pipeline(engine, tiny_pipe, tmp_path, monkeypatch, scheduler):
    """With sharing off, each controlled panel is exactly what diffusers' own ControlNet pipeline
    draws with the same components, prompt, noise, map, conditioning scale and start/end: two
    panels with their own strengths and windows in one micro-batch, at 128x64."""
    steps = 5
    controlnet = tiny_controlnet(tiny_pipe.unet)  # what the engine builds for the tiny model
    exits = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    assert all(conv.weight.abs().sum() > 0 for conv in exits)  # from_unet zero-initialises these
    maps = _maps(tmp_path)
    controls = [PanelControl(str(maps[0]), "map", map_kind="canny", scale=0.7, guidance_start=0.2, guidance_end=0.8),
                PanelControl(str(maps[1]), "map", map_kind="canny", scale=1.3)]
    panels = [Panel("a red car", 5, controls[0]), Panel("a blue boat", 6, controls[1])]
    unet_calls = Calls(monkeypatch, type(tiny_pipe.unet))
    controlnet_calls = Calls(monkeypatch, ControlNetModel)
    result = engine.generate(_control_request(panels, scheduler, steps))
    unet_calls.assert_size_conditioning()
    controlnet_calls.assert_size_conditioning()
    # the window: panel 1 only at steps 1..3 (diffusers' keep rule), panel 2 at every step
    assert len(controlnet_calls.samples) == steps and [s.shape[0] for s in controlnet_calls.samples] == \
        [2, 4, 4, 4, 2]

    pipe = StableDiffusionXLControlNetPipeline(**tiny_pipe.components, controlnet=controlnet)
    pipe.scheduler = make_scheduler(tiny_pipe.scheduler.config, scheduler)
    pipe.set_progress_bar_config(disable=True)
    for index, (panel, control) in enumerate(zip(panels, controls)):
        with Image.open(control.image) as image:
            expected = pipe(panel.prompt, image=image.convert("RGB"), num_inference_steps=steps, guidance_scale=5.0,
                            height=HEIGHT, width=WIDTH, latents=initial_noise(panel.seed, HEIGHT, WIDTH),
                            controlnet_conditioning_scale=control.scale, control_guidance_start=control.guidance_start,
                            control_guidance_end=control.guidance_end, output_type="latent").images
        assert _relative_error(result.latents[index], expected[0]) < 1e-4, index


def test_control_strength_zero_is_no_control(engine, tmp_path):
    maps = _maps(tmp_path)
    off = [Panel("a red car", 5, PanelControl(str(maps[0]), "map", map_kind="canny", scale=0.0)),
           Panel("a blue boat", 6, PanelControl(str(maps[1]), "map", map_kind="canny", scale=0.8))]
    none = [Panel("a red car", 5), off[1]]
    without = engine.generate(_control_request(none, "euler", 3))
    zero = engine.generate(_control_request(off, "euler", 3))
    torch.testing.assert_close(zero.latents[0], without.latents[0], rtol=0, atol=1e-6)
    strong = engine.generate(_control_request(
        [Panel("a red car", 5, PanelControl(str(maps[0]), "map", map_kind="canny", scale=0.8)), off[1]], "euler", 3))
    assert _relative_error(strong.latents[0], without.latents[0]) > 1e-3  # the control does act


class PredictedX0:
    """The scheduler's own predicted clean latent after each step: ``pred_original_sample``
    (DDIM, Euler) or, for DPM-Solver++, the data prediction it keeps (``model_outputs[-1]``)."""

    def __init__(self, monkeypatch, scheduler_class):
        self.x0 = []
        step = scheduler_class.step

        def recording(scheduler, *args, **kwargs):
            output = step(scheduler, *args, **kwargs)
            predicted = getattr(output, "pred_original_sample", None)
            if predicted is None:
                assert scheduler.config.algorithm_type == "dpmsolver++"  # its model outputs are x0
                predicted = scheduler.model_outputs[-1]
            self.x0.append(predicted.detach().clone())
            return output

        monkeypatch.setattr(scheduler_class, "step", recording)


SCHEDULER_CLASSES = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "dpmpp-2m": DPMSolverMultistepScheduler}


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp-2m"])
def test_previews_show_the_schedulers_predicted_x0(engine, tiny_pipe, monkeypatch, scheduler):
    """Each Preview is the latent->RGB picture of the scheduler's predicted x0 at that step
    (not the noisy latent), for the reference and every panel; the set is conditioned on
    (height, width) at 128x64."""
    steps = 4
    recorded = PredictedX0(monkeypatch, SCHEDULER_CLASSES[scheduler])
    unet_calls = Calls(monkeypatch, type(tiny_pipe.unet))
    request = SetRequest(model="tiny", style=GeneratedReference("a toy train", 1),
                         panels=(Panel("a car", 2), Panel("a boat", 3)),
                         sampling=Sampling(steps=steps, guidance=5.0, width=WIDTH, height=HEIGHT, scheduler=scheduler),
                         micro_batch=1, previews="factors")
    seen = []
    engine.generate(request, seen.append)
    unet_calls.assert_size_conditioning()
    previews = [e for e in seen if isinstance(e, ev.Preview)]
    assert len(recorded.x0) == steps and len(previews) == 3 * steps
    rows = {None: 0, 0: 1, 1: 2}
    for preview in previews:
        x0 = recorded.x0[preview.step - 1][rows[preview.index]]
        assert preview.image.size == (WIDTH // 8, HEIGHT // 8)
        by_hand = torch.from_numpy(np.asarray(latent_to_rgb(x0), dtype=np.int16))
        shown = torch.from_numpy(np.asarray(preview.image, dtype=np.int16))
        assert (shown - by_hand).abs().max() <= 1, (preview.index, preview.step)


@pytest.mark.parametrize("scheduler", ["euler", "dpmpp-2m"])
def test_reference_picture_rows_follow_the_trajectory_for_other_schedulers(
        engine, tiny_pipe, tmp_path, monkeypatch, picture, scheduler):  # noqa: F811 (the imported fixture)
    """Spec 7.4 with Euler (whose samples are scaled: sample = latent * sqrt(1 + sigma^2)) and
    DPM++ 2M: the reference row's UNet input at step i is exactly the trajectory entry
    traj[offset] (i = 0) or traj[max(offset + 1, i)], at the schedule's own level, conditioned
    on (height, width); the trajectory was inverted over those same levels."""
    steps, offset = 5, 1
    request = SetRequest(model="tiny", style=ReferencePicture(str(picture), caption="a sunset",
                                                               inversion_offset=offset),
                         panels=(Panel("a car", 21), Panel("a boat", 22), Panel("a cat", 23)),
                         sampling=Sampling(steps=steps, guidance=10.0, width=WIDTH, height=HEIGHT, scheduler=scheduler),
                         settings=StyleAlignedSettings.for_reference_image(), micro_batch=3,
                         cache_dir=str(tmp_path / "cache"))
    inverting = Calls(monkeypatch, type(tiny_pipe.unet))
    engine.generate(request)  # inverts (and caches) the picture
    inverting.assert_size_conditioning()
    traj = next(iter(engine.trajectory_cache(request.cache_dir)._memory.values()))
    schedule = make_scheduler(tiny_pipe.scheduler.config, scheduler)
    schedule.set_timesteps(steps)
    assert traj.timesteps.tolist() == [int(t) for t in schedule.timesteps]

    calls = Calls(monkeypatch, type(tiny_pipe.unet))
    engine.generate(request)  # from the cache: only denoising calls now
    calls.assert_size_conditioning()
    reference = [(s, t) for s, t in zip(calls.samples, calls.timesteps) if s.shape[0] == 2]  # one row per CFG half
    assert len(reference) == steps and len(calls.samples) == 2 * steps
    for i, (sample, timestep) in enumerate(reference):
        assert timestep == float(schedule.timesteps[i])
        expected = (traj[offset] if i == 0 else traj[max(offset + 1, i)])[0]  # spec 7.4, written out
        for half in range(2):
            torch.testing.assert_close(sample[half], expected, rtol=1e-5, atol=1e-5)
