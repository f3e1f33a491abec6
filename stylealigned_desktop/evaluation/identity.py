"""Character identity (spec section 13): how alike one character looks across a set's panels.

Measured like style (spec section 10): DINO CLS cosine, mean over all pairs, but between the
panels' *masked subject crops*. A panel's crop for a character is its picture cut to the
bounding box of its subject mask (run.json's ``masks``, the last step's mask at the deepest
attention grid, scaled to the picture nearest-neighbour), with the pixels outside the mask grey
(:data:`OUTSIDE`), so that the background does not count. A set's identity for a character is
the mean pairwise cosine of its crops (two panels at least); a group's figure is the mean and
population standard deviation over its (set, character) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import metrics

OUTSIDE = (128, 128, 128)


def mask_array(rows: Sequence[str]) -> np.ndarray:
    """A mask from run.json's rows of 0 and 1."""
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def subject_crop(image: Image.Image, mask: np.ndarray) -> Image.Image | None:
    """The picture inside its subject mask (grey outside), cut to the mask's bounding box; None
    for an empty mask."""
    image = image.convert("RGB")
    scaled = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
    if not scaled.any():
        return None
    pixels = np.asarray(image).copy()
    pixels[~scaled] = OUTSIDE
    rows, columns = np.flatnonzero(scaled.any(axis=1)), np.flatnonzero(scaled.any(axis=0))
    return Image.fromarray(pixels[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1])


def character_crops(folder: Path, panels: Sequence[dict[str, Any]]) -> dict[str, list[tuple[Path, tuple[str, ...]]]]:
    """Per character, the (picture, mask rows) of every panel of a run.json that has its mask."""
    crops: dict[str, list[tuple[Path, tuple[str, ...]]]] = {}
    for panel in panels:
        for name, rows in (panel.get("masks") or {}).items() if isinstance(panel, dict) else ():
            if isinstance(rows, list) and rows and all(isinstance(r, str) for r in rows):
                crops.setdefault(name, []).append((folder / panel["file"], tuple(rows)))
    return crops


def set_identity(crops: dict[str, list[tuple[Path, tuple[str, ...]]]], dino) -> dict[str, float]:
    """Per character with two crops or more, the mean pairwise DINO cosine of its crops."""
    identity = {}
    for name, entries in crops.items():
        pictures = []
        for path, rows in entries:
            with Image.open(path) as image:
                crop = subject_crop(image, mask_array(rows))
            if crop is not None:
                pictures.append(crop)
        if len(pictures) >= 2:
            identity[name] = metrics.mean_pairwise_cosine(dino.embed(pictures))
    return identity


def identity_figure(per_set: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A group's identity figure from its {folder, character, value} entries."""
    values = np.array([entry["value"] for entry in per_set], dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "per_set": list(per_set)}
