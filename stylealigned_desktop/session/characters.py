"""Characters of a storyboard (spec section 13): who they are, their anchors, the settings of
subject-driven shared attention, and how a panel prompt names them (no Qt, no torch).

A panel names a character as ``[Mira]`` in its prompt; :func:`named_characters` reads those
names (the one parser of the app: the card's chips, its "unknown name" flag and planning all
ask it). Names, mentions and default subject words are the engine's (``engine/characters.py``,
docs/characters.md: a capital letter first, then letters, digits, ``_``, ``-`` and single inner
spaces), so a name the card shows as a chip is one the engine expands. A :class:`Character` holds its anchors' seeds and, per anchor, an optional picture (the
artist's own design: a copy in ``characters/`` of the session folder); the engine draws the
anchors that have no picture. Frozen, validated and JSON round-tripped like the other value
types (``values.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..engine import limits
from ..engine.characters import MAX_NAME_CHARS, default_subject_words, is_name, mentions
from .errors import SessionError
from .json_fields import Reader, check_number, check_relative_path, check_seed, check_text

MAX_ANCHORS = 8
"""Anchors per character the app offers (each is one more picture in the recording call)."""
CHARACTER_LAYERS = ("up", "all")


def named_characters(prompt: str) -> tuple[str, ...]:
    """The names a prompt gives in brackets (``[Mira]``), each once, in the order they first
    appear. Brackets around anything that is no name (``[ ]``, ``[2]``, ``[ Mira]``, ``[sic]``)
    name nobody: the model reads them as they are."""
    return tuple(dict.fromkeys(match.group(1) for match in mentions(prompt)))


def unknown_names(prompt: str, known: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The names ``prompt`` gives that are not among ``known`` (the session's characters)."""
    return tuple(name for name in named_characters(prompt) if name not in known)


def rename_in_prompt(prompt: str, old: str, new: str) -> str:
    """``prompt`` with every ``[old]`` written ``[new]``."""
    parts, end = [], 0
    for match in mentions(prompt):
        if match.group(1) == old:
            parts += [prompt[end:match.start()], f"[{new}]"]
            end = match.end()
    return "".join(parts) + prompt[end:]


def default_words(description: str) -> tuple[str, ...]:
    """The subject words of a description when the artist gives none: its words less the stop
    words (spec section 13), lower case, each once."""
    return default_subject_words(description)


def check_name(name: Any) -> str:
    """A character's name as the user typed it, stripped: one line, no brackets."""
    if not isinstance(name, str):
        raise SessionError(f"a character's name must be text, got {name!r}")
    name = " ".join(name.split())
    if not name:
        raise SessionError("a character needs a name (panels name it as [Name])")
    if not is_name(name):
        raise SessionError(f"a character's name starts with a capital letter and has letters, digits, "
                           f"'_', '-' and single spaces, at most {MAX_NAME_CHARS} characters: "
                           f"{name!r}")
    return name


@dataclass(frozen=True)
class Character:
    """One character: ``name`` (unique in the session), ``description`` (what the text encoders
    read in place of ``[name]``), ``words`` (the subject words whose cross-attention finds it;
    empty: :func:`default_words` of the description), ``anchor_seeds`` (one per anchor; more
    are kept when the anchor count is lowered, so raising it again brings them back),
    ``seeds_locked`` (False: Generate draws new anchor seeds each time, as for the generated
    reference), ``pictures`` (per anchor a session-relative picture, or None: generated;
    shorter than the seeds means None for the rest) and ``anchor_text`` (added to the
    description in the anchors' prompts, before the style text)."""

    name: str
    description: str = ""
    words: tuple[str, ...] = ()
    anchor_seeds: tuple[int, ...] = ()
    seeds_locked: bool = True
    pictures: tuple[str | None, ...] = ()
    anchor_text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_name(self.name))
        check_text(self.description, "character description", limits.MAX_PROMPT_CHARS)
        check_text(self.anchor_text, "character anchor text", limits.MAX_PROMPT_CHARS)
        words = tuple(self.words)
        for word in words:
            check_text(word, "subject word")
            if not word.strip() or any(c.isspace() for c in word.strip()):
                raise SessionError(f"a subject word is one word, got {word!r}")
        object.__setattr__(self, "words", tuple(w.strip() for w in words))
        seeds = tuple(check_seed(s, "anchor seed") for s in self.anchor_seeds)
        if len(seeds) > MAX_ANCHORS:
            raise SessionError(f"a character has at most {MAX_ANCHORS} anchors")
        object.__setattr__(self, "anchor_seeds", seeds)
        if not isinstance(self.seeds_locked, bool):
            raise SessionError("a character's seeds_locked must be true or false")
        pictures = tuple(self.pictures)
        if len(pictures) > max(len(seeds), 1):
            raise SessionError(f"{self.name} has more anchor pictures than anchors")
        for picture in pictures:
            if picture is not None:
                check_relative_path(picture, "anchor picture")
        while pictures and pictures[-1] is None:  # one form for "no picture" (equality, undo)
            pictures = pictures[:-1]
        object.__setattr__(self, "pictures", pictures)

    @property
    def subject_words(self) -> tuple[str, ...]:
        """The words that locate the character: the artist's, else the description's."""
        return self.words or default_words(self.description)

    def picture(self, anchor: int) -> str | None:
        return self.pictures[anchor] if anchor < len(self.pictures) else None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("words", "anchor_seeds", "pictures"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "character") -> Character:
        r = Reader(data, where)
        words = r.items("words")
        seeds = r.items("anchor_seeds")
        pictures = r.items("pictures")
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise SessionError(f"{where}.words[{i}] must be text, got {word!r}")
        for i, picture in enumerate(pictures):
            if picture is not None and not isinstance(picture, str):
                raise SessionError(f"{where}.pictures[{i}] must be a path or null, got {picture!r}")
        value = cls(
            name=r.text("name", required=True),
            description=r.text("description"),
            words=tuple(words),
            anchor_seeds=tuple(check_seed(s, f"{where}.anchor_seeds[{i}]")
                               for i, s in enumerate(seeds)),
            seeds_locked=r.flag("seeds_locked", True),
            pictures=tuple(pictures),
            anchor_text=r.text("anchor_text"),
        )
        r.done()
        return value


@dataclass(frozen=True)
class CharacterSettings:
    """How strongly panels share their characters (spec section 13's public settings, by the
    same names): ``character_dropout`` (0..1; lower: more alike, poses freeze),
    ``character_layers`` (``up`` or ``all``), ``character_shift`` (the bias on anchor tokens)
    and ``anchors_per_character``."""

    character_dropout: float = 0.5
    character_layers: str = "up"
    character_shift: float = 0.0
    anchors_per_character: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "character_dropout",
                           check_number(self.character_dropout, "character dropout", 0.0, 1.0))
        object.__setattr__(self, "character_shift",
                           check_number(self.character_shift, "character shift", -10.0, 10.0))
        if self.character_layers not in CHARACTER_LAYERS:
            raise SessionError(f"character layers are one of {', '.join(CHARACTER_LAYERS)}, "
                               f"got {self.character_layers!r}")
        anchors = self.anchors_per_character
        if isinstance(anchors, bool) or not isinstance(anchors, int) or not 1 <= anchors <= MAX_ANCHORS:
            raise SessionError(f"anchors per character are 1 to {MAX_ANCHORS}, got {anchors!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "character_settings") -> CharacterSettings:
        r = Reader(data, where)
        d = cls()
        value = cls(
            character_dropout=r.number("character_dropout", d.character_dropout),
            character_layers=r.text("character_layers", d.character_layers),
            character_shift=r.number("character_shift", d.character_shift),
            anchors_per_character=r.integer("anchors_per_character", d.anchors_per_character),
        )
        r.done()
        return value
