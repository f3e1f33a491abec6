"""Sizes that follow the model to another base (spec section 14; no Qt, no torch).

The size menus offer the presets of the model's base (``generation.size_presets``: SDXL's
aspects about 1024 × 1024, SD 1.5's and SD 2 base's about 512, SD 2.1-768's about 768, the tiny
models' about 128). When the artist picks a model of another base, a size that is one of the old
base's presets, or a panorama preset at the old base's height, moves to the new base's preset of
the same aspect: an SDXL 1152 × 896 set becomes SD 1.5's 576 × 448 rather than a panorama of
twice the model's size. A size the artist typed (no preset of the old base) stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from .generation import PANORAMA_RATIOS, SDXL_SIZES, panorama_sizes, scaled_size

Size = tuple[int, int]


def preset_on_base(size: Size, old_native: int, new_native: int) -> Size | None:
    """The preset of a model trained at ``new_native`` pixels a side with the aspect of
    ``size``, when ``size`` is one of the presets of a model trained at ``old_native`` (the first
    of SDXL's aspects that scales onto it, as ``size_presets`` keeps it); None for any other size."""
    for aspect in SDXL_SIZES:
        if scaled_size(aspect, old_native) == tuple(size):
            return scaled_size(aspect, new_native)
    return None


def panorama_on_base(size: Size, old_native: int, new_native: int) -> Size | None:
    """The panorama preset at ``new_native``'s height of the ratio of ``size``, when ``size`` is
    a panorama preset at ``old_native``'s height and the new one fits a panel; None otherwise."""
    for ratio in PANORAMA_RATIOS:
        if tuple(size) == (ratio * old_native, old_native):
            new = (ratio * new_native, new_native)
            return new if new in panorama_sizes(new_native) else None
    return None


@dataclass(frozen=True)
class SizeMove:
    """One size that moved to the new base: the set's (``panel_id`` None) or a panel's."""

    panel_id: str | None
    old: Size
    new: Size


def _sizes(moves: list[SizeMove]) -> str:
    shown = dict.fromkeys(f"{m.old[0]}×{m.old[1]} → {m.new[0]}×{m.new[1]}" for m in moves)
    return ", ".join(shown)


def describe_moves(moves: tuple[SizeMove, ...], base_name: str) -> str:
    """The moves in words for the status bar ("Set size 1024×1024 → 512×512 for SD 1.5");
    empty when nothing moved."""
    if not moves:
        return ""
    parts = []
    set_moves = [m for m in moves if m.panel_id is None]
    panel_moves = [m for m in moves if m.panel_id is not None]
    if set_moves:
        parts.append(f"Set size {_sizes(set_moves)}")
    if panel_moves:
        panels = "1 panel" if len(panel_moves) == 1 else f"{len(panel_moves)} panels"
        parts.append(f"{panels} {_sizes(panel_moves)}")
    return f"{'; '.join(parts)} for {base_name}"
