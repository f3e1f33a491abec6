"""Style presets: a style text with the negative prompt and settings that suit it.

Built-in presets ship as JSON in ``resources/styles/``; user presets live in
``paths.config_dir()/styles/``. One file per preset::

    {
      "format": "stylealigned-style", "version": 1,
      "name": "Minimal origami",
      "description": "Folded paper, few creases, plain background.",
      "style_text": "minimal origami.",
      "negative_prompt": "",
      "sampling": {"steps": 50, "guidance": 5.0, "width": 1024, "height": 1024},
      "style_aligned": {"shared_score_shift": 0.0}
    }

``sampling`` may name any of steps, guidance, width, height, scheduler; ``style_aligned`` any
StyleAlignedSettings fields (the rest keep their defaults). :func:`load_presets` reads all of
them and reports each broken user file by name without failing the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths, userfiles
from ..engine.settings import StyleAlignedSettings
from .atomic import write_json_atomic
from .errors import SessionError
from .generation import GenerationSettings
from .json_fields import Reader

FORMAT = "stylealigned-style"
VERSION = 1
SAMPLING_KEYS = ("steps", "guidance", "width", "height", "scheduler")
BUILT_IN = "built-in"
USER = "user"
MAX_FILE_BYTES = userfiles.MIB
"""A preset is a few lines of text; a larger file is none."""


@dataclass(frozen=True)
class StylePreset:
    """A named style: text appended to prompts, negative prompt, suggested settings.

    ``source`` is "built-in" or "user"; ``path`` the JSON file it came from (None if unsaved).
    """

    name: str
    style_text: str
    negative_prompt: str = ""
    description: str = ""
    sampling: Mapping[str, Any] = field(default_factory=dict)
    style_aligned: Mapping[str, Any] = field(default_factory=dict)
    source: str = USER
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SessionError("a style preset needs a name")
        if not isinstance(self.style_text, str):
            raise SessionError(f"style preset {self.name!r}: style_text must be text")
        unknown = sorted(set(self.sampling) - set(SAMPLING_KEYS))
        if unknown:
            raise SessionError(
                f"style preset {self.name!r}: unknown sampling field(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(SAMPLING_KEYS)})"
            )
        try:
            self.apply_to(GenerationSettings())
        except SessionError as exc:
            raise SessionError(f"style preset {self.name!r}: {exc}") from None

    @property
    def key(self) -> str:
        """A unique id: ``built-in/<file stem>`` or ``user/<file stem>``."""
        stem = self.path.stem if self.path is not None else slugify(self.name)
        return f"{self.source}/{stem}"

    def style_aligned_settings(self) -> StyleAlignedSettings:
        """The preset's StyleAligned settings (fields it does not name keep their defaults)."""
        try:
            return StyleAlignedSettings.from_dict(dict(self.style_aligned))
        except (TypeError, ValueError) as exc:
            raise SessionError(f"style_aligned: {exc}") from None

    def apply_to(
        self, settings: GenerationSettings, sampling: bool = True, style_aligned: bool = True
    ) -> GenerationSettings:
        """``settings`` with this preset's negative prompt and suggested settings."""
        changes: dict[str, Any] = {"negative_prompt": self.negative_prompt}
        if sampling:
            changes.update(self.sampling)
            if "guidance" in changes and isinstance(changes["guidance"], int):
                changes["guidance"] = float(changes["guidance"])
        if style_aligned:
            changes["style_aligned"] = self.style_aligned_settings()
        return settings.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "style_text": self.style_text,
            "negative_prompt": self.negative_prompt,
            "sampling": dict(self.sampling),
            "style_aligned": dict(self.style_aligned),
        }

    @classmethod
    def from_dict(
        cls, data: Any, source: str = USER, path: Path | None = None, where: str = "preset"
    ) -> StylePreset:
        r = Reader(data, where)
        fmt = r.text("format", FORMAT)
        if fmt != FORMAT:
            raise SessionError(f"{where}: not a style preset (format {fmt!r})")
        version = r.integer("version", VERSION)
        if version > VERSION:
            raise SessionError(f"{where}: written by a newer version of the app (version {version})")
        value = cls(
            name=r.text("name", required=True),
            style_text=r.text("style_text", required=True),
            negative_prompt=r.text("negative_prompt"),
            description=r.text("description"),
            sampling=dict(r.obj("sampling", {})),
            style_aligned=dict(r.obj("style_aligned", {})),
            source=source,
            path=path,
        )
        r.done()
        return value


@dataclass(frozen=True)
class PresetProblem:
    """A preset file that could not be used: ``name`` is the preset's name, or the file stem."""

    path: Path
    name: str
    message: str

    def __str__(self) -> str:
        return f"Style preset {self.name!r} ({self.path.name}): {self.message}"


@dataclass
class PresetLibrary:
    """Built-in presets first (in file-name order), then the user's; plus what failed to load."""

    presets: list[StylePreset]
    problems: list[PresetProblem]

    def names(self) -> list[str]:
        return [p.name for p in self.presets]

    def get(self, name_or_key: str) -> StylePreset | None:
        """The preset with this key, else the last one with this name (user beats built-in)."""
        for preset in self.presets:
            if preset.key == name_or_key:
                return preset
        found = [p for p in self.presets if p.name == name_or_key]
        return found[-1] if found else None


def builtin_presets_dir() -> Path:
    return paths.resource("styles")


def user_presets_dir() -> Path:
    folder = paths.config_dir() / "styles"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def slugify(name: str) -> str:
    """A file-system-safe stem for a preset name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "style"


def load_preset_file(path: str | Path, source: str = USER) -> StylePreset:
    """Read one preset file; a :class:`SessionError` names the file and the problem."""
    path = Path(path)
    try:
        data = userfiles.read_json(path, MAX_FILE_BYTES, within=path.parent)
    except userfiles.UnreadableFile as exc:
        raise SessionError(str(exc)) from None
    return StylePreset.from_dict(data, source=source, path=path, where=path.name)


def _load_folder(folder: Path, source: str) -> tuple[list[StylePreset], list[PresetProblem]]:
    presets: list[StylePreset] = []
    problems: list[PresetProblem] = []
    if not folder.is_dir():
        return presets, problems
    for path in sorted(folder.glob("*.json")):
        try:
            presets.append(load_preset_file(path, source))
        except SessionError as exc:
            problems.append(PresetProblem(path, _name_in(path), str(exc)))
    return presets, problems


def _name_in(path: Path) -> str:
    """The name a broken preset file gives itself, if it can be read at all; else its stem."""
    try:
        data = userfiles.read_json(path, MAX_FILE_BYTES, within=path.parent)
    except userfiles.UnreadableFile:
        return path.stem
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() else path.stem


def load_presets() -> PresetLibrary:
    """All presets: built-in ones, then the user's. Broken files are listed in ``problems``."""
    builtin, problems = _load_folder(builtin_presets_dir(), BUILT_IN)
    user, user_problems = _load_folder(user_presets_dir(), USER)
    return PresetLibrary(builtin + user, problems + user_problems)


def save_user_preset(preset: StylePreset) -> StylePreset:
    """Write ``preset`` to the user's styles folder (replacing a user preset of the same name).

    Returns the preset as saved (source "user", with its path).
    """
    folder = user_presets_dir()
    path = folder / f"{slugify(preset.name)}.json"
    saved = StylePreset(
        name=preset.name.strip(),
        style_text=preset.style_text,
        negative_prompt=preset.negative_prompt,
        description=preset.description,
        sampling=dict(preset.sampling),
        style_aligned=dict(preset.style_aligned),
        source=USER,
        path=path,
    )
    write_json_atomic(path, saved.to_dict())
    return saved


def delete_user_preset(preset: StylePreset) -> None:
    """Remove a user preset's file. Built-in presets cannot be deleted."""
    if preset.source != USER or preset.path is None:
        raise SessionError(f"the preset {preset.name!r} is built in and cannot be deleted")
    preset.path.unlink(missing_ok=True)
