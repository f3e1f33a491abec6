"""Which preview decoder a run uses, and the line that says so; torch-free, so the window's
Settings can say what Auto picks before a run without loading the engine.

``auto`` and ``tiny`` take the tiny autoencoder (TAESDXL) when it is on disk; the built-in
``tiny`` model has its own random-weight one (it shows noise); without it both fall back to the
latent factors. On the processor alone ``auto`` keeps the factors: there a TAESDXL decode costs
seconds (docs/performance.md), more than a step, where a GPU takes milliseconds. ``vae`` decodes
with the full VAE every ``DEFAULT_VAE_EVERY`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .request import PREVIEW_KINDS

DEFAULT_VAE_EVERY = 5
"""The full VAE's previews come every this many steps (it is exact and slow)."""
PREVIEW_LABELS = {
    "auto": "Auto",
    "factors": "Latent factors (1/8 size, instant)",
    "tiny": "Tiny autoencoder (full size)",
    "vae": f"Full VAE every {DEFAULT_VAE_EVERY} steps (slow)",  # exact: the tip says; the dock is narrow
    "off": "Off",
}
"""What the window calls each kind of ``SetRequest.previews``."""


@dataclass(frozen=True)
class PreviewChoice:
    decoder: str
    """``factors``, ``tiny`` or ``vae``: what decodes the previews."""
    source: str | None
    """The tiny autoencoder's hub id or folder (None: the tiny model's random one, or no tiny)."""
    said: str
    """The line a run's log says (a ``Notice``), naming the decoder and why when it is not the
    one asked for."""


def choose_preview(kind: str, model: str = "", tiny_source: str | None = None,
                   on_disk: Callable[[str], object] | None = None, accelerator: bool = True,
                   family: str = "sdxl") -> PreviewChoice:
    """The decoder a run with ``previews=kind`` uses; ``on_disk(repo)`` (default: the hub
    cache holds the whole snapshot) says whether the tiny autoencoder is downloaded;
    ``accelerator``: the run has a GPU (else Auto keeps the factors); ``family``: the model's
    base (``bases.Base.family``), whose tiny autoencoder it is (TAESDXL, or TAESD for SD)."""
    if kind not in PREVIEW_KINDS or kind == "off":
        raise ValueError(f"preview decoder must be one of {', '.join(PREVIEW_KINDS[:-1])}, got {kind!r}")
    if kind == "factors":
        return PreviewChoice("factors", None, "previews: latent factors")
    if kind == "vae":
        return PreviewChoice("vae", None, f"previews: full VAE every {DEFAULT_VAE_EVERY} steps")
    from .hub import TINY_DECODERS, complete_snapshot, download_command
    from .tiny import TINY_MODELS

    if model.strip() in TINY_MODELS and tiny_source is None:
        return PreviewChoice("tiny", None, "previews: tiny autoencoder (the tiny model's random weights: noise)")
    source = tiny_source or TINY_DECODERS.get(family, TINY_DECODERS["sdxl"])
    if kind == "auto" and not accelerator:
        return PreviewChoice("factors", None, "previews: latent factors (Auto on the processor: the tiny "
                                              "autoencoder takes seconds a picture there; choose it in Previews)")
    if Path(source).expanduser().is_dir() or (on_disk or complete_snapshot)(source) is not None:
        return PreviewChoice("tiny", source, f"previews: tiny autoencoder ({source})")
    return PreviewChoice("factors", None, (
        f"previews: latent factors (the tiny autoencoder {source} is not downloaded: "
        f"Models → Other models, or {download_command(source)})"))


def uses_tiny_decoder(previews: str, model: str, family: str, accelerator: bool) -> bool:
    """Whether a run's previews go through the tiny autoencoder (the memory model counts it)."""
    return previews != "off" and choose_preview(previews, model, family=family, accelerator=accelerator).decoder == "tiny"
