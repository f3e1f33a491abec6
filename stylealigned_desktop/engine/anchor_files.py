"""The characters' part of a run folder (spec section 13): anchor pictures and subject masks.

Each anchor is written beside the references as ``anchor-<name>-<k>.png`` (k 1-based; the name
with anything but letters, digits, ``_`` and ``-`` as ``_``), with its parameters, and listed in
run.json's ``anchors``; each panel's entry carries its ``masks``: per character it names, the
rows of its last step's mask as strings of 0 and 1 (the deepest attention grid).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .events import RunResult
from .request import SetRequest, character_dict


def anchor_file(character: str, number: int) -> str:
    """File name of a character's anchor ``number`` (0-based)."""
    return f"anchor-{re.sub(r'[^A-Za-z0-9_-]', '_', character)}-{number + 1}.png"


def mask_rows(mask) -> list[str]:
    """A mask as run.json keeps it: one string of 0 and 1 per row."""
    return ["".join("1" if x else "0" for x in row) for row in np.asarray(mask)]


def stage_anchors(folder: Path, request: SetRequest, result: RunResult, common: dict[str, Any],
                  staged: dict[str, str], stage_png: Callable) -> list[dict[str, Any]]:
    """Stage the anchors the run made into ``staged``; run.json's entry of each."""
    entries = []
    characters = {c.name: c for c in request.characters}
    for (_kind, name, number), image in sorted(result.anchors.items(), key=lambda item: item[0][1:]):
        character = characters[name]
        pictures = tuple(character.anchor_pictures) + (None,) * (number + 1)
        entry = {"character": name, "anchor": number + 1, "file": anchor_file(name, number),
                 "seed": None if pictures[number] else character.anchor_seeds[number],
                 "picture": pictures[number],
                 "mask": mask_rows(result.masks[("anchor", name, number)][name])
                 if name in result.masks.get(("anchor", name, number), {}) else None}
        entries.append(entry)
        staged[entry["file"]] = stage_png(image, folder / entry["file"], dict(
            common, role="anchor", character=name, anchor=number + 1, seed=entry["seed"], picture=entry["picture"],
            character_record=character_dict(character)))
    return entries


def panel_masks(result: RunResult, index: int) -> dict[str, list[str]]:
    """A panel's masks as its run.json entry keeps them (none: empty)."""
    return {name: mask_rows(mask) for name, mask in result.masks.get(index, {}).items()}
