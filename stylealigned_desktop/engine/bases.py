"""The base model families the engine runs (spec section 14): SDXL, SD 1.x and SD 2.x.

One code path serves them all; a :class:`Base` holds only what differs: the text encoding (SDXL
has two encoders, a pooled embedding and size time ids; SD 1.x / 2.x one encoder and neither),
the native size, the number of self-attention layers (spec section 6), what the model predicts
(SD 2.1-768 predicts v), the preview factors, the default ControlNets and the text width that
LoRAs and ControlNets must match.

The base is always told from the model itself, never from its name: :func:`base_of` reads a
loaded pipeline (UNet config, scheduler config), :func:`family_of_unet` a UNet config (a folder's
``unet/config.json`` before anything loads), :func:`family_of_checkpoint` the tensor names of a
single-file checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .hub import DEFAULT_CONTROLNETS


@dataclass(frozen=True)
class Base:
    """A base model family, or (from :func:`base_of`) one loaded model of it."""

    name: str
    """As artists read it: "SDXL", "SD 1.5", "SD 2.x"."""
    family: str
    """"sdxl", "sd1" or "sd2"."""
    text_width: int
    """The text-embedding width the UNet reads (the family's published one; from
    :func:`base_of`, the model's own); LoRAs and ControlNets must be made for it."""
    self_attention_layers: int
    """L of spec section 6 in the published models (the installation counts the model's own)."""
    native_size: int
    """The side, in pixels, the model was trained at (from :func:`base_of`: the UNet's sample size)."""
    added_conditioning: bool
    """SDXL's pooled text embedding and size time ids."""
    preview_factors: str
    """The entry of ``resources/previews/latent_rgb_factors.json`` for live previews."""
    controlnets: Mapping[str, str] = field(default_factory=dict)
    """The ControlNet each preprocessing mode uses by default (none: it must be named)."""
    vae_scaling_factor: float = 0.18215
    prediction_type: str = "epsilon"
    """What the UNet predicts: "epsilon" or "v_prediction" (the scheduler config's)."""

    def time_ids(self, pipe, height: int, width: int, dtype, device):
        """The size time ids of a picture of this size (original = target = its size, crop
        (0, 0)): SDXL's (1, 6) tensor; None for bases without them."""
        if not self.added_conditioning:
            return None
        projection = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else None
        ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width), dtype=dtype,
                                     text_encoder_projection_dim=projection)
        return ids.to(device)

    def added_cond_kwargs(self, pooled, time_ids, rows: int) -> dict[str, Any] | None:
        """The UNet's (and ControlNet's) ``added_cond_kwargs`` for ``rows`` rows of a batch."""
        if not self.added_conditioning:
            return None
        return {"text_embeds": pooled, "time_ids": time_ids.repeat(rows, 1)}

    def encode_prompt(self, pipe, prompt: str, negative_prompt: str | None, cfg: bool):
        """One prompt as the pipeline encodes it: (embeds, negative embeds, pooled, negative
        pooled), each (1, ...); the pooled ones None on a base without them, the negative ones
        None without CFG."""
        encoded = pipe.encode_prompt(prompt=[prompt], device=pipe._execution_device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=cfg,
                                     negative_prompt=None if negative_prompt is None else [negative_prompt])
        if self.added_conditioning:
            return tuple(encoded)
        embeds, negative = encoded
        return embeds, negative if cfg else None, None, None

    def epsilon(self, output, sample, alpha):
        """The noise a model output means at a level with ᾱ = ``alpha`` for ``sample`` (the
        variance-preserving latent there), as DDIM's step derives it."""
        if self.prediction_type == "epsilon":
            return output
        if self.prediction_type == "v_prediction":
            return alpha.sqrt() * output + (1 - alpha).sqrt() * sample
        if self.prediction_type == "sample":
            return (sample - alpha.sqrt() * output) / (1 - alpha).sqrt()
        raise ValueError(f"unsupported scheduler prediction_type {self.prediction_type!r}")

    def x0(self, output, sample, alpha):
        """The clean latent a model output predicts at a level with ᾱ = ``alpha``."""
        eps = self.epsilon(output, sample, alpha)
        return (sample - (1 - alpha).sqrt() * eps) / alpha.sqrt()


SD15_CONTROLNETS = {
    "canny": "lllyasviel/control_v11p_sd15_canny",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
}

SDXL = Base("SDXL", "sdxl", 2048, 70, 1024, True, "sdxl", DEFAULT_CONTROLNETS, vae_scaling_factor=0.13025)
SD1 = Base("SD 1.5", "sd1", 768, 16, 512, False, "sd15", SD15_CONTROLNETS)
SD2 = Base("SD 2.x", "sd2", 1024, 16, 512, False, "sd15")
BASES = (SDXL, SD1, SD2)
BASE_BY_TEXT_WIDTH = {base.text_width: base for base in BASES}


def first_value(value):
    """A per-block config value's first entry (diffusers allows one value or one per block)."""
    return value[0] if isinstance(value, (list, tuple)) else value


def family_of_unet(config: Mapping[str, Any]) -> Base:
    """The family of a UNet config (a dict or a diffusers FrozenDict): SDXL's added text_time
    conditioning; else the text width of SD 1.x (768) or SD 2.x (1024); else (a model of
    another width, like the built-in tiny ones) SD 2's linear projections."""
    if config.get("addition_embed_type") == "text_time":
        return SDXL
    width = first_value(config.get("cross_attention_dim"))
    if width in (SD1.text_width, SD2.text_width):
        return BASE_BY_TEXT_WIDTH[width]
    return SD2 if config.get("use_linear_projection") else SD1


def base_of(pipe) -> Base:
    """The base of a loaded pipeline, with the model's own text width, native size and
    prediction type."""
    config = pipe.unet.config
    family = family_of_unet(config)
    return dataclasses.replace(
        family,
        text_width=int(first_value(config.cross_attention_dim)),
        native_size=int(first_value(config.sample_size)) * int(pipe.vae_scale_factor),
        prediction_type=pipe.scheduler.config.get("prediction_type", "epsilon"),
    )


# Tensor names of the original (single-file) checkpoints: SDXL's conditioner holds two
# encoders, SD 2's text encoder is OpenCLIP (``cond_stage_model.model``), SD 1's is CLIP's.
_CHECKPOINT_MARKS = (
    ("conditioner.embedders.1.", SDXL),
    ("cond_stage_model.model.", SD2),
    ("cond_stage_model.transformer.", SD1),
)


def family_of_checkpoint(keys) -> Base | None:
    """The family of a single-file checkpoint from its tensor names; None when none says."""
    keys = list(keys)
    for prefix, base in _CHECKPOINT_MARKS:
        if any(key.startswith(prefix) for key in keys):
            return base
    return None
