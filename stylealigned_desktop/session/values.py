"""The plain value types of a session: immutable dataclasses with validation and JSON round trips.

They are frozen on purpose: the GUI reads them freely, and every change goes through a
:class:`~stylealigned_desktop.session.model.Session` method, which notifies observers.
``to_dict()`` gives JSON-ready data; ``from_dict(data, where)`` checks types and names the
offending field (``where`` is a path like ``"panels[2].control"``) in its :class:`SessionError`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..engine import limits
from ..engine.request import (
    CONTROL_MODES,
    CONTROLNET_KINDS,
    MEMORY_MODES,
    SCHEDULERS,
    Lora,
    Sampling,
)
from ..engine.settings import StyleAlignedSettings
from .errors import SessionError

MAX_SEED = 2**31 - 1
"""Seeds the app draws lie in [0, MAX_SEED], so they fit a Qt spin box (int32)."""
SEED_LIMIT = limits.SEED_LIMIT
"""The largest seed accepted (torch.Generator.manual_seed's limit)."""


@contextmanager
def _as_session_error() -> Iterator[None]:
    """The engine request's checks (``engine/request.py``, shared with the CLI) raise
    ValueError; the session's callers expect :class:`SessionError`."""
    try:
        yield
    except SessionError:
        raise
    except ValueError as exc:
        raise SessionError(str(exc)) from None

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


# --- field readers ---------------------------------------------------------------------------


class Reader:
    """Reads fields of one JSON object, raising a :class:`SessionError` that names the field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise SessionError(f"{where} must be an object, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise SessionError(f"{self.where}.{key} is missing")
            return default
        return self.data[key]

    def _bad(self, key: str, expected: str, value: Any) -> SessionError:
        return SessionError(f"{self.where}.{key} must be {expected}, got {value!r}")

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as stored (the caller checks it)."""
        return self._get(key, default, False)

    def text(self, key: str, default: str = "", required: bool = False) -> str:
        value = self._get(key, default, required)
        if not isinstance(value, str):
            raise self._bad(key, "text", value)
        return check_text(value, f"{self.where}.{key}")

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, None, False)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "text or null", value)
        return value if value is None else check_text(value, f"{self.where}.{key}")

    def integer(self, key: str, default: int = 0, required: bool = False) -> int:
        value = self._get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "a whole number", value)
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, None, False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._bad(key, "a whole number or null", value)
        return value

    def number(self, key: str, default: float = 0.0, required: bool = False) -> float:
        value = self._get(key, default, required)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(key, "a number", value)
        return float(value)

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, None, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(key, "a number or null", value)
        return float(value)

    def flag(self, key: str, default: bool = False, required: bool = False) -> bool:
        value = self._get(key, default, required)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key, [], False)
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value

    def obj(self, key: str, default: Any = None) -> Any:
        value = self._get(key, default, False)
        if value is not None and not isinstance(value, Mapping):
            raise self._bad(key, "an object", value)
        return value

    def done(self) -> None:
        """Refuse keys this version does not know (a typo in a hand-edited file, say)."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise SessionError(f"{self.where} has unknown field(s): {', '.join(unknown)}")


def check_relative_path(value: str, where: str) -> str:
    """A path stored in session.json: relative, '/'-separated, inside the session folder."""
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or ":" in parts[0] or ".." in parts:
        raise SessionError(f"{where} must be a path inside the session folder, got {value!r}")
    return value


def check_text(value: Any, where: str, limit: int | None = None) -> str:
    """Text that can be saved (no lone surrogates), at most ``limit`` characters."""
    with _as_session_error():
        return limits.check_text(value, where, limit)


def check_number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite int or float (not a bool) from ``low`` to ``high``, as float."""
    with _as_session_error():
        return limits.check_number(value, where, low, high)


def check_seed(seed: Any, where: str = "seed") -> int:
    with _as_session_error():
        return limits.check_seed(seed, where)


def new_panel_id() -> str:
    """A fresh panel id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


# --- value types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """A panel's control picture and how strongly it steers the panel (spec section 8).

    ``image`` is the session-relative path of the copy (``controls/<hash>.png``) or None; the
    other fields are kept when the picture is removed, so choosing a new one keeps the mode.
    ``scale`` is the ControlNet conditioning scale ("strength" in the GUI). ``map_kind`` says
    which ControlNet a ready-made map (mode ``map``) feeds: ``depth`` or ``canny`` (edges); it
    is kept, unused, in the other modes.
    """

    image: str | None = None
    mode: str = "canny"
    scale: float = 0.8
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    canny_low: int = 100
    canny_high: int = 200
    map_kind: str = "depth"

    def __post_init__(self) -> None:
        if self.image is not None:
            check_relative_path(self.image, "control picture")
        if self.mode not in CONTROL_MODES:
            raise SessionError(
                f"control mode must be one of {', '.join(CONTROL_MODES)}, got {self.mode!r}"
            )
        if self.map_kind not in CONTROLNET_KINDS:
            raise SessionError(
                f"a ready-made control map is one of {', '.join(CONTROLNET_KINDS)}, "
                f"got {self.map_kind!r}"
            )
        with _as_session_error():
            scale, start, end = limits.check_control(
                self.scale, self.guidance_start, self.guidance_end, self.canny_low, self.canny_high)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "guidance_start", start)
        object.__setattr__(self, "guidance_end", end)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "control") -> Control:
        r = Reader(data, where)
        d = cls()
        value = cls(
            image=_opt_path(r, "image"),
            mode=r.text("mode", d.mode),
            scale=r.number("scale", d.scale),
            guidance_start=r.number("guidance_start", d.guidance_start),
            guidance_end=r.number("guidance_end", d.guidance_end),
            canny_low=r.integer("canny_low", d.canny_low),
            canny_high=r.integer("canny_high", d.canny_high),
            map_kind=r.text("map_kind", d.map_kind),  # absent in sessions saved before it existed
        )
        r.done()
        return value


def _opt_path(r: Reader, key: str) -> str | None:
    value = r.opt_text(key)
    return None if value is None else check_relative_path(value, f"{r.where}.{key}")


@dataclass(frozen=True)
class Panel:
    """One picture of the storyboard: its prompt (without the style text), seed and control.

    ``id`` is stable for the panel's life (reorders keep it), so results of a run that finishes
    after the user reordered still land on the right panel. ``seed_locked`` False means
    Generate draws a new seed for the panel each time. ``size`` is the panel's own (width,
    height), multiples of 64 (spec section 12); None: the session's size.
    """

    id: str
    prompt: str = ""
    seed: int = 0
    seed_locked: bool = False
    control: Control = field(default_factory=Control)
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SessionError(f"panel id must be non-empty text, got {self.id!r}")
        check_text(self.prompt, "panel prompt", limits.MAX_PROMPT_CHARS)
        check_seed(self.seed, "panel seed")
        if not isinstance(self.seed_locked, bool):
            raise SessionError("panel seed_locked must be true or false")
        try:
            object.__setattr__(self, "size", limits.check_panel_size(self.size))
        except ValueError as exc:
            raise SessionError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "seed": self.seed,
            "seed_locked": self.seed_locked,
            "control": self.control.to_dict(),
            "size": None if self.size is None else list(self.size),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "panel") -> Panel:
        r = Reader(data, where)
        control = r.obj("control")
        value = cls(
            id=r.text("id", required=True),
            prompt=r.text("prompt"),
            seed=check_seed(r.integer("seed"), f"{where}.seed"),
            seed_locked=r.flag("seed_locked"),
            control=Control() if control is None else Control.from_dict(control, f"{where}.control"),
            size=opt_size(r, "size"),  # absent in sessions saved before panels had sizes
        )
        r.done()
        return value


def opt_size(r: Reader, key: str) -> tuple[int, int] | None:
    value = r.raw(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise SessionError(f"{r.where}.{key} must be [width, height] or null, got {value!r}")
    try:
        return limits.check_panel_size(value)
    except ValueError as exc:
        raise SessionError(f"{r.where}.{key}: {exc}") from None


@dataclass(frozen=True)
class Reference:
    """A style picture in the gallery: a copy inside the session folder.

    ``id`` is the content hash (also the copy's file stem); ``file`` the session-relative path;
    ``name`` the original file name, for display; ``caption`` describes the picture's content
    (used when inverting it, spec section 7).
    """

    id: str
    file: str
    name: str = ""
    caption: str = ""
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        check_relative_path(self.file, "reference file")
        for name in ("id", "name", "caption"):
            check_text(getattr(self, name), f"reference {name}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "reference") -> Reference:
        r = Reader(data, where)
        value = cls(
            id=r.text("id", required=True),
            file=check_relative_path(r.text("file", required=True), f"{where}.file"),
            name=r.text("name"),
            caption=r.text("caption"),
            width=r.integer("width"),
            height=r.integer("height"),
        )
        r.done()
        return value


@dataclass(frozen=True)
class StyleReference:
    """One reference the style comes from: a gallery picture (its id) or, with ``picture``
    None, the generated reference; ``weight`` is its share of the style (spec section 11;
    normalised over the active references when a run is planned; 0 keeps it on the board
    without using it)."""

    picture: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.picture is not None:
            check_text(self.picture, "reference picture id")
        try:
            object.__setattr__(self, "weight", limits.check_weight(self.weight))
        except ValueError as exc:
            raise SessionError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {"picture": self.picture, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> StyleReference:
        r = Reader(data, where)
        value = cls(picture=r.opt_text("picture"), weight=r.number("weight", 1.0))
        r.done()
        return value


GENERATED = StyleReference()
"""The generated reference alone, at weight 1: a new session's style source."""


@dataclass(frozen=True)
class Style:
    """Where the set's style comes from.

    ``text`` is appended to every prompt. ``sources`` are the active references, in order
    (at least one, no two alike): gallery pictures by id, and the generated reference
    (``picture`` None) whose prompt is ``reference_prompt`` + ", " + ``text`` and whose seed is
    ``reference_seed`` (kept across Generates while ``reference_seed_locked``). ``preset``
    names the preset last applied (display only).
    """

    text: str = ""
    reference_prompt: str = ""
    reference_seed: int = 0
    reference_seed_locked: bool = True
    sources: tuple[StyleReference, ...] = (GENERATED,)
    preset: str | None = None

    def __post_init__(self) -> None:
        check_seed(self.reference_seed, "reference seed")
        for name in ("text", "reference_prompt"):
            check_text(getattr(self, name), f"style {name}", limits.MAX_PROMPT_CHARS)
        if self.preset is not None:
            check_text(self.preset, "style preset")
        if not isinstance(self.reference_seed_locked, bool):
            raise SessionError("reference_seed_locked must be true or false")
        sources = tuple(self.sources)
        if not sources or not all(isinstance(x, StyleReference) for x in sources):
            raise SessionError("the style needs at least one reference")
        if len({x.picture for x in sources}) != len(sources):
            raise SessionError("a reference is listed twice among the style's sources")
        if not sum(x.weight for x in sources) > 0:
            raise SessionError("at least one active reference needs a weight above 0")
        object.__setattr__(self, "sources", sources)

    @property
    def active_reference(self) -> str | None:
        """The gallery picture's id when the style comes from that one picture alone, else None."""
        if len(self.sources) == 1:
            return self.sources[0].picture
        return None

    @property
    def uses_picture(self) -> bool:
        """Whether a gallery picture is among the sources (the authors' picture defaults apply)."""
        return any(x.picture is not None for x in self.sources)

    @property
    def uses_generated(self) -> bool:
        return any(x.picture is None for x in self.sources)

    def weight_of(self, picture: str | None) -> float | None:
        """The weight of a source (a picture id, None: the generated reference); None if inactive."""
        return next((x.weight for x in self.sources if x.picture == picture), None)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sources"] = [x.to_dict() for x in self.sources]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "style") -> Style:
        r = Reader(data, where)
        sources = tuple(StyleReference.from_dict(x, f"{where}.sources[{i}]")
                        for i, x in enumerate(r.items("sources")))
        value = cls(
            text=r.text("text"),
            reference_prompt=r.text("reference_prompt"),
            reference_seed=check_seed(r.integer("reference_seed"), f"{where}.reference_seed"),
            reference_seed_locked=r.flag("reference_seed_locked", True),
            sources=sources or (GENERATED,),
            preset=r.opt_text("preset"),
        )
        r.done()
        return value


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
    """Equal flags, and numbers equal within :data:`DEFAULTS_TOLERANCE`."""
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, bool) or isinstance(y, bool):
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
    source (empty: the model's own), ``loras`` the LoRA files with their weights.

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

    def with_picture_parameters(self, parameters: Any) -> GenerationSettings:
        """These settings with those a generated picture records (its ``stylealigned`` PNG
        chunk, ``engine.runfolder.read_parameters``): steps, guidance, size, sampler, negative
        prompt, the StyleAligned settings and, from a reference-picture run, the inversion
        settings. The model, micro-batch and control models stay: they name things on this
        computer. Raises SessionError for what the session refuses."""
        if not isinstance(parameters, dict):
            raise SessionError("the picture's settings are not a JSON object")
        changes: dict[str, Any] = {k: parameters[k] for k in ("steps", "guidance", "width", "height", "scheduler")
                                   if k in parameters}
        if "negative_prompt" in parameters:
            changes["negative_prompt"] = parameters["negative_prompt"] or ""
        if "inversion_guidance" in parameters:
            changes["inversion_guidance"] = parameters["inversion_guidance"]
            changes["inversion_offset"] = parameters.get("inversion_offset")
        try:
            if "stylealigned" in parameters:
                changes["style_aligned"] = StyleAlignedSettings.from_dict(dict(parameters["stylealigned"]))
            return replace(self, **changes)
        except SessionError:
            raise
        except (TypeError, ValueError) as exc:
            raise SessionError(f"the picture's settings cannot be used: {exc}") from None

    def control_models(self) -> dict[str, str | None]:
        """``controlnet_canny``, ``controlnet_depth``, ``depth_model`` for ``SetRequest``
        (None where empty: the engine's default)."""
        return {name: getattr(self, name).strip() or None for name in _CONTROL_MODEL_FIELDS}

    def engine_choices(self) -> dict[str, Any]:
        """The models and memory mode for ``SetRequest``: control models, VAE, LoRAs, memory."""
        return dict(self.control_models(), vae=self.vae.strip() or None, loras=self.loras, memory=self.memory)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["style_aligned"] = self.style_aligned.to_dict()
        data["loras"] = [{"path": lora.path, "weight": lora.weight} for lora in self.loras]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> GenerationSettings:
        r = Reader(data, where)
        d = cls()
        sa = r.obj("style_aligned", {})
        try:
            style_aligned = StyleAlignedSettings.from_dict(dict(sa))
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


__all__ = [
    "MAX_SEED",
    "SCHEDULERS",
    "CONTROL_MODES",
    "SDXL_SIZES",
    "Control",
    "GenerationSettings",
    "Panel",
    "Reader",
    "Reference",
    "Style",
    "StyleReference",
    "check_relative_path",
    "check_seed",
    "source_defaults",
]
