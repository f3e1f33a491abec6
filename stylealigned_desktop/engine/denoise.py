"""The pieces of a denoising step that are not scheduling: the per-run context, text
conditioning by rows, ControlNet residuals by rows, and the VAE decode.

:class:`RunContext` is what every UNet call of one run needs (model, scheduler, conditioning,
time ids, CFG halves and guidance, the prepared controls, the request and the shared-attention
installation); the engine builds it once per run and hands it to its step helpers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .install import Installation
from .request import PanelControl, SetRequest


@dataclass
class Conditioning:
    """Text conditioning of rows, both CFG halves kept separately: (rows, ...) each."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    negative_embeds: torch.Tensor | None
    negative_pooled: torch.Tensor | None

    def rows(self, index: Sequence[int] | slice, halves: int):
        """UNet inputs for these rows, laid out [uncond rows | cond rows] when CFG is on."""
        if halves == 1:
            return self.embeds[index], self.pooled[index]
        return (torch.cat([self.negative_embeds[index], self.embeds[index]]),
                torch.cat([self.negative_pooled[index], self.pooled[index]]))


@dataclass
class PreparedControl:
    """A panel's control map as the ControlNet takes it: (1, 3, H, W) in [0, 1]."""

    control: PanelControl
    image: torch.Tensor

    def active(self, step: int, total: int) -> bool:
        """Whether the control acts at this step (diffusers' controlnet_keep rule)."""
        return not (step / total < self.control.guidance_start or (step + 1) / total > self.control.guidance_end)


@dataclass
class RunContext:
    """Everything the UNet calls of one run share; built once per run by the engine."""

    pipe: Any
    scheduler: Any
    cond: Conditioning
    time_ids: torch.Tensor
    halves: int
    guidance: float
    controls: list[PreparedControl | None]
    """One per selected panel (the reference has none)."""
    request: SetRequest
    installation: Installation
    controlnet: Callable[[str], Any]
    """The ControlNet of a kind ("canny", "depth"), loaded once per engine."""
    cancel: threading.Event
    sink: Callable

    def step_controls(self, step: int, total: int) -> list[PreparedControl | None]:
        """The panels' controls that act at this step (None where a panel has none or it is off)."""
        return [c if c is not None and c.active(step, total) else None for c in self.controls]


def control_residuals(run: RunContext, model_input, t, embeds, pooled, controls):
    """ControlNet residuals for the rows of one UNet batch; rows without control get zeros.

    ``controls`` has one entry per row of a CFG half. Each ControlNet runs only on its own
    panels' rows and sees the same text as the UNet row it controls (both CFG halves).
    Residuals are linear in the conditioning scale, so each row is scaled by its own panel's.
    """
    if not any(c is not None for c in controls):
        return None
    m, halves = len(controls), run.halves
    down, mid = None, None
    for kind in sorted({c.control.kind for c in controls if c is not None}):
        positions = [j for j, c in enumerate(controls) if c is not None and c.control.kind == kind]
        rows = [h * m + j for h in range(halves) for j in positions]
        image = torch.cat([controls[j].image for j in positions] * halves).to(model_input.device, model_input.dtype)
        scale = torch.tensor([controls[j].control.scale for j in positions] * halves,
                             device=model_input.device, dtype=model_input.dtype).view(-1, 1, 1, 1)
        res_down, res_mid = run.controlnet(kind)(
            model_input[rows], t, encoder_hidden_states=embeds[rows], controlnet_cond=image,
            conditioning_scale=1.0, guess_mode=False,
            added_cond_kwargs={"text_embeds": pooled[rows], "time_ids": run.time_ids.repeat(len(rows), 1)},
            return_dict=False,
        )
        if down is None:
            down = [torch.zeros((model_input.shape[0],) + r.shape[1:], dtype=r.dtype, device=r.device) for r in res_down]
            mid = torch.zeros((model_input.shape[0],) + res_mid.shape[1:], dtype=res_mid.dtype, device=res_mid.device)
        for total, part in zip(down, res_down):
            total[rows] += part * scale
        mid[rows] += res_mid * scale
    return down, mid


def predicted_x0(scheduler, latents, eps, t):
    """x0 from an epsilon prediction for schedulers whose step does not report it."""
    alphas = scheduler.alphas_cumprod.to(latents.device)
    alpha = alphas[int(t)].to(torch.float32)
    return (latents.float() - (1 - alpha).sqrt() * eps.float()) / alpha.sqrt()


def decode_latent(pipe, latents):
    """VAE decode of one latent, as the SDXL pipeline does it (float32 VAE where it must)."""
    vae = pipe.vae
    needs_upcast = vae.dtype == torch.float16 and vae.config.force_upcast
    if needs_upcast:
        vae.to(dtype=torch.float32)
    try:
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        with torch.no_grad():
            image = vae.decode(latents, return_dict=False)[0]
    finally:
        if needs_upcast:
            vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="pil")[0]
