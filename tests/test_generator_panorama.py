"""Wide panels as MultiDiffusion windows (spec section 14) on the storyboard engine and the tiny
model (native size 128 x 128 pixels, a 16 x 16 latent): the tiling, one window equal to the
panel drawn whole, independence of the micro-batch and of the other panels, and the windows'
average against a naive MultiDiffusion written from the paper."""

import copy
import itertools

import pytest
import torch

from stylealigned_desktop.engine import memory as mem
from stylealigned_desktop.engine.generator import Engine, initial_noise, make_scheduler
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.engine.windows import Tiling
from stylealigned_desktop.engine.workload import workload

STEPS, TOL = 3, 1e-4
CASTLE = GeneratedReference("a castle, ink wash", 5)
SHARING = StyleAlignedSettings(share_group_norm=True, shared_score_shift=0.4, adain_values=True)
NO_SHARING = StyleAlignedSettings(only_self_level=1.0)


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


def _request(panels, settings=SHARING, scheduler="euler", **kwargs):
    sampling = {key: kwargs.pop(key) for key in ("window_stride", "panorama_above") if key in kwargs}
    return SetRequest(model="tiny", style=CASTLE, panels=tuple(panels), settings=settings,
                      sampling=Sampling(steps=STEPS, guidance=5.0, width=128, height=128, scheduler=scheduler,
                                        **sampling), **kwargs)


def _close(a, b, tol=TOL):
    return (a - b).abs().max().item() <= tol


def _naive_starts(length, window, stride):
    """Every start a window may have that the stride reaches, or that ends at the edge."""
    if window >= length:
        return [0]
    return [s for s in range(length - window + 1) if s % stride == 0 or s == length - window]


@pytest.mark.parametrize("latent, native, stride", [
    ((24, 46), (16, 16), 7), ((16, 64), (16, 16), 8), ((8, 40), (16, 16), 16), ((40, 24), (16, 16), 5),
    ((128, 512), (128, 128), 8), ((96, 100), (64, 64), 64)])
def test_windows_tile_the_latent_with_the_last_window_at_the_edge(latent, native, stride):
    tiling = Tiling.of(latent, native, stride)
    height, width = min(native[0], latent[0]), min(native[1], latent[1])
    expected = [(top, left) for top in _naive_starts(latent[0], height, stride)
                for left in _naive_starts(latent[1], width, stride)]
    assert [(w.top, w.left) for w in tiling.windows] == expected
    assert {(w.height, w.width) for w in tiling.windows} == {(height, width)}
    counts = torch.zeros(latent)
    for top, left in expected:
        counts[top : top + height, left : left + width] += 1
    assert torch.equal(tiling.coverage()[0, 0], counts) and counts.min() >= 1  # every pixel covered


def test_a_stride_wider_than_the_window_is_refused():
    with pytest.raises(Exception, match="window stride 17 is larger than the model's windows"):
        Tiling.of((16, 64), (16, 16), 17)


def test_one_window_covering_the_panel_equals_the_panel_drawn_whole(engine):
    # panorama_above 1: every panel of the native width or height is windowed; a 128 x 64 panel
    # (and one of the set's size, beside the references) is then one window covering it
    panels = [Panel("a knight, ink wash", 31, size=(128, 64)), Panel("a dragon, ink wash", 32)]
    whole = engine.generate(_request(panels, micro_batch=2))
    windowed = engine.generate(_request(panels, micro_batch=2, panorama_above=1.0))
    assert "windows" not in whole.metadata
    assert windowed.metadata["windows"] == {
        "1": {"windows": 1, "window_width": 128, "window_height": 64, "window_stride": 8},
        "2": {"windows": 1, "window_width": 128, "window_height": 128, "window_stride": 8}}
    for key in whole.latents:
        assert _close(windowed.latents[key], whole.latents[key], 1e-5), key


def test_a_panoramas_pixels_depend_on_neither_the_micro_batch_nor_the_other_panels(engine):
    # 384 x 192 pixels: 6 x 3 windows of 16 x 16 latents at stride 7, the last ones at the edges
    panels = [Panel("a harbour at dawn, ink wash", 41, size=(384, 192)), Panel("a knight, ink wash", 42),
              Panel("a fleet, ink wash", 43, size=(384, 192))]
    whole = engine.generate(_request(panels, micro_batch=64, window_stride=7))
    assert whole.metadata["windows"]["1"]["windows"] == 18 and "2" not in whole.metadata["windows"]
    for micro_batch in (1, 4):
        part = engine.generate(_request(panels, micro_batch=micro_batch, window_stride=7))
        for key in whole.latents:
            assert _close(part.latents[key], whole.latents[key]), (micro_batch, key)
    alone = engine.generate(_request(panels, micro_batch=4, window_stride=7, only=(2,)))
    assert _close(alone.latents[2], whole.latents[2])
    assert not _close(whole.latents[0], whole.latents[2], 0.1)  # two panoramas, each its own


def test_the_memory_plan_counts_windows_as_rows_and_a_panoramas_micro_batch_as_a_panels(engine, tiny_pipe):
    panels = [Panel("a harbour at dawn, ink wash", 41, size=(384, 192)), Panel("a knight, ink wash", 42)]
    result = engine.generate(_request(panels, window_stride=7))  # on the CPU: every row at once
    assert result.metadata["micro_batch"] == 18 + 1
    # previews as factors: a tiny-autoencoder preview decodes the whole panorama (counted apart)
    wide = _request([Panel("a bay", 1, size=(1024, 128))], previews="factors")
    native = _request([Panel("a bay", 1)], previews="factors")
    work = workload(wide, tiny_pipe, {(1024, 128): Tiling.of((16, 128), (16, 16), 8)})
    assert (work.panel_width, work.panel_height, work.picture_pixels) == (128, 128, 1024 * 128)
    for rows in (1, 4):  # a micro-batch of windows plans as one of native panels; the decode is the picture's
        peaks, native_peaks = (mem.stage_peaks_gb("fast", w, rows, False) for w in (work, workload(native, tiny_pipe)))
        assert peaks["denoise"] == native_peaks["denoise"] and peaks["decode"] > native_peaks["decode"]


def _naive_multidiffusion(pipe, prompt, seed, size, stride, scheduler_kind, guidance=5.0):
    """MultiDiffusion (Bar-Tal et al. 2023, eq. 5) as diffusers' panorama pipeline runs it, here on
    the SDXL UNet: each window's CFG output steps its own crop, the stepped crops are averaged."""
    width, height = size
    scheduler = make_scheduler(pipe.scheduler.config, scheduler_kind)
    scheduler.set_timesteps(STEPS)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    latents = initial_noise(seed, height, width) * scheduler.init_noise_sigma
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        [prompt], device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=None)
    native = pipe.unet.config.sample_size
    window = (min(native, height // 8), min(native, width // 8))
    tops, lefts = (_naive_starts(n, w, stride) for n, w in zip((height // 8, width // 8), window))
    time_ids = torch.tensor([[window[0] * 8, window[1] * 8, 0, 0, window[0] * 8, window[1] * 8]] * 2, dtype=torch.float32)
    states = {view: copy.deepcopy(scheduler.__dict__) for view in itertools.product(tops, lefts)}
    for t in scheduler.timesteps:
        value, count = torch.zeros_like(latents), torch.zeros_like(latents)
        for (top, left), state in states.items():
            scheduler.__dict__.update(state)
            crop = latents[..., top : top + window[0], left : left + window[1]]
            model_input = scheduler.scale_model_input(torch.cat([crop] * 2), t)
            noise = pipe.unet(model_input, t, encoder_hidden_states=torch.cat([negative, embeds]),
                              added_cond_kwargs={"text_embeds": torch.cat([negative_pooled, pooled]),
                                                 "time_ids": time_ids}).sample
            uncond, text = noise.chunk(2)
            stepped = scheduler.step(uncond + guidance * (text - uncond), t, crop).prev_sample
            states[(top, left)] = copy.deepcopy(scheduler.__dict__)
            value[..., top : top + window[0], left : left + window[1]] += stepped
            count[..., top : top + window[0], left : left + window[1]] += 1
        latents = value / count
    return latents[0]


@pytest.mark.parametrize("scheduler, size, stride", [("euler", (384, 192), 7), ("ddim", (320, 128), 8)])
def test_without_sharing_a_panorama_is_naive_multidiffusion(engine, tiny_pipe, scheduler, size, stride):
    panel = Panel("a harbour at dawn, ink wash", 41, size=size)
    result = engine.generate(_request([panel], NO_SHARING, scheduler, micro_batch=5, window_stride=stride))
    expected = _naive_multidiffusion(tiny_pipe, panel.prompt, panel.seed, size, stride, scheduler)
    assert _close(result.latents[0], expected)


def _at_diffusers_view(name):
    """A tiny SD model at diffusers' panorama window (its pipeline's views are 64 latent pixels
    whatever the model): the engine takes the native size from the UNet's sample size."""
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(name)
    pipe.unet.register_to_config(sample_size=64)
    return pipe


@pytest.fixture(scope="module")
def sd2_pipe():
    return _at_diffusers_view("tiny-sd2")


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_without_sharing_a_panorama_on_sd2_is_diffusers_panorama_pipeline(sd2_pipe, scheduler):
    _compare_with_diffusers_panorama(sd2_pipe, "tiny-sd2", scheduler)


def test_without_sharing_a_v_prediction_panorama_is_diffusers_panorama_pipeline():
    """SD 2.1-768's v: the windows' averaged v in one step on the whole latent equals diffusers'
    average of per-view steps (each step is affine in the model output for a fixed latent)."""
    _compare_with_diffusers_panorama(_at_diffusers_view("tiny-sd2v"), "tiny-sd2v", "ddim", (640, 512), 3)


def _compare_with_diffusers_panorama(pipe, name, scheduler, size=(768, 576), windows=10):
    """``size`` 768 x 576: 96 x 72 latents, 5 x 2 views; 640 x 512: 80 x 64, 3 x 1."""
    from diffusers import StableDiffusionPanoramaPipeline

    engine = Engine(loader=lambda *args, **kwargs: pipe)
    panel = Panel("a harbour at dawn, ink wash", 41, size=size)
    request = SetRequest(model=name, style=CASTLE, panels=(panel,), settings=NO_SHARING, micro_batch=3,
                         sampling=Sampling(steps=STEPS, guidance=5.0, width=128, height=128, scheduler=scheduler,
                                           panorama_above=1.0))
    result = engine.generate(request)
    assert result.metadata["windows"]["1"]["windows"] == windows
    panorama = StableDiffusionPanoramaPipeline(**{**pipe.components, "safety_checker": None,
                                                  "feature_extractor": None}, requires_safety_checker=False)
    panorama.scheduler = make_scheduler(pipe.scheduler.config, scheduler)
    panorama.set_progress_bar_config(disable=True)
    expected = panorama(panel.prompt, height=size[1], width=size[0], num_inference_steps=STEPS, guidance_scale=5.0,
                        latents=initial_noise(panel.seed, size[1], size[0]), view_batch_size=2, circular_padding=False,
                        output_type="latent").images[0]
    assert _close(result.latents[0], expected)


def test_a_v_prediction_panoramas_preview_is_the_x0_of_its_averaged_step_on_the_whole_picture(monkeypatch):
    """Spec section 14, "previews show the averaged x0": on SD 2.1-768's v, each preview of a
    panorama is the preview decoder on the x0 of the one scheduler step the averaged windows take
    on the whole latent (DDIM's own ``pred_original_sample``), at the panorama's full size."""
    from diffusers import DDIMScheduler

    from stylealigned_desktop.engine import events as ev
    from stylealigned_desktop.engine.preview_decoders import TinyAutoencoder
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("tiny-sd2v")
    stepped, decoded = [], []
    original_step, original_decode = DDIMScheduler.step, TinyAutoencoder.decode

    def step(scheduler, output, t, sample, *args, **kwargs):
        result = original_step(scheduler, output, t, sample, *args, **kwargs)
        stepped.append(result.pred_original_sample.clone())
        return result

    monkeypatch.setattr(DDIMScheduler, "step", step)
    monkeypatch.setattr(TinyAutoencoder, "decode", lambda self, x0: decoded.append(x0) or original_decode(self, x0))
    engine = Engine(loader=lambda *args, **kwargs: pipe, preview_budget=float("inf"))
    request = SetRequest(model="tiny-sd2v", style=CASTLE, panels=(Panel("a harbour at dawn, ink wash", 41, size=(384, 128)),),
                         settings=SHARING, micro_batch=4, previews="tiny",
                         sampling=Sampling(steps=STEPS, guidance=5.0, width=128, height=128, scheduler="ddim"))
    seen = []
    result = engine.generate(request, seen.append)
    assert result.metadata["windows"]["1"]["windows"] == 5  # 48 latent pixels wide: windows of 16 every 8
    wide = [x0 for x0 in stepped if x0.shape[-1] == 48]  # the panorama group's step, one a step
    previews = [e for e in seen if isinstance(e, ev.Preview) and e.index == 0]
    assert len(wide) == len(previews) == STEPS
    given = [x0 for x0 in decoded if x0.shape[-1] == 48]
    for preview, x0, expected in zip(previews, given, wide):
        assert torch.equal(x0, expected[0])  # the one panorama row of its group
        assert preview.image.size == (384, 128)
