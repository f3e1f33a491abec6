"""Subject masks (spec section 13, steps 1-2) against naive code written from the spec's text,
scikit-image's Otsu and PIL's nearest-neighbour resize, on synthetic maps."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.filters import threshold_otsu

from stylealigned_desktop.engine.subject_masks import (
    deepest_cross_attention_names,
    grid_of,
    layer_subject_map,
    otsu_threshold,
    resize_nearest,
    subject_mask,
)


def _maps():
    rng = np.random.default_rng(7)
    blob = np.zeros((6, 10))
    blob[1:4, 2:7] = 1.0
    yield rng.random((5, 9))  # uniform
    yield blob + 0.05 * rng.random((6, 10))  # a subject on a quiet ground
    yield np.concatenate([rng.normal(0.2, 0.05, 40), rng.normal(0.7, 0.1, 23)]).reshape(7, 9)
    yield np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 1.0, 0.25]])  # few values: ties between thresholds
    yield rng.integers(0, 3, (4, 12)).astype(float)  # three levels
    yield np.array([[0.0, 1 / 512, 1.0, 1.0], [0.0, 1 / 512, 1.0, 0.0]])  # a value on the threshold: not in the mask


@pytest.mark.parametrize("subject_map", list(_maps()))
def test_otsu_is_scikit_images(subject_map):
    scaled = (subject_map - subject_map.min()) / (subject_map.max() - subject_map.min())
    assert otsu_threshold(scaled) == pytest.approx(threshold_otsu(scaled, nbins=256), abs=1e-12)


def _naive_mask(subject_map, bins=256):
    """Steps 2 of the spec, written out: scale by min and max, try every threshold between the
    256 bins, keep the first largest between-class variance; the mask is above its bin's centre."""
    flat = [float(x) for x in subject_map.ravel()]
    low, high = min(flat), max(flat)
    scaled = [(x - low) / (high - low) for x in flat]
    width = 1.0 / bins
    index = [min(int(x / width), bins - 1) for x in scaled]
    best, best_k = -1.0, 0
    for k in range(bins - 1):
        lower = [x for x, i in zip(scaled, index) if i <= k]
        upper = [x for x, i in zip(scaled, index) if i > k]
        if not lower or not upper:
            continue
        # the classes' means of their bins' centres
        m0 = sum((i + 0.5) * width for i in index if i <= k) / len(lower)
        m1 = sum((i + 0.5) * width for i in index if i > k) / len(upper)
        variance = len(lower) * len(upper) * (m0 - m1) ** 2
        if variance > best + 1e-15:
            best, best_k = variance, k
    centre = (best_k + 0.5) * width
    return np.array([x > centre for x in scaled]).reshape(subject_map.shape)


@pytest.mark.parametrize("subject_map", list(_maps()))
def test_masks_are_the_naive_ones(subject_map):
    assert np.array_equal(subject_mask(subject_map), _naive_mask(subject_map))


def test_a_flat_map_gives_an_empty_mask():
    assert not subject_mask(np.full((3, 5), 0.25)).any()


@pytest.mark.parametrize("shape, target", [((4, 6), (8, 12)), ((3, 5), (7, 4)), ((6, 4), (6, 4)), ((5, 7), (2, 3))])
def test_nearest_resize_is_pils(shape, target):
    mask = np.random.default_rng(3).random(shape) > 0.5
    pil = Image.fromarray(mask.astype(np.uint8) * 255).resize((target[1], target[0]), Image.NEAREST)
    assert np.array_equal(resize_nearest(mask, *target), np.asarray(pil) > 0)


def test_layer_maps_average_probabilities_over_heads_and_subject_tokens():
    generator = torch.Generator().manual_seed(5)
    heads, n, t, d = 3, 6, 9, 4
    q, k = torch.randn(heads, n, d, generator=generator), torch.randn(heads, t, d, generator=generator)
    tokens = [(2, 3), (7,), ()]
    got = layer_subject_map(q, k, 1 / math.sqrt(d), tokens)
    for c, chosen in enumerate(tokens):
        for i in range(n):
            total = 0.0
            for h in range(heads):
                scores = [sum(q[h, i, x] * k[h, j, x] for x in range(d)).item() / math.sqrt(d) for j in range(t)]
                exps = [math.exp(s - max(scores)) for s in scores]
                total += sum(exps[j] for j in chosen) / sum(exps) / max(len(chosen), 1)
            assert got[c, i].item() == pytest.approx(total / heads, abs=1e-6)


def test_grids_of_non_square_latents():
    assert grid_of(24, 16, 24) == (4, 6)
    assert grid_of(96, 16, 24) == (8, 12)
    with pytest.raises(ValueError):
        grid_of(25, 16, 24)


def test_the_deepest_cross_attention_layers_are_those_with_the_fewest_tokens(tiny_pipe):
    """Independent of the block arithmetic: run the UNet and count each cross-attention's tokens."""
    unet = tiny_pipe.unet
    counts = {}
    hooks = [module.register_forward_pre_hook(
        lambda mod, args, kwargs, name=name: counts.__setitem__(name, kwargs.get("hidden_states", args[0] if args else None).shape[1]),
        with_kwargs=True)
        for name, module in unet.named_modules() if getattr(module, "is_cross_attention", False)]
    try:
        with torch.no_grad():
            unet(torch.zeros(1, 4, 16, 24), 10, encoder_hidden_states=torch.zeros(1, 77, 64),
                 added_cond_kwargs={"text_embeds": torch.zeros(1, 32), "time_ids": torch.zeros(1, 6)})
    finally:
        for hook in hooks:
            hook.remove()
    fewest = min(counts.values())
    expected = sorted(f"{name}.processor" for name, count in counts.items() if count == fewest)
    assert sorted(deepest_cross_attention_names(unet)) == expected and fewest == 4 * 6
