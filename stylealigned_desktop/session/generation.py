"""A session's generation settings: sampling, StyleAligned knobs, the models and memory mode that
run with the model, with validation and JSON round trips (frozen, as the other value types)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..engine import limits
from ..engine.request import MEMORY_MODES, PREVIEW_KINDS, Lora, Sampling
from ..engine.settings import StyleAlignedSettings
from .characters import CharacterSettings
from .errors import SessionError
from .json_fields import Reader, check_number, check_text

CHARACTER_KNOBS = frozenset(f.name for f in fields(CharacterSettings))
"""StyleAlignedSettings' character fields: a session keeps them with its characters, not here."""

SDXL_SIZES: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
"""Width x height pairs SDXL was trained on (about one megapixel), for the size presets."""
SDXL_SIDE = 1024
"""The native side of SDXL: SDXL_SIZES are about its square."""
PANORAMA_RATIOS = (4, 3)
"""The panorama presets: 4:1 and 3:1 wide establishing shots (spec section 14)."""


def scaled_size(size: tuple[int, int], native: int) -> tuple[int, int]:
    """One of SDXL's trained sizes scaled to a model trained at ``native`` pixels a side,
    rounded to whole multiples of 64 (halves up)."""
    step = limits.PANEL_SIZE_STEP
    width, height = (max(step, math.floor(side * native / SDXL_SIDE / step + 0.5) * step) for side in size)
    return width, height


def size_presets(native: int) -> tuple[tuple[int, int], ...]:
    """The size presets of a model trained at ``native`` pixels a side (its base's, see
    ``engine.models.native_side``): SDXL's trained sizes scaled to that side
    (:func:`scaled_size`), those rounding onto an earlier one left out. SDXL's own at 1024;
    SD 1.5's and SD 2 base's about a quarter megapixel (512 x 512, 640 x 448...); SD 2.1-768's
    (768 x 768, 1024 x 576...)."""
    sizes: list[tuple[int, int]] = []
    for size in map(scaled_size, SDXL_SIZES, [native] * len(SDXL_SIZES)):
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def is_panorama_size(size: tuple[int, int] | None) -> bool:
    """Whether a panel size is one of the panorama presets' shapes (4:1 or 3:1) at any height."""
    return size is not None and any(size[0] == ratio * size[1] for ratio in PANORAMA_RATIOS)


def panorama_sizes(height: int) -> tuple[tuple[int, int], ...]:
    """The panorama presets at ``height`` (the model's native height: one row of windows):
    (ratio x height, height) for each ratio, those that fit a panel's limits."""
    sizes = []
    for ratio in PANORAMA_RATIOS:
        try:
            sizes.append(limits.check_panel_size((ratio * height, height)))
        except ValueError:
            continue
    return tuple(sizes)


_CONTROL_MODEL_FIELDS = ("controlnet_canny", "controlnet_depth", "depth_model")

GUIDANCE_GENERATED = 5.0
"""The authors' guidance for prompts-only and ControlNet sets (spec section 9)."""
GUIDANCE_PICTURE = 10.0
"""The authors' guidance for sets whose reference is an inverted picture (spec section 7.5)."""
DEFAULTS_TOLERANCE = 1e-3
"""Values this close to a default count as the default (spin boxes round to 3 decimals)."""


def source_defaults(picture: bool) -> tuple[float, StyleAlignedSettings]:
    """The authors' guidance and StyleAligned settings for a kind of style source.

    A reference picture: guidance 10, shift ln 2, shared GroupNorm (spec section 7.5);
    a generated reference: guidance 5 and the plain defaults.
    """
    if picture:
        return GUIDANCE_PICTURE, StyleAlignedSettings.for_reference_image()
    return GUIDANCE_GENERATED, StyleAlignedSettings()


def _nearly_equal(a: StyleAlignedSettings, b: StyleAlignedSettings) -> bool:
    """Equal flags and words (``character_layers``: "up"), and numbers equal within
    :data:`DEFAULTS_TOLERANCE`."""
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, bool | str) or isinstance(y, bool | str):
            if x != y:
                return False
        elif not math.isclose(x, y, abs_tol=DEFAULTS_TOLERANCE):
            return False
    return True


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling and StyleAligned settings of a session (the GUI's Settings and Advanced parts).

    ``model`` is a model source (hub id, local folder, .safetensors file or ``tiny``); empty
    means "the app's configured model". ``negative_prompt`` empty means none. ``micro_batch``
    None lets the engine choose. ``inversion_guidance`` / ``inversion_offset`` apply to
    reference pictures (spec section 7; offset None: the authors' 5 of 50 steps, scaled).
    ``controlnet_canny`` / ``controlnet_depth`` / ``depth_model`` are model sources (hub id or
    folder) for panel controls; empty means the engine's default for the model.
    ``memory`` is the memory mode (``auto``, ``fast``, ``balanced``, ``low``), ``vae`` a VAE
    source (empty: the model's own), ``loras`` the LoRA files with their weights, ``previews``
    the live preview decoder (``auto``, ``factors``, ``tiny``, ``vae``, ``off``; never a pixel
    of a picture).

    ``guidance`` and ``style_aligned`` start at the authors' defaults for a generated
    reference; :meth:`for_source` moves them to a reference picture's (spec section 7.5).
    """

    model: str = ""
    steps: int = 50
    guidance: float = GUIDANCE_GENERATED
    width: int = 1024
    height: int = 1024
    scheduler: str = "ddim"
    negative_prompt: str = ""
    micro_batch: int | None = None
    inversion_guidance: float = 2.0
    inversion_offset: int | None = None
    style_aligned: StyleAlignedSettings = field(default_factory=StyleAlignedSettings)
    controlnet_canny: str = ""
    controlnet_depth: str = ""
    depth_model: str = ""
    memory: str = "auto"
    vae: str = ""
    loras: tuple[Lora, ...] = ()
    previews: str = "auto"

    def __post_init__(self) -> None:
        for name in ("model", "scheduler", "negative_prompt", "vae", *_CONTROL_MODEL_FIELDS):
            check_text(getattr(self, name), name)
        for name in ("steps", "width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SessionError(f"{name} must be a whole number, got {value!r}")
        object.__setattr__(self, "guidance", check_number(self.guidance, "guidance"))
        object.__setattr__(
            self, "inversion_guidance", check_number(self.inversion_guidance, "inversion guidance",
                                                     0.0, limits.MAX_GUIDANCE)
        )
        try:
            self.sampling()
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if self.micro_batch is not None and (
            isinstance(self.micro_batch, bool) or not isinstance(self.micro_batch, int)
            or self.micro_batch < 1
        ):
            raise SessionError(f"micro-batch must be a whole number >= 1, got {self.micro_batch!r}")
        if self.inversion_offset is not None and (
            isinstance(self.inversion_offset, bool) or not isinstance(self.inversion_offset, int)
            or not 0 <= self.inversion_offset < self.steps
        ):
            raise SessionError(
                f"inversion offset must be from 0 to steps - 1 ({self.steps - 1}), "
                f"got {self.inversion_offset}"
            )
        if not isinstance(self.style_aligned, StyleAlignedSettings):
            raise SessionError("style_aligned must be a StyleAlignedSettings")
        if self.memory not in MEMORY_MODES:
            raise SessionError(f"memory mode must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}")
        if self.previews not in PREVIEW_KINDS:
            raise SessionError(f"previews must be one of {', '.join(PREVIEW_KINDS)}, got {self.previews!r}")
        object.__setattr__(self, "loras", tuple(self.loras))
        if not all(isinstance(lora, Lora) for lora in self.loras):
            raise SessionError("loras must be LoRA choices (file and weight)")

    def sampling(self) -> Sampling:
        """The engine's :class:`Sampling` for these settings."""
        return Sampling(
            steps=self.steps,
            guidance=self.guidance,
            width=self.width,
            height=self.height,
            scheduler=self.scheduler,
            negative_prompt=self.negative_prompt.strip() or None,
        )

    def replace(self, **changes: Any) -> GenerationSettings:
        return replace(self, **changes)

    def for_source(self, picture: bool) -> GenerationSettings:
        """These settings for a new kind of style source (``picture``: a reference picture,
        else a generated reference).

        ``guidance`` and ``style_aligned`` still at the authors' defaults for the other kind
        of source become the new kind's (:func:`source_defaults`); values the user changed
        stay. The comparison allows the rounding of the GUI's spin boxes (shift 0.693 is ln 2).
        """
        old_guidance, old_style_aligned = source_defaults(not picture)
        new_guidance, new_style_aligned = source_defaults(picture)
        changes: dict[str, Any] = {}
        if math.isclose(self.guidance, old_guidance, abs_tol=DEFAULTS_TOLERANCE):
            changes["guidance"] = new_guidance
        if _nearly_equal(self.style_aligned, old_style_aligned):
            changes["style_aligned"] = new_style_aligned
        return replace(self, **changes)

    def control_models(self) -> dict[str, str | None]:
        """``controlnet_canny``, ``controlnet_depth``, ``depth_model`` for ``SetRequest``
        (None where empty: the engine's default)."""
        return {name: getattr(self, name).strip() or None for name in _CONTROL_MODEL_FIELDS}

    def engine_choices(self) -> dict[str, Any]:
        """The models, memory mode and previews for ``SetRequest``: control models, VAE, LoRAs,
        memory, previews."""
        return dict(self.control_models(), vae=self.vae.strip() or None, loras=self.loras, memory=self.memory,
                    previews=self.previews)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        # the character knobs are the Characters list's own (``CharacterSettings``), one copy
        data["style_aligned"] = {k: v for k, v in self.style_aligned.to_dict().items()
                                 if k not in CHARACTER_KNOBS}
        data["loras"] = [{"path": lora.path, "weight": lora.weight} for lora in self.loras]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> GenerationSettings:
        r = Reader(data, where)
        d = cls()
        sa = r.obj("style_aligned", {})
        try:
            style_aligned = StyleAlignedSettings.from_dict(
                {k: v for k, v in dict(sa).items() if k not in CHARACTER_KNOBS})
        except (TypeError, ValueError) as exc:
            raise SessionError(f"{where}.style_aligned: {exc}") from None
        value = cls(
            model=r.text("model", d.model),
            steps=r.integer("steps", d.steps),
            guidance=r.number("guidance", d.guidance),
            width=r.integer("width", d.width),
            height=r.integer("height", d.height),
            scheduler=r.text("scheduler", d.scheduler),
            negative_prompt=r.text("negative_prompt", d.negative_prompt),
            micro_batch=r.opt_integer("micro_batch"),
            inversion_guidance=r.number("inversion_guidance", d.inversion_guidance),
            inversion_offset=r.opt_integer("inversion_offset"),
            style_aligned=style_aligned,
            # absent in sessions saved before they existed: the engine's defaults
            controlnet_canny=r.text("controlnet_canny"),
            controlnet_depth=r.text("controlnet_depth"),
            depth_model=r.text("depth_model"),
            memory=r.text("memory", d.memory),
            vae=r.text("vae"),
            loras=tuple(_read_lora(item, f"{where}.loras[{i}]") for i, item in enumerate(r.items("loras"))),
            previews=r.text("previews", d.previews),
        )
        r.done()
        return value


def _read_lora(data: Any, where: str) -> Lora:
    r = Reader(data, where)
    path, weight = r.text("path", required=True), r.number("weight", 1.0)
    r.done()
    try:
        return Lora(path, weight)
    except ValueError as exc:
        raise SessionError(f"{where}: {exc}") from None
