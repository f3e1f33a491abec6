"""Subject masks from cross-attention (spec section 13, steps 1-3).

At every step, the cross-attention layers at the UNet's deepest attention resolution give, for
each image and character, the attention probabilities ``softmax(QK^T / sqrt(d))`` over the text
tokens, averaged over heads, the character's subject-word tokens and those layers
(:func:`layer_subject_map`, :class:`SubjectMapProcessor`). The map is scaled to [0, 1] by its
minimum and maximum and thresholded by Otsu's method (:func:`otsu_threshold`, 256 bins, ties to
the lower threshold; the mask is the map above the threshold bin's centre, as scikit-image's
``threshold_otsu`` is used). The mask is resized nearest-neighbour to each self-attention grid
(:func:`resize_nearest`, pixel centres). The mask made at step i is used at step i + 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch

OTSU_BINS = 256


def otsu_threshold(values: np.ndarray, bins: int = OTSU_BINS) -> float:
    """Otsu's threshold of ``values``: the centre of the last bin of the lower class that
    maximises the between-class variance (of ``bins`` equal bins from the minimum to the
    maximum); the first maximum, i.e. the lower threshold, on ties."""
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if low == high:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)  # class sizes for thresholds after bin 0..bins-2
    above = values.size - below
    sums = np.cumsum(counts * centres)[:-1]
    mean_below = sums / np.maximum(below, 1)
    mean_above = (np.sum(counts * centres) - sums) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(centres[int(np.argmax(between))])


def subject_mask(subject_map: np.ndarray) -> np.ndarray:
    """The binary mask of one map (any shape): scaled to [0, 1] by its minimum and maximum, then
    Otsu-thresholded. A flat map (nothing stands out) gives an empty mask."""
    subject_map = np.asarray(subject_map, dtype=np.float64)
    low, high = subject_map.min(), subject_map.max()
    if not high > low:
        return np.zeros(subject_map.shape, dtype=bool)
    scaled = (subject_map - low) / (high - low)
    return scaled > otsu_threshold(scaled)


def resize_nearest(mask: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Nearest-neighbour resize by pixel centres: target (i, j) reads source
    (floor((i + 1/2) h / rows), floor((j + 1/2) w / columns))."""
    h, w = mask.shape
    r = np.minimum(((np.arange(rows) + 0.5) * h / rows).astype(np.int64), h - 1)
    c = np.minimum(((np.arange(columns) + 0.5) * w / columns).astype(np.int64), w - 1)
    return mask[r[:, None], c[None, :]]


def grid_of(tokens: int, latent_height: int, latent_width: int) -> tuple[int, int]:
    """(rows, columns) of an attention layer with ``tokens`` tokens over a latent of that size:
    the latent divided by a power of two (SDXL's sizes are multiples of 64 pixels)."""
    factor = round(math.sqrt(latent_height * latent_width / tokens))
    rows, columns = -(-latent_height // factor), -(-latent_width // factor)
    if rows * columns != tokens:
        raise ValueError(f"{tokens} tokens are no grid of a {latent_height}x{latent_width} latent")
    return rows, columns


def layer_subject_map(query: torch.Tensor, key: torch.Tensor, scale: float,
                      tokens: Sequence[Sequence[int]]) -> torch.Tensor:
    """One layer's maps: query (heads, N, d) and key (heads, T, d) of one image;
    ``tokens``: per character, its subject tokens. Returns (characters, N), float32: the
    probabilities over the T text tokens, averaged over heads and each character's tokens."""
    probabilities = torch.softmax(query.float() @ key.float().transpose(-1, -2) * scale, dim=-1).mean(dim=0)
    return torch.stack([probabilities[:, list(t)].mean(dim=-1) if t else probabilities.new_zeros(probabilities.shape[0])
                        for t in tokens])  # no token read (a prompt cut by CLIP): a flat map, no mask


_LEVELS = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.|^mid_block\.")


def deepest_cross_attention_names(unet) -> list[str]:
    """Processor names of the cross-attention layers at the UNet's deepest attention resolution
    (SDXL: ``down_blocks.2``, ``mid_block`` and ``up_blocks.0``, latent / 4 per side)."""
    downs, ups = len(unet.down_blocks), len(unet.up_blocks)

    def level(name: str) -> int:  # how many times the latent was halved before this layer
        match = _LEVELS.match(name)
        if match is None or match.group(1) is None:
            return downs - 1  # the mid block: after the last down block, which does not halve
        block = int(match.group(2))
        return block if match.group(1) == "down_blocks" else ups - 1 - block

    cross = [name for name in unet.attn_processors
             if getattr(unet.get_submodule(name.removesuffix(".processor")), "is_cross_attention", False)]
    deepest = max((level(name) for name in cross), default=None)
    return [name for name in cross if level(name) == deepest]


class SubjectMapProcessor:
    """A cross-attention layer that also adds its subject maps to ``maps`` (a
    :class:`~.character_attention.CharacterState`); its output is the wrapped processor's, untouched."""

    def __init__(self, inner, maps, name: str):
        self.inner = inner
        self.maps = maps
        self.name = name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        wanted = self.maps.wanted_rows(hidden_states.shape[0])
        if wanted and encoder_hidden_states is not None:
            self._add_maps(attn, hidden_states, encoder_hidden_states, wanted)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

    def _add_maps(self, attn, hidden_states, encoder_hidden_states, wanted) -> None:
        """``wanted``: (batch position, run row, subject tokens per character) of the rows to map."""
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ValueError("subject maps need a transformer's cross-attention (no spatial or group norm)")
        positions = [position for position, _row, _tokens in wanted]
        states = hidden_states[positions]
        context = encoder_hidden_states[positions]
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        query, key = attn.to_q(states), attn.to_k(context)
        heads = attn.heads
        query = query.view(len(positions), -1, heads, query.shape[-1] // heads).transpose(1, 2)
        key = key.view(len(positions), -1, heads, key.shape[-1] // heads).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        for j, (_position, row, tokens) in enumerate(wanted):
            self.maps.add_map(row, layer_subject_map(query[j], key[j], attn.scale, tokens))
