"""The limits of every number and text a generation takes, and their checks, in one place.

The CLI, the session (``session/values.py``, ``session/generation.py``), the request dataclasses
(``request.py``), the engine's settings and control maps all use these, so a value one of them
accepts, all of them accept. Each check returns the value (a float for numbers) or raises
``ValueError`` with a message for the user; nothing here imports torch or Qt.
"""

from __future__ import annotations

import math
from typing import Any

MAX_SIDE = 4096
"""Largest width or height. SDXL was trained near one megapixel (1024x1024); far larger
pictures repeat their content and cost memory quadratically in attention."""
MAX_PIXELS = 16_777_216
"""Largest width x height (16.8 MP, 4096 x 4096)."""
MAX_STEPS = 500
"""Most denoising steps. Every scheduler works up to half its training steps (1000 for SDXL):
with SDXL's "leading" spacing and offset of 1, DDIM at 1000 steps indexes past its last
training step and DPM++ 2M from 999 on repeats or leaves its timesteps. The engine also checks
the loaded scheduler's own ``num_train_timesteps`` (:func:`check_steps`)."""
MAX_PANELS = 1000
MAX_PROMPT_CHARS = 2000
CLIP_TOKENS = 77
"""CLIP reads this many tokens of a prompt (start and end included); the rest is ignored."""
SEED_LIMIT = 2**64 - 1
"""The largest seed (``torch.Generator.manual_seed`` takes 64 bits)."""
MAX_GUIDANCE = 50.0
MAX_CONTROL_SCALE = 4.0
MAX_CANNY = 255
MAX_MICRO_BATCH = MAX_PANELS
MAX_SCORE_SHIFT = 10.0
"""StyleAligned's shared_score_shift is a log-weight: e^10 already drowns the panel's own tokens."""
MAX_SCORE_SCALE = 10.0
MAX_LORA_WEIGHT = 10.0
"""A LoRA's weight scales its change to the model: far past ±10 it is noise, not a style."""
MAX_WINDOW_STRIDE = MAX_SIDE // 8
"""The largest MultiDiffusion window stride in latent pixels (spec section 14): a picture's width."""
MAX_PANORAMA_ABOVE = MAX_SIDE / 64
"""The largest "panorama above" factor: no panel is that many native sizes wide (at 64 px native)."""


def check_number(value: Any, name: str, low: float, high: float) -> float:
    """A finite number (not a bool) from ``low`` to ``high``, as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number from {low:g} to {high:g}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def check_whole(value: Any, name: str, low: int, high: int) -> int:
    """A whole number (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value}")
    return value


def check_seed(value: Any, name: str = "seed") -> int:
    return check_whole(value, name, 0, SEED_LIMIT)


def check_text(value: Any, name: str, limit: int | None = None) -> str:
    """Text that can be stored (no lone surrogates), at most ``limit`` characters."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} holds characters that are not valid text") from None
    if limit is not None and len(value) > limit:
        raise ValueError(
            f"{name} is {len(value)} characters long; at most {limit} are accepted "
            f"(CLIP reads only the first {CLIP_TOKENS} tokens, roughly 60 words)"
        )
    return value


def check_prompt(value: Any, name: str = "prompt") -> str:
    return check_text(value, name, MAX_PROMPT_CHARS)


def check_size(width: Any, height: Any, *, minimum: int = 64, multiple: int = 8) -> None:
    """Width and height: multiples of ``multiple`` from ``minimum`` to :data:`MAX_SIDE`, and at
    most :data:`MAX_PIXELS` together (a picture's size: 64 and 8; a control map's: 1 and 1)."""
    for name, value in (("width", width), ("height", height)):
        check_whole(value, name, minimum, MAX_SIDE)
        if value % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple}, got {value}")
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels; at most "
            f"{MAX_PIXELS / 1e6:.1f} are accepted (SDXL works best near 1 megapixel, e.g. 1024x1024)"
        )


PANEL_SIZE_STEP = 64
"""A panel's own width and height are multiples of this (spec section 12): the SDXL UNet halves
the latent three times, so every level keeps whole tokens."""


def check_panel_size(size: Any) -> tuple[int, int] | None:
    """A panel's own (width, height), multiples of :data:`PANEL_SIZE_STEP`; None: the set's size."""
    if size is None:
        return None
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"a panel size is (width, height), got {size!r}")
    width, height = size
    try:
        check_size(width, height, minimum=PANEL_SIZE_STEP, multiple=PANEL_SIZE_STEP)
    except ValueError as exc:
        raise ValueError(f"panel size: {exc}") from None
    return int(width), int(height)


def check_weight(value: Any, name: str = "reference weight") -> float:
    """A reference's weight: a finite number >= 0 (0 keeps it listed without using it)."""
    return check_number(value, name, 0.0, math.inf)


def check_lora_weight(value: Any) -> float:
    """A LoRA's weight: a finite number within ±:data:`MAX_LORA_WEIGHT` (negative inverts it)."""
    return check_number(value, "LoRA weight", -MAX_LORA_WEIGHT, MAX_LORA_WEIGHT)


def check_steps(value: Any, training_steps: int | None = None) -> int:
    """Denoising steps: from 1 to :data:`MAX_STEPS`, and to half a scheduler's
    ``training_steps`` when given (see :data:`MAX_STEPS`)."""
    high = MAX_STEPS if training_steps is None else min(MAX_STEPS, training_steps // 2)
    return check_whole(value, "steps", 1, high)


def check_control(scale: Any, start: Any, end: Any, low: Any, high: Any) -> tuple[float, float, float]:
    """A control's strength, active span and canny thresholds; returns (scale, start, end) as floats."""
    scale = check_number(scale, "control strength", 0.0, MAX_CONTROL_SCALE)
    start = check_number(start, "control start", 0.0, 1.0)
    end = check_number(end, "control end", 0.0, 1.0)
    if not start < end:
        raise ValueError(f"control start/end must satisfy 0 <= start < end <= 1, got {start:g}/{end:g}")
    check_whole(low, "canny low threshold", 0, MAX_CANNY)
    check_whole(high, "canny high threshold", 0, MAX_CANNY)
    if not low < high:
        raise ValueError(f"canny thresholds must satisfy 0 <= low < high <= {MAX_CANNY}, got {low}/{high}")
    return scale, start, end
