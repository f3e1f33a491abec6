"""What a request asks of the device, in the memory model's terms (``memory.Workload``)."""

from __future__ import annotations

import torch

from . import memory as mem
from .bases import SDXL, base_of
from .models import base_of_source, resolve_device, resolve_dtype
from .preview_choice import uses_tiny_decoder
from .request import SetRequest
from .rows import Size
from .windows import Tiling


def workload(request: SetRequest, pipe=None, tilings: dict[Size, Tiling] | None = None) -> mem.Workload:
    """What a request asks of the device, for the memory model (``engine/memory.py``).

    A panorama's UNet rows are its windows (``tilings``; before the model is loaded they are not
    known, and the whole panel is planned as one row) but its decode is the whole picture."""
    kinds = {request.panels[i].control.kind for i in request.selected if request.panels[i].control is not None}
    sampling = request.sampling
    set_size = (sampling.width, sampling.height)
    sizes = [request.panel_size(i) for i in request.selected]
    scale_factor = pipe.vae_scale_factor if pipe is not None else 8
    rows = [tilings[size].window_size(scale_factor) if tilings and size in tilings else size for size in sizes]
    largest = max(rows, key=lambda s: s[0] * s[1], default=set_size)
    picture = max((w * h for w, h in sizes), default=0)
    dtype = resolve_dtype(request.dtype, resolve_device(request.device))
    vae_upcast = True
    if pipe is not None:
        vae_upcast = pipe.vae.dtype != torch.float32 and bool(pipe.vae.config.force_upcast)
    base = base_of(pipe) if pipe is not None else base_of_source(request.model) or SDXL
    return mem.Workload(family=base.family, base_name=base.name,
                        width=sampling.width, height=sampling.height, cfg=sampling.uses_cfg,
                        references=max(1, len(request.used_references) + len(request.characters)
                                       * request.settings.anchors_per_character), panel_width=largest[0],
                        panel_height=largest[1], controlnets=len(kinds),
                        bytes_per_weight=torch.finfo(dtype).bits // 8, vae_upcast=vae_upcast,
                        picture_pixels=picture, tiny_preview=uses_tiny_decoder(
                            request.previews, request.model, base.family, resolve_device(request.device).type != "cpu"))
