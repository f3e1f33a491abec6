import json

import numpy as np
import torch

from stylealigned_desktop.engine.preview import latent_rgb_factors, latent_to_rgb
from stylealigned_desktop.paths import resource


def test_factors_are_shipped_with_the_package():
    data = json.loads(resource("previews", "latent_rgb_factors.json").read_text())
    factors, bias = latent_rgb_factors("sdxl")
    assert factors.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_allclose(factors, data["sdxl"]["factors"])


def test_matches_a_per_pixel_computation_from_the_published_formula():
    latent = torch.randn(4, 6, 5)
    image = latent_to_rgb(latent)
    assert image.size == (5, 6) and image.mode == "RGB"
    factors, bias = latent_rgb_factors("sdxl")
    pixels = np.asarray(image)
    for y in range(6):
        for x in range(5):
            rgb = [sum(float(latent[c, y, x]) * factors[c][k] for c in range(4)) + bias[k] for k in range(3)]
            expected = [round((min(1.0, max(-1.0, v)) + 1.0) * 127.5) for v in rgb]
            assert np.abs(pixels[y, x].astype(int) - expected).max() <= 1


def test_a_smooth_latent_gives_a_smooth_preview():
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    latent = torch.stack([xx, yy, xx * yy, 0.5 * xx]) * 2
    image = np.asarray(latent_to_rgb(latent), dtype=float)
    assert np.abs(np.diff(image, axis=0)).max() < 12 and np.abs(np.diff(image, axis=1)).max() < 12
