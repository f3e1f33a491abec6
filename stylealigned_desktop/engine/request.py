"""The immutable description of one generation: what the CLI, the GUI and scripts hand the engine.

Every number and text of a request is checked here, once, when the dataclass is made: the CLI,
the session (``session/values.py``) and the engine share these rules (the ``check_*``
functions and limits below), so a value one of them accepts, all of them accept. A bad value
raises ``ValueError`` with a message for the user.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .settings import StyleAlignedSettings

SCHEDULERS = ("ddim", "euler", "dpmpp-2m")
CONTROL_MODES = ("canny", "depth", "map")
CONTROLNET_KINDS = ("canny", "depth")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float16", "bfloat16", "float32")
DEFAULT_INVERSION_OFFSET_50 = 5  # the authors' offset for 50 steps

# --- limits and checks shared by the CLI, the session and the engine ---------------------------

MAX_SIDE = 4096
"""Largest width or height. SDXL was trained near one megapixel (1024x1024); far larger
pictures repeat their content and cost memory quadratically in attention."""
MAX_PIXELS = 16_777_216
"""Largest width x height (16.8 MP, 4096 x 4096)."""
MAX_STEPS = 1000
"""Most denoising steps: SDXL schedulers' training steps (the engine also checks the loaded
scheduler's own ``num_train_timesteps``)."""
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


def check_number(value: Any, name: str, low: float, high: float) -> float:
    """A finite number (not a bool) from ``low`` to ``high``, as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
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


def check_size(width: Any, height: Any) -> None:
    """Width and height: multiples of 8 from 64 to :data:`MAX_SIDE`, at most :data:`MAX_PIXELS`."""
    for name, value in (("width", width), ("height", height)):
        check_whole(value, name, 64, MAX_SIDE)
        if value % 8:
            raise ValueError(f"{name} must be a multiple of 8, got {value}")
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels; at most "
            f"{MAX_PIXELS / 1e6:.1f} are accepted (SDXL works best near 1 megapixel, e.g. 1024x1024)"
        )


def check_steps(value: Any, training_steps: int = MAX_STEPS) -> int:
    """Denoising steps: from 1 to the scheduler's training steps."""
    return check_whole(value, "steps", 1, training_steps)


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



@dataclass(frozen=True)
class GeneratedReference:
    """The reference is generated from a style prompt (prompts-only sets)."""

    prompt: str
    seed: int = 0

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "reference prompt")
        check_seed(self.seed, "reference seed")


@dataclass(frozen=True)
class ReferencePicture:
    """The reference is a picture, DDIM-inverted (spec section 7).

    ``inversion_offset`` None means the authors' 5 of 50 steps scaled to the step count:
    ``round(5 * steps / 50)``, at least 0 and at most steps - 1.
    """

    path: str
    caption: str = ""
    inversion_guidance: float = 2.0
    inversion_offset: int | None = None

    def __post_init__(self) -> None:
        check_text(self.path, "reference picture path")
        check_prompt(self.caption, "reference caption")
        object.__setattr__(self, "inversion_guidance",
                           check_number(self.inversion_guidance, "inversion guidance", 0.0, MAX_GUIDANCE))
        if self.inversion_offset is not None:
            check_whole(self.inversion_offset, "inversion offset", 0, MAX_STEPS - 1)

    def offset_for(self, steps: int) -> int:
        if self.inversion_offset is not None:
            return self.inversion_offset
        return max(0, min(steps - 1, round(DEFAULT_INVERSION_OFFSET_50 * steps / 50)))


StyleSource = GeneratedReference | ReferencePicture


@dataclass(frozen=True)
class PanelControl:
    """A panel's ControlNet conditioning (spec section 8).

    ``mode``: ``canny`` (edges detected in the picture), ``depth`` (depth estimated from the
    picture) or ``map`` (the picture already is a control map; ``map_kind`` says whether it is a
    depth map or an edge map, i.e. which ControlNet it feeds). ``scale`` is the ControlNet
    conditioning scale; the control acts from ``guidance_start`` to ``guidance_end`` (fractions
    of the denoising).
    """

    image: str
    mode: str = "canny"
    scale: float = 0.8
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    canny_low: int = 100
    canny_high: int = 200
    map_kind: str = "depth"

    @property
    def kind(self) -> str:
        """Which ControlNet this control feeds: ``canny`` or ``depth``."""
        return self.map_kind if self.mode == "map" else self.mode

    def __post_init__(self) -> None:
        if self.mode not in CONTROL_MODES:
            raise ValueError(f"control mode must be one of {', '.join(CONTROL_MODES)}, got {self.mode!r}")
        if self.map_kind not in CONTROLNET_KINDS:
            raise ValueError(f"a ready-made map is one of {', '.join(CONTROLNET_KINDS)}, got {self.map_kind!r}")
        check_text(self.image, "control picture path")
        scale, start, end = check_control(self.scale, self.guidance_start, self.guidance_end,
                                          self.canny_low, self.canny_high)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "guidance_start", start)
        object.__setattr__(self, "guidance_end", end)


@dataclass(frozen=True)
class Panel:
    """One image of the set besides the reference. ``prompt`` is final (style text included)."""

    prompt: str
    seed: int
    control: PanelControl | None = None

    def __post_init__(self) -> None:
        check_prompt(self.prompt, "panel prompt")
        check_seed(self.seed, "panel seed")


@dataclass(frozen=True)
class Sampling:
    steps: int = 50
    guidance: float = 5.0
    width: int = 1024
    height: int = 1024
    scheduler: str = "ddim"
    negative_prompt: str | None = None
    """None behaves as diffusers' ``negative_prompt=None`` (SDXL zeroes the unconditional text)."""

    def __post_init__(self) -> None:
        check_steps(self.steps)
        object.__setattr__(self, "guidance", check_number(self.guidance, "guidance", 0.0, MAX_GUIDANCE))
        check_size(self.width, self.height)
        if self.negative_prompt is not None:
            check_prompt(self.negative_prompt, "negative prompt")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.guidance > 1.0


@dataclass(frozen=True)
class SetRequest:
    """Everything one generation depends on.

    ``only`` names the panels (0-based indices into ``panels``) to generate; None means all.
    Each panel's result depends only on its own prompt, seed and control, the style source,
    the sampling and the settings: never on the other panels or on ``micro_batch``.
    ``full_attention_share`` is the exception: it couples all images by definition.
    """

    model: str
    style: StyleSource
    panels: tuple[Panel, ...]
    sampling: Sampling = field(default_factory=Sampling)
    settings: StyleAlignedSettings = field(default_factory=StyleAlignedSettings)
    micro_batch: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    only: tuple[int, ...] | None = None
    cache_dir: str | None = None
    """Where inversion trajectories are cached (a session's cache/); None: the user cache folder."""
    controlnet_canny: str | None = None
    """ControlNet for canny edges (hub id or folder); None: the default for the model."""
    controlnet_depth: str | None = None
    depth_model: str | None = None
    """Monocular depth estimator (hub id or folder); None: the default for the model."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "panels", tuple(self.panels))
        if len(self.panels) > MAX_PANELS:
            raise ValueError(f"a set has at most {MAX_PANELS} panels, got {len(self.panels)}")
        if self.only is not None:
            object.__setattr__(self, "only", tuple(sorted(set(self.only))))
            bad = [i for i in self.only if not 0 <= i < len(self.panels)]
            if bad:
                raise ValueError(f"panel index out of range: {bad} (the set has {len(self.panels)} panels)")
        if self.micro_batch is not None:
            check_whole(self.micro_batch, "micro-batch", 1, MAX_MICRO_BATCH)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def selected(self) -> tuple[int, ...]:
        return self.only if self.only is not None else tuple(range(len(self.panels)))

    def picture_parameters(self) -> dict[str, Any]:
        """What every picture of this set shares, as its PNG ``parameters`` record it."""
        sampling = self.sampling
        return {
            "model": self.model,
            "negative_prompt": sampling.negative_prompt,
            "steps": sampling.steps,
            "guidance": sampling.guidance,
            "width": sampling.width,
            "height": sampling.height,
            "scheduler": sampling.scheduler,
            "stylealigned": self.settings.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["style"]["kind"] = "picture" if isinstance(self.style, ReferencePicture) else "generated"
        return data
