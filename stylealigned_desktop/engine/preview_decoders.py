"""Preview decoders: a step's predicted clean latent (x0) to a picture, and the throttle that
says which panel's preview is due.

One interface, ``decode(x0) -> picture``, three implementations:

- ``LatentFactors``: the latent->RGB factors (``engine.preview``), 1/8 size, always available;
- ``TinyAutoencoder``: diffusers' ``AutoencoderTiny`` (TAESDXL), full size, about 1 M parameters;
- ``FullVae``: the pipeline's own VAE decode, exact and slow, so only every ``every`` steps.

Which one a run uses is ``preview_choice.choose_preview``'s (torch-free) answer, made into a
decoder here by :func:`make_preview_decoder`. Nothing here knows of Qt: the engine calls
``LivePreviews.after_step`` from its denoising step (``denoise.show_previews``), on its thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from PIL import Image

from .preview import latent_to_rgb
from .preview_choice import DEFAULT_VAE_EVERY, PreviewChoice, choose_preview

DEFAULT_BUDGET = 0.10
"""Previews may cost this share of a step's measured time."""


class PreviewDecoder(Protocol):
    name: str
    every: int
    """The decoder is used only on steps that are multiples of this (1: every step)."""

    def decode(self, x0: torch.Tensor) -> Image.Image:
        """A (4, h, w) latent in the UNet's (scaled) space to a picture."""


def _to_picture(sample: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) decoder output in [-1, 1] to an RGB picture, as the pipelines postprocess."""
    from diffusers.image_processor import VaeImageProcessor

    return VaeImageProcessor().postprocess(sample.float(), output_type="pil")[0]


@dataclass
class LatentFactors:
    family: str = "sdxl"
    name: str = "latent factors"
    every: int = 1

    def decode(self, x0):
        return latent_to_rgb(x0, self.family)


@dataclass
class TinyAutoencoder:
    """TAESD(XL): it reads the UNet's latents as they are (its scaling factor is 1)."""

    vae: object
    device: object = "cpu"
    """Where it decodes: the pipeline's execution device (its weights may be offloaded)."""
    name: str = "tiny autoencoder"
    every: int = 1

    def decode(self, x0):
        latent = x0[None].to(self.device, self.vae.dtype) / self.vae.config.scaling_factor
        with torch.no_grad():
            return _to_picture(self.vae.decode(latent).sample)


@dataclass
class FullVae:
    """The pipeline's own VAE (``decode``: a (1, 4, h, w) latent to its picture), every ``every`` steps."""

    decode_latent: Callable[[torch.Tensor], Image.Image]
    every: int = DEFAULT_VAE_EVERY
    name: str = "full VAE"

    def decode(self, x0):
        return self.decode_latent(x0[None])


def load_tiny_decoder(source: str, dtype):
    """The ``AutoencoderTiny`` of a cached hub id or a local folder, offline, in system memory
    (:func:`~.memory.place_preview_decoder` puts it where the memory mode wants it)."""
    from diffusers import AutoencoderTiny

    from .models import hub_or_folder

    location = hub_or_folder(source, "tiny autoencoder")
    vae = AutoencoderTiny.from_pretrained(location, use_safetensors=True, local_files_only=True, torch_dtype=dtype)
    return vae.eval().requires_grad_(False)


def make_preview_decoder(choice: PreviewChoice, pipe, full_vae: Callable[[torch.Tensor], Image.Image],
                         factors: str = "sdxl") -> PreviewDecoder:
    """The decoder of a :class:`~.preview_choice.PreviewChoice` for a loaded pipeline (the tiny
    one in the UNet's dtype, placed by the memory mode); ``full_vae`` decodes a (1, 4, h, w)
    latent with the pipeline's VAE; ``factors``: the base's latent factors (``Base.preview_factors``)."""
    from . import memory as mem

    if choice.decoder == "factors":
        return LatentFactors(factors)
    if choice.decoder == "vae":
        return FullVae(full_vae, every=DEFAULT_VAE_EVERY)
    dtype = pipe.unet.dtype
    if choice.source is None:
        from .tiny import build_tiny_preview_decoder

        vae = build_tiny_preview_decoder()
        vae = vae if vae.dtype == dtype else vae.to(dtype=dtype)
    else:
        vae = load_tiny_decoder(choice.source, dtype)
    mem.place_preview_decoder(pipe, vae)
    return TinyAutoencoder(vae, pipe._execution_device)


def scheduler_x0(scheduler, output) -> torch.Tensor | None:
    """The step's predicted clean latent as the scheduler itself made it: the step output's
    ``pred_original_sample`` (DDIM, Euler), or DPM++'s converted model output (its data
    prediction, kept as ``model_outputs[-1]``); None where the scheduler has neither."""
    x0 = getattr(output, "pred_original_sample", None)
    if x0 is None and "dpmsolver++" in str(getattr(scheduler.config, "algorithm_type", "")):
        x0 = scheduler.model_outputs[-1]
    return x0


@dataclass
class PreviewThrottle:
    """Which panels' previews are due after a step.

    Previews may cost ``budget`` of a step's measured time, the unspent share carried to the
    next step, and the panels take turns (least recently shown first): where the budget buys
    ``r`` decodes a step, each panel is shown at least once every ``ceil(panels / r)`` steps, and
    never at more than the budget's cost, however slow the decoder (a full-size decode on a
    processor costs more than a step: then the panels show seldom, but the set is not slowed).
    Times are passed in, measured by the caller, so the schedule itself is plain arithmetic."""

    panels: int
    budget: float = DEFAULT_BUDGET
    credit: float = 0.0
    last: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.last = [0] * self.panels

    def due(self, step: int, step_seconds: float, decode_seconds: float | None) -> list[int]:
        """The panels to decode after ``step`` (1-based), given the step's time and one decode's
        (None before the first decode: then every panel, once, so each shows from the start,
        and the decodes are measured)."""
        order = sorted(range(self.panels), key=lambda row: (self.last[row], row))
        if decode_seconds is None:
            chosen = order
        else:
            self.credit = min(self.credit + self.budget * step_seconds / max(decode_seconds, 1e-9), self.panels)
            chosen = order[:int(self.credit)]
            self.credit -= len(chosen)
        for row in chosen:
            self.last[row] = step
        return sorted(chosen)


@dataclass
class LivePreviews:
    """The engine's preview stage: after each step, the due panels' x0 through the decoder."""

    decoder: PreviewDecoder
    throttle: PreviewThrottle
    clock: Callable[[], float] = time.perf_counter
    decode_seconds: float | None = None

    def after_step(self, step: int, x0_rows: Callable[[int], torch.Tensor], step_seconds: float):
        """``(row, picture)`` for each row due; ``x0_rows(row)`` gives a row's (4, h, w) x0. A
        decoder of every few steps (the full VAE, chosen by name for checking) decodes every row
        on its steps, as its name says, whatever it costs; the others take the throttle's turns."""
        every = max(1, self.decoder.every)
        if step % every:
            return []
        due = range(self.throttle.panels) if every > 1 else self.throttle.due(step, step_seconds, self.decode_seconds)
        pictures = []
        for row in due:
            started = self.clock()
            pictures.append((row, self.decoder.decode(x0_rows(row))))
            spent = self.clock() - started
            # a running mean: the first decode of a run may pay for warming up
            self.decode_seconds = spent if self.decode_seconds is None else \
                self.decode_seconds + 0.25 * (spent - self.decode_seconds)
        return pictures


class RunPreviews:
    """The engine's previews from run to run: each run's :class:`LivePreviews` (None when off),
    the chosen decoder said at every run as the memory mode is, and kept between runs with the
    same choice, pipeline and placement (a tiny autoencoder loads once)."""

    def __init__(self, budget: float = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._kept: tuple[tuple, PreviewDecoder] | None = None

    def clear(self) -> None:
        self._kept = None

    def for_run(self, request, pipe, base, rows: int, decode_latent: Callable, sink: Callable) -> LivePreviews | None:
        """``base``: the model's (``bases.Base``); ``decode_latent(pipe, latent)``: the VAE decode."""
        from . import events as ev
        from . import memory as mem

        if request.previews == "off":
            return None
        choice = choose_preview(request.previews, request.model, family=base.family,
                                accelerator=pipe._execution_device.type != "cpu")
        sink(ev.Notice(choice.said))
        key = (choice, id(pipe), base.preview_factors, mem.placement_of(pipe))
        if self._kept is None or self._kept[0] != key:
            decoder = make_preview_decoder(choice, pipe, lambda latent: decode_latent(pipe, latent), base.preview_factors)
            self._kept = (key, decoder)
        return LivePreviews(self._kept[1], PreviewThrottle(rows, budget=self.budget))
