"""DDIM inversion of a reference picture and the cache of its trajectories (spec section 7).

The pieces, in the order the generator uses them::

    z0 = encode_picture(pipe, fitted_picture)              # VAE mean x scaling factor, float32
    key = TrajectoryKey(picture_hash, caption, model, width, height, scheduler, steps, guidance,
                        timesteps=levels)    # levels: the generation schedule's timesteps
    traj = cache.get_or_compute(key, lambda: invert(pipe, z0, caption, steps, guidance,
                                                    width, height, scheduler=scheduler,
                                                    timesteps=levels, on_step=..., cancel=...))

The trajectory itself, its indexing convention, its files and its cache live in
``trajectory.py``; this module names them too (``__all__``), so callers import inversion from
one place.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image

from .bases import Base, base_of
from .images import to_rgb
from .trajectory import (
    TRAJECTORY_FORMAT,
    TRAJECTORY_VERSION,
    Trajectory,
    TrajectoryCache,
    TrajectoryFileError,
    TrajectoryKey,
    load_trajectory,
    reference_latent_after_step,
    reference_unet_input,
    save_trajectory,
)

__all__ = [
    "TRAJECTORY_FORMAT",
    "TRAJECTORY_VERSION",
    "InversionCancelled",
    "Trajectory",
    "TrajectoryCache",
    "TrajectoryFileError",
    "TrajectoryKey",
    "encode_picture",
    "inversion_scheduler",
    "invert",
    "load_trajectory",
    "reference_latent_after_step",
    "reference_unet_input",
    "save_trajectory",
]


class InversionCancelled(Exception):
    """Raised by :func:`invert` when its ``cancel`` event is set between two steps."""


# --------------------------------------------------------------------------------------------
# Encoding the picture


@contextmanager
def _quiet_dtype_cast():
    """diffusers warns about ``keep_in_fp32`` modules on every ``model.to(dtype)``, even when
    there are none; our temporary upcast is deliberate."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@torch.no_grad()
def encode_picture(pipe, image: Image.Image) -> torch.Tensor:
    """z0 of a picture already fitted to the output size: the VAE latent mean x scaling factor.

    The encode runs in float32 (an fp16 VAE is upcast for the call and put back after). If the
    VAE config has ``latents_mean``/``latents_std`` the latent is normalised with them, the
    inverse of what the SDXL pipeline does before decoding. Returns a float32 tensor
    (1, C, height / 8, width / 8) on the pipeline's execution device. Deterministic.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    factor = pipe.vae_scale_factor
    width, height = image.size
    if width % factor or height % factor or width < factor or height < factor:
        raise ValueError(
            f"the picture must be fitted to the output size first (a multiple of {factor} px), "
            f"got {width}x{height}"
        )
    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(to_rgb(image), height=height, width=width)
    saved_dtype = vae.dtype
    if saved_dtype != torch.float32:
        with _quiet_dtype_cast():
            vae.to(dtype=torch.float32)  # fp16 VAEs overflow (SDXL's famously does)
    try:
        # the execution device: under sequential offload the VAE's own weights sit on ``meta``
        pixels = pixels.to(device=pipe._execution_device, dtype=torch.float32)
        mean = vae.encode(pixels).latent_dist.mean
    finally:
        if saved_dtype != torch.float32:
            with _quiet_dtype_cast():
                vae.to(dtype=saved_dtype)
    config = vae.config
    scaling = config.scaling_factor
    latents_mean = getattr(config, "latents_mean", None)
    latents_std = getattr(config, "latents_std", None)
    if latents_mean is not None and latents_std is not None:
        channels = mean.shape[1]
        shift = torch.tensor(latents_mean, dtype=torch.float32).view(1, channels, 1, 1)
        std = torch.tensor(latents_std, dtype=torch.float32).view(1, channels, 1, 1)
        z0 = (mean - shift.to(mean.device)) * scaling / std.to(mean.device)
    else:
        z0 = mean * scaling
    return z0.to(device=pipe._execution_device, dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# Inversion


def inversion_scheduler(pipe):
    """A DDIM scheduler with the pipeline's schedule (betas, spacing, offset, prediction type)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False)


@torch.no_grad()
def invert(
    pipe,
    z0: torch.Tensor,
    caption: str,
    steps: int,
    guidance: float,
    width: int,
    height: int,
    *,
    scheduler: str = "ddim",
    timesteps: Sequence[int] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Trajectory:
    """DDIM-invert z0 over ``steps`` levels, cleanest to noisiest (spec section 7.3).

    The caption (may be empty) is encoded with ``pipe.encode_prompt`` exactly as the pipeline
    encodes a prompt with ``negative_prompt=None`` (SDXL zeroes the unconditional text); the
    SDXL time ids describe the real output size (original = target = (height, width), crop
    (0, 0)). The levels are ``timesteps`` (the generation schedule's own, descending, ``steps``
    of them), or by default the DDIM scheduler's ``set_timesteps(steps)`` for the pipeline's
    schedule. At level t, whose previous level t⁻ is the next cleaner level **of that list**
    (for the cleanest level, ᾱ is the scheduler's final ᾱ), ε is the CFG-combined prediction
    at (z, t) (guidance <= 1: conditional pass only) and
    x̂0 = (z - sqrt(1 - ᾱ_{t⁻}) ε) / sqrt(ᾱ_{t⁻}),  z <- sqrt(ᾱ_t) x̂0 + sqrt(1 - ᾱ_t) ε:
    the exact algebraic inverse of a DDIM step from t to t⁻ for the same ε. For DDIM's
    "leading" levels t⁻ = t - 1000 / steps (the authors' rule, ``DDIMScheduler.step``); Euler
    and DPM++ levels are not evenly spaced that way, so only the list's neighbour is right.

    The UNet runs with whatever attention processors are installed, in its own dtype; the
    update is computed in float32. ``on_step(done, steps)`` is called after each UNet call
    (``done`` is 1-based). If ``cancel`` is set before a step, :class:`InversionCancelled` is
    raised. ``scheduler`` is the generation scheduler's name, recorded in the result.
    """
    z0 = _checked_z0(pipe, z0, steps, guidance, width, height)
    ddim = inversion_scheduler(pipe)
    levels = _inversion_levels(ddim, steps, timesteps)
    conditioning = _caption_conditioning(pipe, caption, guidance, width, height)
    latents = _invert_through_levels(pipe, ddim, z0, levels, conditioning, on_step, cancel)
    return Trajectory(latents=latents, timesteps=levels, caption=caption, guidance=float(guidance),
                      width=width, height=height, scheduler=scheduler)


def _checked_z0(pipe, z0: torch.Tensor, steps: int, guidance: float, width: int,
                height: int) -> torch.Tensor:
    """``z0`` as a batch of one, after checking the steps, the guidance and that z0 is the
    latent of a ``width`` x ``height`` picture (ValueError otherwise)."""
    if steps < 1:
        raise ValueError(f"inversion steps must be at least 1, got {steps}")
    if guidance < 0:
        raise ValueError(f"inversion guidance must be >= 0, got {guidance}")
    factor = pipe.vae_scale_factor
    channels = pipe.unet.config.in_channels
    expected = (1, channels, height // factor, width // factor)
    if width % factor or height % factor:
        raise ValueError(f"width and height must be multiples of {factor}, got {width}x{height}")
    if z0.dim() == 3:
        z0 = z0.unsqueeze(0)
    if tuple(z0.shape) != expected:
        raise ValueError(f"z0 must have shape {expected} for {width}x{height}, got {tuple(z0.shape)}")
    return z0


def _inversion_levels(ddim, steps: int, timesteps: Sequence[int] | None) -> torch.Tensor:
    """The ``steps`` levels to invert through, noisiest first (int64, CPU): ``timesteps``
    (checked: strictly decreasing training levels) or by default the DDIM scheduler's own."""
    ddim.set_timesteps(steps)
    if timesteps is None:
        levels = ddim.timesteps.to(torch.int64).cpu()
    else:
        levels = torch.as_tensor(list(timesteps), dtype=torch.int64)
        if levels.shape != (steps,) or bool((levels[1:] >= levels[:-1]).any()):
            raise ValueError(f"timesteps must be {steps} strictly decreasing levels, got {levels.tolist()}")
    num_train = ddim.config.num_train_timesteps
    if int(levels.min()) < 0 or int(levels.max()) >= num_train:
        raise ValueError(f"timesteps must lie in 0..{num_train - 1}, got {levels.tolist()}")
    return levels


@dataclass(frozen=True)
class _CaptionConditioning:
    """What every UNet call of one inversion shares: the caption's text embeddings (with the
    unconditional half first when guided), SDXL's added conditioning, the guidance embedding."""

    prompt_embeds: torch.Tensor
    added_cond: dict[str, torch.Tensor] | None
    timestep_cond: torch.Tensor | None
    guidance: float
    do_cfg: bool


def _caption_conditioning(pipe, caption: str, guidance: float, width: int,
                          height: int) -> _CaptionConditioning:
    """The caption encoded as the pipeline encodes a prompt with ``negative_prompt=None``, and
    on SDXL the time ids of the real output size (original = target = (height, width), crop
    (0, 0)); the base says which (``bases.Base``)."""
    device = pipe._execution_device
    unet = pipe.unet
    unet_dtype = unet.dtype
    # a guidance-embedded UNet is told the guidance instead of running CFG, as diffusers'
    # pipelines decide (``do_classifier_free_guidance``)
    do_cfg = guidance > 1.0 and unet.config.time_cond_proj_dim is None
    base = base_of(pipe)
    prompt_embeds, negative_embeds, pooled, negative_pooled = base.encode_prompt(pipe, caption, None, do_cfg)
    if do_cfg:
        prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        pooled = None if pooled is None else torch.cat([negative_pooled, pooled])
    # the text encoders' dtype need not be the UNet's (encoders kept in float32 beside a float16
    # UNet): its attention takes the embeddings in its own; the pooled embedding and the time ids
    # it casts itself (diffusers' ``get_aug_embed``), the time ids made as the generator's
    prompt_embeds = prompt_embeds.to(device=device, dtype=unet_dtype)
    added_cond = base.added_cond_kwargs(None if pooled is None else pooled.to(device),
                                        base.time_ids(pipe, height, width, unet_dtype, device), prompt_embeds.shape[0])
    timestep_cond = None
    if unet.config.time_cond_proj_dim is not None:  # guidance-embedded UNets, as the pipeline does
        timestep_cond = pipe.get_guidance_scale_embedding(
            torch.tensor(guidance - 1).repeat(1), embedding_dim=unet.config.time_cond_proj_dim
        ).to(device=device, dtype=unet_dtype)
    return _CaptionConditioning(prompt_embeds, added_cond, timestep_cond, guidance, do_cfg)


def _invert_through_levels(
    pipe,
    ddim,
    z0: torch.Tensor,
    levels: torch.Tensor,
    conditioning: _CaptionConditioning,
    on_step: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
) -> torch.Tensor:
    """The inversion loop: from z0 up through ``levels``, cleanest first, one UNet call per
    level. Returns the latents noisiest first, z0 last (float32, CPU)."""
    device = pipe._execution_device
    steps = int(levels.shape[0])
    alphas = ddim.alphas_cumprod.to(torch.float32)
    final_alpha = torch.as_tensor(ddim.final_alpha_cumprod, dtype=torch.float32)
    base = dataclasses.replace(base_of(pipe), prediction_type=ddim.config.prediction_type)

    z = z0.to(device=device, dtype=torch.float32)
    trajectory = [z.cpu()]
    cleanest_first = levels.flip(0).tolist()
    previous_levels = [None] + cleanest_first[:-1]  # None: the scheduler's final ᾱ
    for done, (t, previous) in enumerate(zip(cleanest_first, previous_levels)):
        if cancel is not None and cancel.is_set():
            raise InversionCancelled("inversion cancelled")
        output = _guided_prediction(pipe.unet, z, t, conditioning, device)
        alpha_t = alphas[t].to(device)
        alpha_prev = (final_alpha if previous is None else alphas[previous]).to(device)
        z = _inverse_ddim_step(base, output, z, alpha_t, alpha_prev)
        trajectory.append(z.cpu())
        if on_step is not None:
            on_step(done + 1, steps)
    return torch.cat(trajectory[::-1]).contiguous()


def _guided_prediction(unet, z: torch.Tensor, t: int, conditioning: _CaptionConditioning,
                       device) -> torch.Tensor:
    """The UNet's prediction at (z, t), in float32, CFG-combined when guided (the UNet runs in
    its own dtype)."""
    do_cfg = conditioning.do_cfg
    model_input = z.to(unet.dtype)
    if do_cfg:
        model_input = torch.cat([model_input, model_input])
    output = unet(
        model_input,
        torch.tensor(t, device=device),
        encoder_hidden_states=conditioning.prompt_embeds,
        timestep_cond=conditioning.timestep_cond,
        added_cond_kwargs=conditioning.added_cond,
        return_dict=False,
    )[0].to(torch.float32)
    if do_cfg:
        uncond, cond = output.chunk(2)
        output = uncond + conditioning.guidance * (cond - uncond)
    return output


def _inverse_ddim_step(base: Base, model_output: torch.Tensor, z: torch.Tensor, alpha_t: torch.Tensor,
                       alpha_prev: torch.Tensor) -> torch.Tensor:
    """One inverse DDIM step: z at the next cleaner level t⁻ (ᾱ = alpha_prev) up to level t
    (ᾱ = alpha_t), for the noise the model predicts there (ε, or v converted to ε, spec 14)."""
    eps = base.epsilon(model_output, z, alpha_t)
    x0 = (z - (1 - alpha_prev).sqrt() * eps) / alpha_prev.sqrt()
    return alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * eps
