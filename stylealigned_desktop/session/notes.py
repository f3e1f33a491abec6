"""Panel notes: what a storyboard artist writes beside each picture (scene and shot numbers,
action, dialogue, notes, camera / framing, duration), the set's default duration, and the
numbering and timing the deliverables (PDF, animatic, timeline) share.

Scene and shot numbers are automatic unless the artist sets them: a panel without a scene
number is in the scene of the panel before it (the first panel: scene 1); a panel without a
shot number is the next shot of its scene (shot 1 when its scene starts). So setting scene 2
on panel 5 renumbers what follows (scene 2, shots 1, 2, ...) without touching it.
A panel without a duration is held for the set's default duration.

The session's edits of them are in ``notes_edits.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from .errors import SessionError
from .json_fields import Reader, check_text

CAMERA_PRESETS = (
    "establishing", "wide", "full", "medium", "medium close-up", "close-up", "extreme close-up",
    "over-the-shoulder", "two-shot", "point of view", "insert", "low angle", "high angle",
)
"""Camera / framing suggestions (the field is free text)."""

DEFAULT_DURATION = 2.0
"""Seconds a panel is held when neither it nor the set says otherwise (Storyboarder's default)."""
MIN_DURATION = 0.1
MAX_DURATION = 600.0
MAX_NUMBER = 9999
MAX_NOTE_CHARS = 10_000

_TEXT_FIELDS = ("action", "dialogue", "notes", "camera")


def check_duration(value: Any, where: str = "duration") -> float:
    """Seconds from :data:`MIN_DURATION` to :data:`MAX_DURATION` (SessionError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not MIN_DURATION <= value <= MAX_DURATION:
        raise SessionError(f"{where} must be {MIN_DURATION} to {MAX_DURATION:g} seconds, got {value!r}")
    return float(value)


def check_number(value: Any, where: str) -> int | None:
    """A scene or shot number: a whole number from 1 to :data:`MAX_NUMBER`, or None (automatic)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUMBER:
        raise SessionError(f"{where} must be a whole number from 1 to {MAX_NUMBER} (or automatic), got {value!r}")
    return value


@dataclass(frozen=True)
class PanelNotes:
    """A panel's notes. ``scene`` / ``shot`` None: numbered automatically; ``duration`` None:
    the set's default."""

    scene: int | None = None
    shot: int | None = None
    action: str = ""
    dialogue: str = ""
    notes: str = ""
    camera: str = ""
    duration: float | None = None

    def __post_init__(self) -> None:
        check_number(self.scene, "scene number")
        check_number(self.shot, "shot number")
        for name in _TEXT_FIELDS:
            check_text(getattr(self, name), f"panel {name}", MAX_NOTE_CHARS)
        if self.duration is not None:
            object.__setattr__(self, "duration", check_duration(self.duration, "panel duration"))

    @property
    def empty(self) -> bool:
        return self == PanelNotes()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "notes") -> PanelNotes:
        r = Reader(data, where)
        try:
            value = cls(
                scene=r.opt_integer("scene"), shot=r.opt_integer("shot"),
                **{name: r.text(name) for name in _TEXT_FIELDS},
                duration=r.opt_number("duration"),
            )
        except SessionError as exc:
            raise SessionError(f"{where}: {exc}") from None
        r.done()
        return value


@dataclass(frozen=True)
class BoardSettings:
    """The set's deliverable settings: ``default_duration`` (seconds) for panels without one."""

    default_duration: float = DEFAULT_DURATION

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_duration",
                           check_duration(self.default_duration, "default duration"))

    def to_dict(self) -> dict[str, Any]:
        return {"default_duration": self.default_duration}

    @classmethod
    def from_dict(cls, data: Any, where: str = "board") -> BoardSettings:
        r = Reader(data, where)
        try:
            value = cls(default_duration=r.number("default_duration", DEFAULT_DURATION))
        except SessionError as exc:
            raise SessionError(f"{where}: {exc}") from None
        r.done()
        return value


@dataclass(frozen=True)
class PanelNumber:
    """Where a panel stands in the storyboard: scene, shot and panel number (all 1-based)."""

    scene: int
    shot: int
    panel: int

    @property
    def label(self) -> str:
        """``"1-2 · 3"``: scene-shot, then the panel number (as on a printed board)."""
        return f"{self.scene}-{self.shot} · {self.panel}"


def number_panels(notes: Sequence[PanelNotes]) -> list[PanelNumber]:
    """Each panel's scene, shot and panel number (the rules in the module docstring)."""
    numbers: list[PanelNumber] = []
    scene, shot = 1, 0
    for index, note in enumerate(notes):
        if note.scene is not None and note.scene != scene:
            scene, shot = note.scene, 0
        shot = note.shot if note.shot is not None else shot + 1
        numbers.append(PanelNumber(scene, shot, index + 1))
    return numbers


def durations(notes: Sequence[PanelNotes], default: float = DEFAULT_DURATION) -> list[float]:
    """Each panel's duration in seconds (its own, else ``default``)."""
    return [default if n.duration is None else n.duration for n in notes]
