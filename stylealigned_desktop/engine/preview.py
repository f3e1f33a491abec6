"""Live previews: a predicted clean latent to a small RGB picture through the SDXL latent->RGB factors.

No extra model: one 4x3 matrix per pixel, a few milliseconds. The factors (ComfyUI's published
ones) approximate SDXL's VAE decoder at 1/8 of the output size.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
from PIL import Image

from ..paths import resource


@cache
def latent_rgb_factors(family: str = "sdxl") -> tuple[np.ndarray, np.ndarray]:
    data = json.loads(resource("previews", "latent_rgb_factors.json").read_text(encoding="utf-8"))
    entry = data[family]
    return np.asarray(entry["factors"], dtype=np.float32), np.asarray(entry["bias"], dtype=np.float32)


def latent_to_rgb(x0, family: str = "sdxl") -> Image.Image:
    """A (4, h, w) latent (as the denoising loop holds it) to an (h, w) RGB picture."""
    factors, bias = latent_rgb_factors(family)
    latent = x0.detach().float().cpu().numpy() if hasattr(x0, "detach") else np.asarray(x0, np.float32)
    rgb = np.einsum("chw,cr->hwr", latent, factors) + bias
    rgb = np.clip(rgb, -1.0, 1.0)
    return Image.fromarray(((rgb + 1.0) * 127.5).round().astype(np.uint8), "RGB")
