"""Install shared attention (and optionally shared GroupNorm) on a diffusers UNet.

``with style_aligned(pipe, settings): pipe(prompts, ...)`` generates a set whose first prompt is
the reference, the authors' convention. On exit the UNet is exactly as it was: the same
processor objects (LoRA, IP-Adapter and other processors keep working) and the same norm layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from .attention import SharedSelfAttnProcessor, SharingState, unshared_layer_mask
from .norms import SharedGroupNorm
from .settings import StyleAlignedSettings

_NO_INSTANCE_FORWARD = object()


def self_attention_names(unet) -> list[str]:
    """Processor names of the self-attention layers, in UNet order."""
    names = []
    for name in unet.attn_processors:
        module = unet.get_submodule(name.removesuffix(".processor"))
        if not getattr(module, "is_cross_attention", False):
            names.append(name)
    return names


class Installation:
    """Shared attention installed on one UNet; :meth:`remove` puts back what was there."""

    def __init__(self, unet, settings: StyleAlignedSettings,
                 halves_provider: Callable[[], int] = lambda: 2):
        if not hasattr(unet, "attn_processors"):
            raise TypeError(f"expected a diffusers UNet with attention processors, got {type(unet).__name__}")
        self.unet = unet
        self.state = SharingState(settings, halves_provider)
        self._saved_processors = dict(unet.attn_processors)
        self._saved_forwards: list[tuple[nn.Module, str, object]] = []

        self_names = self_attention_names(unet)
        if not self_names:
            raise ValueError("this UNet has no self-attention layers to share")
        # only_self_level and share_group_norm apply with full_attention_share too (spec 2, 5, 6)
        unshared = unshared_layer_mask(len(self_names), settings.only_self_level)
        self.shared_layers = [n for n, off in zip(self_names, unshared) if not off]
        processors = dict(self._saved_processors)
        for name in self.shared_layers:
            processors[name] = SharedSelfAttnProcessor(self.state, name)
        unet.set_attn_processor(processors)

        if settings.share_group_norm:
            for name, module in unet.named_modules():
                if isinstance(module, nn.GroupNorm):
                    # Under accelerate's offload hooks ``forward`` is the hook's wrapper (it brings the
                    # weights in) and the module's own forward is ``_old_forward``: replace that one.
                    slot = "_old_forward" if hasattr(module, "_hf_hook") and hasattr(module, "_old_forward") else "forward"
                    self._saved_forwards.append((module, slot, module.__dict__.get(slot, _NO_INSTANCE_FORWARD)))
                    setattr(module, slot, SharedGroupNorm(module, self.state, name))

    @property
    def settings(self) -> StyleAlignedSettings:
        return self.state.settings

    def remove(self) -> None:
        self.unet.set_attn_processor(self._saved_processors)
        for module, slot, forward in reversed(self._saved_forwards):
            if forward is _NO_INSTANCE_FORWARD:
                delattr(module, slot)
            else:
                setattr(module, slot, forward)
        self._saved_forwards.clear()
        self.state.cache.clear()


def _cfg_halves(pipe) -> Callable[[], int]:
    def halves() -> int:
        try:
            return 2 if pipe.do_classifier_free_guidance else 1
        except AttributeError:  # called outside a pipeline call: assume CFG, like the authors
            return 2

    return halves


@contextmanager
def style_aligned(pipe, settings: StyleAlignedSettings | None = None) -> Iterator[Installation]:
    """Share the first prompt's style with the rest of the batch inside this block.

    Works on any diffusers SDXL or SD 1.x / 2.x pipeline (text-to-image, ControlNet, img2img...). With
    classifier-free guidance each CFG half has its own reference (its first row); with
    guidance <= 1 there is a single reference.
    """
    unet = getattr(pipe, "unet", None)
    if unet is None:
        raise TypeError(f"{type(pipe).__name__} has no UNet: style_aligned needs an SDXL or SD pipeline")
    installation = Installation(unet, settings or StyleAlignedSettings(), _cfg_halves(pipe))
    try:
        yield installation
    finally:
        installation.remove()
