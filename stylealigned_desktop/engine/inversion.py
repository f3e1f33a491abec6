"""DDIM inversion of a reference picture and the cache of its trajectories (spec section 7).

The pieces, in the order the generator uses them::

    z0 = encode_picture(pipe, fitted_picture)              # VAE mean x scaling factor, float32
    key = TrajectoryKey(picture_hash, caption, model, width, height, scheduler, steps, guidance,
                        timesteps=levels)    # levels: the generation schedule's timesteps
    traj = cache.get_or_compute(key, lambda: invert(pipe, z0, caption, steps, guidance,
                                                    width, height, scheduler=scheduler,
                                                    timesteps=levels, on_step=..., cancel=...))

Indexing convention (shared with the generator). The generation runs all T = ``steps``
denoising steps over ``traj.timesteps`` (noisiest first); "step i" (0-based) is the UNet
evaluation at ``traj.timesteps[i]``, the ``i`` of diffusers' ``callback_on_step_end``.
``traj.latents[k]`` is the inverted latent at noise level ``traj.timesteps[k]`` for k < T, and
``traj.latents[T]`` is z0. Following the authors, the reference row:

- enters step 0 as ``traj[offset]``;
- after step i is overwritten with ``traj[max(offset + 1, i + 1)]``
  (:func:`reference_latent_after_step`), so it enters step i >= 1 as
  ``traj[max(offset + 1, i)]`` (:func:`reference_unet_input`) and ends, after step T - 1,
  as ``traj[T] = z0``: its final image is the VAE round trip of the picture.

For i >= offset + 1 the reference therefore sits exactly at the level the UNet is told
(``traj[i]`` at ``timesteps[i]``); before that it is deliberately a little cleaner (the
authors' ``offset``). The latents are variance-preserving (DDPM/DDIM form): they are what the
UNet takes as input. With DDIM the scheduler sample is the same thing; with a scheduler whose
samples are scaled (Euler: sample = latent * sqrt(1 + sigma^2)), feed the reference's UNet
input directly instead of passing it through ``scale_model_input``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image

log = logging.getLogger(__name__)

TRAJECTORY_FORMAT = "stylealigned-trajectory"
TRAJECTORY_VERSION = 2  # 2: steps between the schedule's own neighbouring levels (spec 7.3)


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


def _rgb(image: Image.Image) -> Image.Image:
    """RGB for the VAE; transparency is composited on white (what an artist sees)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


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
    pixels = pipe.image_processor.preprocess(_rgb(image), height=height, width=width)
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
# The trajectory


@dataclass(frozen=True)
class Trajectory:
    """An inverted picture: ``steps + 1`` latents, noisiest first (treat as read-only).

    ``latents``: float32 CPU tensor (T+1, C, height/8, width/8); ``latents[T]`` is z0.
    ``timesteps``: int64 CPU tensor (T,), descending; ``latents[k]`` is at level ``timesteps[k]``.
    """

    latents: torch.Tensor
    timesteps: torch.Tensor
    caption: str
    guidance: float
    width: int
    height: int
    scheduler: str = "ddim"

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    @property
    def z0(self) -> torch.Tensor:
        """The clean latent (1, C, h, w)."""
        return self.latents[-1:]

    def __getitem__(self, index: int) -> torch.Tensor:
        """``traj[k]``: latent k as a (1, C, h, w) batch of one."""
        if not -len(self.latents) <= index < len(self.latents):
            raise IndexError(f"trajectory index {index} out of range 0..{len(self.latents) - 1}")
        return self.latents[index].unsqueeze(0)

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def _check_offset(traj: Trajectory, i: int, offset: int) -> None:
    steps = traj.steps
    if not 0 <= offset < steps:
        raise ValueError(f"inversion offset must be in 0..{steps - 1} for {steps} steps, got {offset}")
    if not 0 <= i < steps:
        raise ValueError(f"denoising step must be in 0..{steps - 1}, got {i}")


def reference_latent_after_step(traj: Trajectory, i: int, offset: int) -> torch.Tensor:
    """The reference latent after denoising step i (0-based): ``traj[max(offset + 1, i + 1)]``.

    After the last step (i = T - 1) this is z0.
    """
    _check_offset(traj, i, offset)
    return traj[max(offset + 1, i + 1)]


def reference_unet_input(traj: Trajectory, i: int, offset: int) -> torch.Tensor:
    """The reference latent the UNet sees at step i: ``traj[offset]`` for i = 0, else the
    latent written after step i - 1, ``traj[max(offset + 1, i)]``."""
    _check_offset(traj, i, offset)
    return traj[offset] if i == 0 else reference_latent_after_step(traj, i - 1, offset)


# --------------------------------------------------------------------------------------------
# Inversion


def inversion_scheduler(pipe):
    """A DDIM scheduler with the pipeline's schedule (betas, spacing, offset, prediction type)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False)


def _epsilon(model_output: torch.Tensor, sample: torch.Tensor, alpha_t: torch.Tensor,
             prediction_type: str) -> torch.Tensor:
    """The noise the model predicts, as DDIM's step derives it for the level with ᾱ = alpha_t."""
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        return alpha_t.sqrt() * model_output + (1 - alpha_t).sqrt() * sample
    if prediction_type == "sample":
        return (sample - alpha_t.sqrt() * model_output) / (1 - alpha_t).sqrt()
    raise ValueError(f"unsupported scheduler prediction_type {prediction_type!r}")


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

    device = pipe._execution_device
    unet = pipe.unet
    unet_dtype = unet.dtype
    ddim = inversion_scheduler(pipe)
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
    alphas = ddim.alphas_cumprod.to(torch.float32)
    final_alpha = torch.as_tensor(ddim.final_alpha_cumprod, dtype=torch.float32)
    prediction_type = ddim.config.prediction_type

    do_cfg = guidance > 1.0
    prompt_embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
        prompt=caption,
        device=device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=do_cfg,
        negative_prompt=None,
    )
    if pipe.text_encoder_2 is None:
        projection_dim = int(pooled.shape[-1])
    else:
        projection_dim = pipe.text_encoder_2.config.projection_dim
    time_ids = pipe._get_add_time_ids(
        (height, width), (0, 0), (height, width),
        dtype=prompt_embeds.dtype, text_encoder_projection_dim=projection_dim,
    )
    if do_cfg:
        prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        pooled = torch.cat([negative_pooled, pooled])
        time_ids = torch.cat([time_ids, time_ids])
    prompt_embeds = prompt_embeds.to(device=device, dtype=unet_dtype)
    added_cond = {
        "text_embeds": pooled.to(device=device, dtype=unet_dtype),
        "time_ids": time_ids.to(device=device, dtype=unet_dtype),
    }
    timestep_cond = None
    if unet.config.time_cond_proj_dim is not None:  # guidance-embedded UNets, as the pipeline does
        timestep_cond = pipe.get_guidance_scale_embedding(
            torch.tensor(guidance - 1).repeat(1), embedding_dim=unet.config.time_cond_proj_dim
        ).to(device=device, dtype=unet_dtype)

    z = z0.to(device=device, dtype=torch.float32)
    trajectory = [z.cpu()]
    cleanest_first = levels.flip(0).tolist()
    previous_levels = [None] + cleanest_first[:-1]  # None: the scheduler's final ᾱ
    for done, (t, previous) in enumerate(zip(cleanest_first, previous_levels)):
        if cancel is not None and cancel.is_set():
            raise InversionCancelled("inversion cancelled")
        model_input = z.to(unet_dtype)
        if do_cfg:
            model_input = torch.cat([model_input, model_input])
        output = unet(
            model_input,
            torch.tensor(t, device=device),
            encoder_hidden_states=prompt_embeds,
            timestep_cond=timestep_cond,
            added_cond_kwargs=added_cond,
            return_dict=False,
        )[0].to(torch.float32)
        if do_cfg:
            uncond, cond = output.chunk(2)
            output = uncond + guidance * (cond - uncond)
        alpha_t = alphas[t].to(device)
        alpha_prev = (final_alpha if previous is None else alphas[previous]).to(device)
        eps = _epsilon(output, z, alpha_t, prediction_type)
        x0 = (z - (1 - alpha_prev).sqrt() * eps) / alpha_prev.sqrt()
        z = alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * eps
        trajectory.append(z.cpu())
        if on_step is not None:
            on_step(done + 1, steps)

    latents = torch.cat(trajectory[::-1]).contiguous()
    return Trajectory(latents=latents, timesteps=levels, caption=caption, guidance=float(guidance),
                      width=width, height=height, scheduler=scheduler)


# --------------------------------------------------------------------------------------------
# Files and the cache


@dataclass(frozen=True)
class TrajectoryKey:
    """Everything a trajectory depends on (spec 7.6). ``picture_hash``: the picture's content
    hash; ``model``: a string identifying the weights (hub id + revision, folder, file...);
    ``timesteps``: the generation schedule's levels, noisiest first (the inversion steps between
    them, so two schedules with the same name and steps but other levels never share an entry)."""

    picture_hash: str
    caption: str
    model: str
    width: int
    height: int
    scheduler: str
    steps: int
    guidance: float
    timesteps: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        if len(self.timesteps) != self.steps:
            raise ValueError(f"a trajectory key needs the {self.steps} levels of the schedule, "
                             f"got {len(self.timesteps)}")

    def digest(self) -> str:
        """sha256 (hex) of the fields, stable across runs and platforms."""
        fields = asdict(self)
        fields["guidance"] = float(fields["guidance"])
        fields["format_version"] = TRAJECTORY_VERSION
        text = json.dumps(fields, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_trajectory(path: str | Path, traj: Trajectory, key: TrajectoryKey | None = None) -> Path:
    """Write a trajectory as safetensors (tensors ``latents``, ``timesteps``; the fields as
    metadata) atomically: a temporary file in the same folder, then ``os.replace``."""
    from safetensors.torch import save_file

    from ..temporaries import with_default_mode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": TRAJECTORY_FORMAT,
        "version": str(TRAJECTORY_VERSION),
        "caption": traj.caption,
        "guidance": repr(float(traj.guidance)),
        "width": str(traj.width),
        "height": str(traj.height),
        "scheduler": traj.scheduler,
        "steps": str(traj.steps),
    }
    if key is not None:
        metadata["key"] = json.dumps(asdict(key), sort_keys=True)
        metadata["picture_hash"] = key.picture_hash
        metadata["model"] = key.model
    tensors = {"latents": traj.latents.contiguous(), "timesteps": traj.timesteps.contiguous()}
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(with_default_mode(handle))
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class TrajectoryFileError(ValueError):
    """A trajectory file that cannot be read or is not a valid trajectory."""


def load_trajectory(path: str | Path, key: TrajectoryKey | None = None) -> Trajectory:
    """Read a file written by :func:`save_trajectory`. With ``key``, the file must have been
    saved for that key. Raises :class:`TrajectoryFileError` naming the file if it is not valid."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            latents = handle.get_tensor("latents")
            timesteps = handle.get_tensor("timesteps")
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise TrajectoryFileError(f"cannot read trajectory file {path}: {error}") from error
    try:
        if metadata.get("format") != TRAJECTORY_FORMAT:
            raise ValueError(f"not a {TRAJECTORY_FORMAT} file")
        if int(metadata.get("version", "0")) > TRAJECTORY_VERSION:
            raise ValueError(f"written by a newer version ({metadata['version']})")
        steps = int(metadata["steps"])
        width, height = int(metadata["width"]), int(metadata["height"])
        if timesteps.shape != (steps,) or latents.dim() != 4 or latents.shape[0] != steps + 1:
            raise ValueError(
                f"shapes {tuple(latents.shape)} / {tuple(timesteps.shape)} do not match {steps} steps"
            )
        if not torch.isfinite(latents).all():
            raise ValueError("latents are not finite")
        if key is not None and metadata.get("key") != json.dumps(asdict(key), sort_keys=True):
            raise ValueError("saved for different inputs")
        if key is not None and tuple(timesteps.tolist()) != key.timesteps:
            raise ValueError("saved for other levels of the schedule")
        return Trajectory(
            latents=latents.to(torch.float32),
            timesteps=timesteps.to(torch.int64),
            caption=metadata["caption"],
            guidance=float(metadata["guidance"]),
            width=width,
            height=height,
            scheduler=metadata["scheduler"],
        )
    except (KeyError, ValueError) as error:
        raise TrajectoryFileError(f"invalid trajectory file {path}: {error}") from error


class TrajectoryCache:
    """Trajectories kept in memory (the most recent ``memory_items``) and as safetensors files
    in ``folder`` (a session's ``cache/``, or :func:`stylealigned_desktop.paths.cache_dir`).

    A damaged or unreadable file is recomputed and overwritten; a file that cannot be written
    only costs the disk copy. Neither stops a run.
    """

    def __init__(self, folder: str | Path, memory_items: int = 8):
        self.folder = Path(folder)
        self.memory_items = max(0, memory_items)
        self._memory: OrderedDict[str, Trajectory] = OrderedDict()
        self._lock = threading.Lock()

    def path_for(self, key: TrajectoryKey) -> Path:
        return self.folder / f"trajectory-{key.digest()}.safetensors"

    def _remember(self, digest: str, traj: Trajectory) -> None:
        with self._lock:
            self._memory[digest] = traj
            self._memory.move_to_end(digest)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def get(self, key: TrajectoryKey) -> Trajectory | None:
        """The cached trajectory (memory, then disk), or None."""
        digest = key.digest()
        with self._lock:
            traj = self._memory.get(digest)
            if traj is not None:
                self._memory.move_to_end(digest)
                return traj
        path = self.path_for(key)
        if not path.exists():
            return None
        try:
            traj = load_trajectory(path, key)
        except TrajectoryFileError as error:
            log.warning("ignoring cached trajectory, it will be recomputed: %s", error)
            return None
        self._remember(digest, traj)
        return traj

    def put(self, key: TrajectoryKey, traj: Trajectory) -> None:
        """Keep ``traj`` in memory and write it to disk (a failed write is logged, not raised)."""
        self._remember(key.digest(), traj)
        try:
            save_trajectory(self.path_for(key), traj, key)
        except OSError as error:
            log.warning("could not write the trajectory cache file %s: %s", self.path_for(key), error)

    def get_or_compute(self, key: TrajectoryKey, compute: Callable[[], Trajectory]) -> Trajectory:
        """The cached trajectory for ``key``, or ``compute()``'s, which is then cached.
        Exceptions of ``compute`` (e.g. :class:`InversionCancelled`) propagate; nothing is cached."""
        traj = self.get(key)
        if traj is None:
            traj = compute()
            self.put(key, traj)
        return traj

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
