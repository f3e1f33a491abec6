"""The storyboard's value types: panels with their control pictures, gallery pictures and the
style's sources. Immutable dataclasses with validation and JSON round trips.

They are frozen on purpose: the GUI reads them freely, and every change goes through a
:class:`~stylealigned_desktop.session.model.Session` method, which notifies observers.
``to_dict()`` gives JSON-ready data; ``from_dict(data, where)`` checks types and names the
offending field (``where`` is a path like ``"panels[2].control"``) in its :class:`SessionError`
(the readers and checks are in ``json_fields.py``; the generation settings in ``generation.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from ..engine import limits
from ..engine.request import CONTROL_MODES, CONTROLNET_KINDS
from .errors import SessionError
from .json_fields import (
    Reader,
    as_session_error,
    check_relative_path,
    check_seed,
    check_text,
    opt_path,
    opt_size,
)
from .notes import PanelNotes


def new_panel_id() -> str:
    """A fresh panel id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


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
        with as_session_error():
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
            image=opt_path(r, "image"),
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



PANEL_SIZE_MODES = (None, "panorama")
"""How a panel's own size was chosen: any size (None), or a panorama preset."""


@dataclass(frozen=True)
class Panel:
    """One picture of the storyboard: its prompt (without the style text), seed and control.

    ``id`` is stable for the panel's life (reorders keep it), so results of a run that finishes
    after the user reordered still land on the right panel. ``seed_locked`` False means
    Generate draws a new seed for the panel each time. ``size`` is the panel's own (width,
    height), multiples of 64 (spec section 12); None: the session's size. ``size_mode``
    "panorama": the size was chosen as a panorama preset (``generation.panorama_sizes``), drawn
    as MultiDiffusion windows (spec section 14); None: any other size. ``notes`` are the
    artist's scene / shot numbers, action, dialogue, camera and duration (``notes.py``).
    """

    id: str
    prompt: str = ""
    seed: int = 0
    seed_locked: bool = False
    control: Control = field(default_factory=Control)
    size: tuple[int, int] | None = None
    notes: PanelNotes = field(default_factory=PanelNotes)
    size_mode: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.notes, PanelNotes):
            raise SessionError("panel notes must be PanelNotes")
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
        if self.size_mode not in PANEL_SIZE_MODES:
            raise SessionError(f"panel size mode must be 'panorama' or none, got {self.size_mode!r}")
        if self.size_mode is not None and self.size is None:
            raise SessionError("a panorama panel needs its own size")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "seed": self.seed,
            "seed_locked": self.seed_locked,
            "control": self.control.to_dict(),
            "size": None if self.size is None else list(self.size),
            "size_mode": self.size_mode,
            "notes": self.notes.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "panel") -> Panel:
        r = Reader(data, where)
        control, notes = r.obj("control"), r.obj("notes")
        value = cls(
            id=r.text("id", required=True),
            prompt=r.text("prompt"),
            seed=check_seed(r.integer("seed"), f"{where}.seed"),
            seed_locked=r.flag("seed_locked"),
            control=Control() if control is None else Control.from_dict(control, f"{where}.control"),
            size=opt_size(r, "size"),  # absent in sessions saved before panels had sizes
            notes=PanelNotes() if notes is None else PanelNotes.from_dict(notes, f"{where}.notes"),
            size_mode=r.opt_text("size_mode"),  # absent in sessions saved before panoramas
        )
        r.done()
        return value



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
