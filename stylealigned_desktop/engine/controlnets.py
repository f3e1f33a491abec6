"""ControlNets (spec section 8): :func:`load_controlnet` from a hub id, a local diffusers
folder or a tiny model's name; :func:`check_controlnet_matches` refuses one made for another base model;
:class:`ControlNetCache` keeps each one loaded once per engine."""

from __future__ import annotations

import pickle
import threading
from typing import TYPE_CHECKING, Any

from .bases import family_of_unet
from .control_sources import TINY_SEED, ControlError, not_available_message, resolve_source
from .models import TINY, TINY_MODELS

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _as_dtype(dtype: torch.dtype | str | None):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        value = getattr(torch, str(dtype))
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise ControlError(f"unknown dtype {dtype!r}")
    return value


def tiny_controlnet(unet, name: str = TINY):
    """A ControlNet for the tiny model ``name``, built from its UNet (``ControlNetModel.from_unet``).

    The weights come from that tiny UNet as first built (``tiny.build_tiny_unet``), not from
    ``unet`` itself, which may be offloaded (weights on ``meta``) or carry LoRA layers; ``unet``
    gives the dtype and device. A trained ControlNet starts from zero convolutions, which would
    make this one a no-op; here they get random weights (fixed seed) so a control map visibly
    changes what the tiny model draws, which is what tests need.
    """
    import torch
    from diffusers import ControlNetModel

    from .tiny import build_tiny_unet

    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        controlnet = ControlNetModel.from_unet(
            build_tiny_unet(name), conditioning_embedding_out_channels=(8, 8, 16, 16)
        )
        zero_initialised = [
            *controlnet.controlnet_down_blocks,
            controlnet.controlnet_mid_block,
            controlnet.controlnet_cond_embedding.conv_out,
        ]
        for conv in zero_initialised:
            conv.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    device = next(unet.parameters()).device
    if device.type == "meta":  # sequentially offloaded: the engine places the ControlNet itself
        device = torch.device("cpu")
    if controlnet.dtype != unet.dtype:  # avoid diffusers' warning on a no-op cast
        controlnet = controlnet.to(dtype=unet.dtype)
    return controlnet.to(device).eval().requires_grad_(False)


def load_controlnet(
    source: str, dtype: torch.dtype | str | None = None, device: str = "cpu", unet=None
):
    """A ``ControlNetModel`` from a hub id, a local diffusers folder, or a tiny model's name.

    A tiny one needs ``unet`` (the tiny UNet it is built from). No caching here: an engine keeps
    its ControlNets in a :class:`ControlNetCache`. Raises :class:`ControlError` with download
    instructions when the model is not available offline.
    """
    dtype = _as_dtype(dtype)
    if source in TINY_MODELS:
        if unet is None:
            raise ControlError("the tiny ControlNet is built from the tiny UNet: pass unet=")
        controlnet = tiny_controlnet(unet, source)
        if dtype is not None and dtype != controlnet.dtype:  # avoid diffusers' warning on a no-op cast
            controlnet = controlnet.to(dtype=dtype)
        return controlnet.to(device=device)
    import torch
    from diffusers import ControlNetModel

    from .models import dtype_kwargs

    location = resolve_source(source, "ControlNet")
    attempts = [{"variant": "fp16"}, {}] if dtype == torch.float16 else [{}]
    error: BaseException | None = None
    for extra in attempts:
        try:
            controlnet = ControlNetModel.from_pretrained(location, use_safetensors=True, **dtype_kwargs(dtype),
                                                         **extra)
            break
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            error = exc  # first a missing fp16 variant (then retried), or the real error
    else:
        raise ControlError(not_available_message(source, "ControlNet", error)) from None
    return controlnet.to(device).eval().requires_grad_(False)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def check_controlnet_matches(controlnet, unet, source: str = "the ControlNet") -> None:
    """Raise :class:`ControlError` if ``controlnet`` cannot drive ``unet``.

    Its residuals are added to the UNet's skip connections, and it reads the same text and
    SDXL size conditioning, so the block widths, the block count, the text width and the added
    (text_time) conditioning must all agree. A ControlNet of another base (SD 1.5 on SDXL, SDXL
    on SD 2) fails here with a message naming both bases, before any denoising starts.
    """
    c, u = controlnet.config, unet.config
    mismatches = [
        f"{label} {ours} vs the model's {theirs}"
        for _key, label, ours, theirs in _configs_compared(c, u)
        if ours != theirs
    ]
    if not mismatches:
        return
    raise ControlError(
        f"{source} does not match the base model ({'; '.join(mismatches)}): {_mismatch_hint(c, u)}"
    )


def _configs_compared(c, u) -> list[tuple[str, str, Any, Any]]:
    """(config key, what it is for the user, the ControlNet's value, the UNet's value) for each
    setting that must agree."""
    return [
        (
            "cross_attention_dim",
            "text-embedding width",
            _as_tuple(c.cross_attention_dim),
            _as_tuple(u.cross_attention_dim),
        ),
        (
            "addition_embed_type",
            "added conditioning",
            c.get("addition_embed_type"),
            u.get("addition_embed_type"),
        ),
        (
            "projection_class_embeddings_input_dim",
            "size/pooled-text conditioning width",
            c.get("projection_class_embeddings_input_dim"),
            u.get("projection_class_embeddings_input_dim"),
        ),
        (
            "addition_time_embed_dim",
            "time-id embedding width",
            c.get("addition_time_embed_dim"),
            u.get("addition_time_embed_dim"),
        ),
        (
            "block_out_channels",
            "block widths",
            tuple(c.block_out_channels),
            tuple(u.block_out_channels),
        ),
        (
            "layers_per_block",
            "layers per block",
            _as_tuple(c.layers_per_block),
            _as_tuple(u.layers_per_block),
        ),
        ("in_channels", "latent channels", c.in_channels, u.in_channels),
    ]


def _mismatch_hint(c, u) -> str:
    """What to use instead: a ControlNet of the model's base when this one looks made for another."""
    theirs, ours = family_of_unet(c), family_of_unet(u)
    if theirs == ours:
        return "use a ControlNet trained for this base model"
    examples = f" such as {' or '.join(ours.controlnets.values())}" if ours.controlnets else ""
    return (f"it looks like a ControlNet for {theirs.name}; this base model is {ours.name}, so use a "
            f"ControlNet for {ours.name}{examples}")


class ControlNetCache:
    """The ControlNets of one engine: each (source, dtype, device) loaded and checked once."""

    def __init__(self) -> None:
        self._models: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, source: str, unet, dtype: torch.dtype | str | None = None, device: str = "cpu"):
        """The ControlNet for ``source``, loaded on first use and checked against ``unet``."""
        dtype = _as_dtype(dtype)
        # tiny depends on the UNet it is built from; hub/folder models do not
        key = (source, str(dtype), str(device), id(unet) if source in TINY_MODELS else None)
        with self._lock:
            if key not in self._models:
                controlnet = load_controlnet(source, dtype=dtype, device=device, unet=unet)
                check_controlnet_matches(controlnet, unet, source=f"ControlNet {source!r}")
                self._models[key] = controlnet
            else:
                check_controlnet_matches(self._models[key], unet, source=f"ControlNet {source!r}")
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)
