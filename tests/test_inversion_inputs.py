"""What DDIM inversion takes in (spec section 7): every kind of picture, the smallest and the
refused inputs, the levels at their bounds, a guidance-embedded UNet, and diffusers' dtype
warning kept out of the log. The inversion's maths are pinned in tests/test_inversion.py."""

from __future__ import annotations

import copy
import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine.inversion import (
    InversionCancelled,
    encode_picture,
    inversion_scheduler,
    invert,
)

W, H = 96, 64  # not square
SKY, SEA, WHITE = (230, 200, 120), (30, 60, 200), (255, 255, 255)
HOLE = (8, 6, 40, 30)  # the transparent part, fully transparent (alpha 0): flattening is exact


def _pipe_with(pipe, **components):
    from diffusers import StableDiffusionXLPipeline

    new = StableDiffusionXLPipeline(**{**pipe.components, **components})
    new.set_progress_bar_config(disable=True)
    return new


def _two_colours(mode="RGB") -> Image.Image:
    image = Image.new("RGB", (W, H), SKY)
    ImageDraw.Draw(image).rectangle((50, 20, 90, 60), fill=SEA)
    return image.convert(mode)


def _on_white(image: Image.Image) -> Image.Image:
    """What an artist sees of ``image`` with HOLE transparent: HOLE painted white."""
    flat = image.convert("RGB")
    ImageDraw.Draw(flat).rectangle(HOLE, fill=WHITE)
    return flat


def _with_hole(image: Image.Image) -> Image.Image:
    """``image`` (L or P) with an alpha band, opaque but for HOLE."""
    alpha = Image.new("L", image.size, 255)
    ImageDraw.Draw(alpha).rectangle(HOLE, fill=0)
    layered = image.convert(image.mode + "A")
    layered.putalpha(alpha)
    return layered


def _transparent_index(image: Image.Image) -> Image.Image:
    """A palette picture whose HOLE is drawn in a palette entry marked transparent (a GIF's way)."""
    palette = _two_colours().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    hole_index = 3  # an entry the two colours do not use
    ImageDraw.Draw(palette).rectangle(HOLE, fill=hole_index)
    palette.info["transparency"] = hole_index
    return palette


@pytest.mark.parametrize("kind", ["LA", "PA", "P with a transparent entry"])
def test_every_kind_of_transparency_is_flattened_on_white(tiny_pipe, kind):
    if kind == "P with a transparent entry":
        picture = _transparent_index(_two_colours())
        seen = _on_white(_two_colours().convert("P", palette=Image.Palette.ADAPTIVE, colors=4))
    else:
        opaque = _two_colours(kind[0])
        picture, seen = _with_hole(opaque), _on_white(opaque)
    assert picture.mode == kind.split()[0]
    torch.testing.assert_close(encode_picture(tiny_pipe, picture), encode_picture(tiny_pipe, seen), rtol=0, atol=0)


def _png(image: Image.Image, **options) -> Image.Image:
    """``image`` as it is read back from a PNG file saved with ``options``."""
    data = io.BytesIO()
    image.save(data, "PNG", **options)
    return Image.open(io.BytesIO(data.getvalue()))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_grey_level_or_colour_marked_transparent_in_a_png_is_flattened_on_white(tiny_pipe, mode):
    """PNG's tRNS on a grey or RGB picture: a viewer shows that level or colour as background."""
    painted = _two_colours(mode)
    marker = 17 if mode == "L" else (17, 200, 3)  # a level or colour the two colours do not use
    ImageDraw.Draw(painted).rectangle(HOLE, fill=marker)
    picture = _png(painted, transparency=marker)
    assert picture.mode == mode and picture.info["transparency"] == marker
    torch.testing.assert_close(encode_picture(tiny_pipe, picture), encode_picture(tiny_pipe, _on_white(painted)),
                               rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK"])
def test_a_picture_without_transparency_is_its_rgb_conversion(tiny_pipe, mode):
    picture = _two_colours(mode)
    expected = encode_picture(tiny_pipe, picture.convert("RGB"))
    torch.testing.assert_close(encode_picture(tiny_pipe, picture), expected, rtol=0, atol=0)
    rgb = _two_colours()
    assert not torch.equal(encode_picture(tiny_pipe, rgb), encode_picture(tiny_pipe, _on_white(rgb)))


def test_the_smallest_picture_is_one_latent_pixel_and_smaller_ones_are_refused(tiny_pipe):
    assert tuple(encode_picture(tiny_pipe, Image.new("RGB", (8, 16), SKY)).shape) == (1, 4, 2, 1)
    for size in ((0, 16), (16, 0)):
        with pytest.raises(ValueError) as refused:
            encode_picture(tiny_pipe, Image.new("RGB", size, SKY))
        assert str(refused.value) == ("the picture must be fitted to the output size first (a multiple of 8 px), "
                                      f"got {size[0]}x{size[1]}")
    with pytest.raises(ValueError, match=r"got 96x60$"):
        encode_picture(tiny_pipe, Image.new("RGB", (96, 60), SKY))
    with pytest.raises(TypeError) as refused:
        encode_picture(tiny_pipe, np.zeros((H, W, 3), np.uint8))
    assert str(refused.value) == "expected a PIL image, got ndarray"


def test_latents_mean_alone_is_not_a_normalisation(tiny_pipe):
    """The pipeline normalises only with both ``latents_mean`` and ``latents_std``; so does the encode."""
    for half in ({"latents_mean": [0.1, -0.2, 0.3, 0.05]}, {"latents_std": [0.9, 1.1, 0.7, 1.3]}):
        vae = copy.deepcopy(tiny_pipe.vae)
        vae.register_to_config(**half)
        torch.testing.assert_close(encode_picture(_pipe_with(tiny_pipe, vae=vae), _two_colours()),
                                   encode_picture(tiny_pipe, _two_colours()), rtol=0, atol=0)


def test_the_fp16_vae_upcast_keeps_diffusers_dtype_warning_out_of_the_log(tiny_pipe):
    logger = logging.getLogger("diffusers.models.modeling_utils")
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        vae16 = copy.deepcopy(tiny_pipe.vae).to(torch.float16)
        records.clear()
        encode_picture(_pipe_with(tiny_pipe, vae=vae16), _two_colours())
        assert records == [] and logger.level == logging.INFO  # quiet during the upcast, as it was after
        vae16.to(torch.float32)  # someone else's cast still warns
        assert [r.levelno for r in records] == [logging.WARNING]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def _latent(seed, width=W, height=H):
    return torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(seed))


def test_a_latent_without_its_batch_axis_is_inverted_as_a_batch_of_one(tiny_pipe):
    z0 = _latent(1)
    torch.testing.assert_close(invert(tiny_pipe, z0[0], "a kite", 2, 2.0, W, H).latents,
                               invert(tiny_pipe, z0, "a kite", 2, 2.0, W, H).latents, rtol=0, atol=0)


def test_guidance_zero_or_one_is_one_conditional_pass_and_below_zero_is_refused(tiny_pipe):
    calls = []
    hook = tiny_pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        at_zero = invert(tiny_pipe, _latent(2), "a kite", 2, 0.0, W, H)
        invert(tiny_pipe, _latent(2), "a kite", 2, 1.0, W, H)
        invert(tiny_pipe, _latent(2), "a kite", 1, 1.5, W, H)  # guided: both halves in one call
    finally:
        hook.remove()
    assert calls == [1, 1, 1, 1, 2] and at_zero.guidance == 0.0
    with pytest.raises(ValueError) as refused:
        invert(tiny_pipe, _latent(2), "a kite", 2, -0.5, W, H)
    assert str(refused.value) == "inversion guidance must be >= 0, got -0.5"
    with pytest.raises(ValueError) as refused:
        invert(tiny_pipe, _latent(2, 104, 64), "a kite", 2, 1.0, 100, 64)
    assert str(refused.value) == "width and height must be multiples of 8, got 100x64"
    with pytest.raises(ValueError) as refused:
        invert(tiny_pipe, _latent(2), "", 0, 1.0, W, H)
    assert str(refused.value) == "inversion steps must be at least 1, got 0"


def test_levels_at_the_bounds_of_the_training_steps(tiny_pipe):
    """Levels run 0..num_train_timesteps - 1 (1000 for the tiny model's schedule): both ends are
    levels, one past either end is refused, as is a list of the wrong length or order."""
    assert tiny_pipe.scheduler.config.num_train_timesteps == 1000
    trajectory = invert(tiny_pipe, _latent(3), "", 2, 1.0, W, H, timesteps=[999, 0])
    assert trajectory.timesteps.tolist() == [999, 0] and trajectory.timesteps.dtype == torch.int64
    refusals = {(1000, 0): "timesteps must lie in 0..999, got [1000, 0]",
                (999, -1): "timesteps must lie in 0..999, got [999, -1]",
                (999,): "timesteps must be 2 strictly decreasing levels, got [999]",
                (500, 500): "timesteps must be 2 strictly decreasing levels, got [500, 500]",
                (1, 501): "timesteps must be 2 strictly decreasing levels, got [1, 501]"}
    for levels, message in refusals.items():
        with pytest.raises(ValueError) as refused:
            invert(tiny_pipe, _latent(3), "", 2, 1.0, W, H, timesteps=levels)
        assert str(refused.value) == message
    with pytest.raises(ValueError) as refused:  # down, up: every neighbour is compared, not only the first
        invert(tiny_pipe, _latent(3), "", 3, 1.0, W, H, timesteps=[900, 100, 500])
    assert str(refused.value) == "timesteps must be 3 strictly decreasing levels, got [900, 100, 500]"


def test_a_schedules_float_levels_are_whole_levels(tiny_pipe):
    """Euler's and DPM-Solver's timesteps are floats: the trajectory's levels are int64 all the same."""
    floats = invert(tiny_pipe, _latent(3), "", 2, 1.0, W, H, timesteps=torch.tensor([999.0, 499.0]).tolist())
    ints = invert(tiny_pipe, _latent(3), "", 2, 1.0, W, H, timesteps=[999, 499])
    assert floats.timesteps.dtype == torch.int64 and floats.timesteps.tolist() == [999, 499]
    assert torch.equal(floats.latents, ints.latents)


def test_the_inversion_steps_to_the_first_training_level_whatever_the_schedulers_settings(tiny_pipe):
    """The cleanest inversion step goes to the first training level's alpha (SDXL's
    ``set_alpha_to_one=False``), and the DDIM step is not clipped, even for a pipeline whose
    scheduler says otherwise: the trajectory is the same."""
    from diffusers import DDIMScheduler

    other = DDIMScheduler.from_config(tiny_pipe.scheduler.config, set_alpha_to_one=True, clip_sample=True)
    pipe = _pipe_with(tiny_pipe, scheduler=other)
    ddim = inversion_scheduler(pipe)
    assert float(ddim.final_alpha_cumprod) == float(ddim.alphas_cumprod[0]) < 1.0
    assert ddim.config.clip_sample is False and ddim.config.set_alpha_to_one is False
    torch.testing.assert_close(invert(pipe, _latent(5), "a kite", 2, 1.0, W, H).latents,
                               invert(tiny_pipe, _latent(5), "a kite", 2, 1.0, W, H).latents, rtol=0, atol=0)


def test_a_cancelled_inversion_says_so(tiny_pipe):
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InversionCancelled) as cancelled:
        invert(tiny_pipe, _latent(6), "", 2, 1.0, W, H, cancel=cancel)
    assert str(cancelled.value) == "inversion cancelled"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_a_guidance_embedded_unet_gets_the_pipelines_guidance_embedding(tiny_pipe, dtype):
    """A UNet with ``time_cond_proj_dim`` (an LCM-style model) is told the guidance as the
    pipeline tells it: ``get_guidance_scale_embedding(guidance - 1)``, in the UNet's dtype, and
    like the pipeline runs one conditional pass, no CFG on top of the embedded guidance."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(tiny_pipe.unet.config, time_cond_proj_dim=16).eval().to(dtype)
    encoders = {name: copy.deepcopy(getattr(tiny_pipe, name)).to(dtype) for name in ("text_encoder", "text_encoder_2")}
    pipe = _pipe_with(tiny_pipe, unet=unet, **encoders)
    seen = []
    hook = unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0].shape[0], kwargs["encoder_hidden_states"].shape[0],
                                                  kwargs["timestep_cond"])), with_kwargs=True)
    try:
        invert(pipe, _latent(4), "a kite", 1, 3.0, W, H)
        pipe("a kite", num_inference_steps=1, guidance_scale=3.0, width=W, height=H, output_type="latent")
    finally:
        hook.remove()
    (our_rows, our_texts, ours), (pipelines_rows, pipelines_texts, pipelines) = seen
    assert our_rows == our_texts == pipelines_rows == pipelines_texts == 1
    assert ours.shape == (1, 16) and ours.dtype == dtype
    torch.testing.assert_close(ours, pipelines, rtol=0, atol=0)
    other = pipe.get_guidance_scale_embedding(torch.tensor([3.0]), embedding_dim=16)  # guidance itself
    assert not torch.allclose(ours.float(), other)


def test_a_float16_unet_beside_float32_text_encoders_gets_its_dtype_and_a_float32_guided_step(tiny_pipe):
    """Text encoders kept in float32 beside a float16 UNet (a common way to load a model): the
    UNet is given the embeddings in its own dtype, and its two predictions are combined (CFG) and
    stepped in float32, as done here by hand from the UNet's own outputs."""
    pipe = _pipe_with(tiny_pipe, unet=copy.deepcopy(tiny_pipe.unet).to(torch.float16))
    assert pipe.text_encoder.dtype == pipe.text_encoder_2.dtype == torch.float32
    seen = []
    hook = pipe.unet.register_forward_hook(lambda module, args, kwargs, output: seen.append((kwargs, output[0])),
                                           with_kwargs=True)
    z0, guidance, level = _latent(7), 2.5, 500
    try:
        trajectory = invert(pipe, z0, "a kite", 1, guidance, W, H, timesteps=[level])
    finally:
        hook.remove()
    [(kwargs, output)] = seen
    embeds, negative, _, _ = pipe.encode_prompt(["a kite"], device="cpu", do_classifier_free_guidance=True)
    assert embeds.dtype == torch.float32 and kwargs["encoder_hidden_states"].dtype == torch.float16
    torch.testing.assert_close(kwargs["encoder_hidden_states"], torch.cat([negative, embeds]).half(), rtol=0, atol=0)
    uncond, cond = output.float().chunk(2)
    eps = uncond + guidance * (cond - uncond)
    alphas = inversion_scheduler(pipe).alphas_cumprod
    alpha_t, alpha_prev = alphas[level], alphas[0]  # the cleanest step starts at the first training level
    x0 = (z0 - (1 - alpha_prev).sqrt() * eps) / alpha_prev.sqrt()
    expected = alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * eps
    assert trajectory.latents.dtype == torch.float32
    torch.testing.assert_close(trajectory.latents[:1], expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(trajectory.z0, z0, rtol=0, atol=0)


def test_a_float16_z0_is_inverted_as_its_float32_value(tiny_pipe):
    """A float16 latent gives the float32 trajectory of the same values; on a v-prediction
    schedule the sample enters ε's formula, where a float16 z would round it."""
    from diffusers import DDIMScheduler

    v = DDIMScheduler.from_config(tiny_pipe.scheduler.config, prediction_type="v_prediction")
    pipe = _pipe_with(tiny_pipe, scheduler=v)
    z0 = _latent(8).half()
    low = invert(pipe, z0, "a kite", 2, 2.0, W, H)
    assert low.latents.dtype == torch.float32
    torch.testing.assert_close(low.latents, invert(pipe, z0.float(), "a kite", 2, 2.0, W, H).latents, rtol=0, atol=0)
