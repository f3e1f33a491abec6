"""What the engine treats as each character in a panel (spec section 13's subject masks of the
last step), drawn over the panel's picture: one translucent colour per character.

A mask is a small 2-D array (the attention grid, e.g. 32×32 at 1024²) of 0/1 or booleans; the
overlay keeps its cells square-edged when scaled up (nearest neighbour), so the artist sees the
grid the engine decided on, not a blur of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PySide6.QtGui import QColor, QImage

from ..support import CHARACTER_COLOURS

MASK_ALPHA = 110
"""The overlay's opacity (0..255) where a mask is set: the picture stays readable under it."""


def mask_colour(position: int) -> QColor:
    """The colour of the character at ``position`` (as its chips on the cards)."""
    return QColor(CHARACTER_COLOURS[position % len(CHARACTER_COLOURS)])


def mask_overlay(masks: Mapping[str, np.ndarray], names: Sequence[str] = ()) -> QImage | None:
    """An ARGB image at the masks' grid size: each character's cells in its colour (the later
    character on top where two overlap), transparent elsewhere. None without masks. A
    character's colour is its place in ``names`` (the session's characters: the same colour in
    every picture), else its place among ``masks``. Masks of different grids are brought to the
    largest one by nearest neighbour."""
    named = [(name, np.asarray(m)) for name, m in masks.items()]
    named = [(name, m) for name, m in named if m.ndim == 2 and m.size]
    if not named:
        return None
    arrays = [m for _, m in named]
    height = max(m.shape[0] for m in arrays)
    width = max(m.shape[1] for m in arrays)
    pixels = np.zeros((height, width, 4), dtype=np.uint8)  # B, G, R, A (little-endian ARGB32)
    for position, (name, mask) in enumerate(named):
        if name in names:
            position = list(names).index(name)
        rows = np.arange(height) * mask.shape[0] // height
        cols = np.arange(width) * mask.shape[1] // width
        cells = mask[rows][:, cols] > 0.5
        colour = mask_colour(position)
        pixels[cells] = (colour.blue(), colour.green(), colour.red(), MASK_ALPHA)
    image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_ARGB32)
    return image.copy()  # owns its pixels once the array goes
