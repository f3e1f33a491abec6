"""Characters in prompts (spec section 13): ``[Name]``, its description, its subject words.

A panel prompt names a character as ``[Mira]``; the text encoders read the character's
description in its place (:func:`expand_character_names`). The subject words (by default the
description's words less a few stop words) are the words whose cross-attention locates the
character in a picture (``subject_masks.py``); :func:`subject_spans` says where they stand in
the text the encoders read. Torch-free: the session, the CLI and the request checks use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_NAME_CHARS = 40
NAME = re.compile(r"[^\W\d_](?:[\w-]| (?=[\w-]))*")
"""A character's name: starts with a capital letter (:func:`is_name`); letters, digits, ``_``,
``-`` and single inner spaces."""
MENTION = re.compile(r"\[([^\W\d_](?:[\w-]| (?=[\w-]))*)\]")
"""``[Name]`` in a prompt, where Name :func:`is_name` (``[sic]``, ``[1990]`` are text)."""
WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
"""A word of a description (``red-haired`` is one word)."""
STOP_WORDS = frozenset({"a", "an", "the", "in", "on", "of", "with", "and", "at", "to", "wearing"})


class CharacterLike(Protocol):
    name: str
    description: str
    words: tuple[str, ...]


def is_name(text: str) -> bool:
    """Whether ``text`` is a character's name: :data:`NAME`, a capital first letter, not too long."""
    return bool(NAME.fullmatch(text)) and text[0].isupper() and len(text) <= MAX_NAME_CHARS


def check_name(name: Any) -> str:
    """A character's name as :func:`is_name` allows it; ValueError otherwise."""
    if not isinstance(name, str) or not is_name(name):
        raise ValueError(f"a character's name starts with a capital letter and has letters, digits, '_', '-' "
                         f"and single spaces, at most {MAX_NAME_CHARS} characters, got {name!r}")
    return name


def mentions(prompt: str) -> list[re.Match]:
    """The ``[Name]`` mentions of a prompt (group 1: the name), in order."""
    return [match for match in MENTION.finditer(prompt) if is_name(match.group(1))]


def description_words(description: str) -> list[str]:
    """The words of a description, in order, lower case."""
    return [word.lower() for word in WORD.findall(description)]


def default_subject_words(description: str) -> tuple[str, ...]:
    """A description's words less :data:`STOP_WORDS`, lower case, each once."""
    return tuple(dict.fromkeys(w for w in description_words(description) if w not in STOP_WORDS))


def subject_words(character: CharacterLike) -> tuple[str, ...]:
    """The words that locate a character: its own, or :func:`default_subject_words`."""
    if character.words:
        return tuple(word.lower() for word in character.words)
    return default_subject_words(character.description)


def check_words(name: str, description: str, words: Sequence[str]) -> tuple[str, ...]:
    """A character's own subject words: each one a word of its description."""
    known = set(description_words(description))
    for word in words:
        if not isinstance(word, str) or word.lower() not in known:
            raise ValueError(f"subject word {word!r} of [{name}] is not a word of its description "
                             f"{description!r}")
    if not words and not known - STOP_WORDS:
        raise ValueError(f"the description of [{name}] has no word to find it by (only stop words)")
    return tuple(words)


def _by_name(characters: Sequence[CharacterLike]) -> dict[str, CharacterLike]:
    return {c.name: c for c in characters}


def named_characters(prompt: str, characters: Sequence[CharacterLike]) -> list[str]:
    """The names a prompt mentions as ``[Name]``, each once, in order; an unknown one raises."""
    known = _by_name(characters)
    names = list(dict.fromkeys(match.group(1) for match in mentions(prompt)))
    unknown = [name for name in names if name not in known]
    if unknown:
        have = ", ".join(f"[{n}]" for n in known) or "none"
        raise ValueError(f"the prompt names the unknown character [{unknown[0]}] (characters: {have})")
    return names


def expand_character_names(prompt: str, characters: Sequence[CharacterLike]) -> str:
    """The prompt as the text encoders read it: every ``[Name]`` replaced by the description."""
    return character_text(prompt, characters)[0]


def character_text(prompt: str, characters: Sequence[CharacterLike]) -> tuple[str, dict[str, list[tuple[int, int]]]]:
    """The expanded prompt and, per named character, where its descriptions stand in it."""
    named_characters(prompt, characters)  # unknown names raise first
    known = _by_name(characters)
    parts, spans, at, end = [], {}, 0, 0
    for match in mentions(prompt):
        parts.append(prompt[end:match.start()])
        at += match.start() - end
        description = known[match.group(1)].description
        spans.setdefault(match.group(1), []).append((at, at + len(description)))
        parts.append(description)
        at, end = at + len(description), match.end()
    parts.append(prompt[end:])
    return "".join(parts), spans


def subject_spans(text: str, spans: Sequence[tuple[int, int]], words: Sequence[str]) -> list[tuple[int, int]]:
    """Where the subject ``words`` stand in ``text``, within the description ``spans``."""
    wanted = {w.lower() for w in words}
    return [(start + m.start(), start + m.end()) for start, stop in spans
            for m in WORD.finditer(text[start:stop]) if m.group().lower() in wanted]


@dataclass(frozen=True)
class Anchor:
    """One anchor row of a character (spec section 13): generated from ``prompt`` and ``seed``,
    or the inverted ``picture`` (a path) with the description as its caption."""

    character: str
    number: int
    """0-based, within its character."""
    index: int
    """0-based, among all anchors of the request (characters in order): the dropout seed's."""
    prompt: str
    seed: int
    picture: str | None = None


def anchors_of(characters: Sequence[Any], per_character: int) -> list[Anchor]:
    """Every anchor of a request: ``per_character`` of each character, in order. An anchor's
    prompt is the description and the anchor text (which carries the style text, as panel
    prompts do: docs/characters.md); a picture anchor's caption is the description."""
    anchors = []
    for character in characters:
        pictures = tuple(character.anchor_pictures) + (None,) * per_character
        for k in range(per_character):
            prompt = character.description + ("" if pictures[k] else character.anchor_text)
            anchors.append(Anchor(character.name, k, len(anchors), prompt, character.anchor_seeds[k], pictures[k]))
    return anchors


def subject_tokens(tokenizer, text: str, spans: Sequence[tuple[int, int]], limit: int) -> tuple[int, ...]:
    """The token positions of the text spans (subject words) in ``text`` as the tokenizer reads it
    (position 0 is the start token), those below ``limit`` - 1 (what the encoder reads): a span's
    tokens are those its end adds to the tokens of the text before it."""
    def count(prefix: str) -> int:
        return len(tokenizer(prefix).input_ids) - 1  # less the end token

    positions: dict[int, None] = {}
    for start, stop in spans:
        positions.update(dict.fromkeys(range(count(text[:start]), count(text[:stop]))))
    return tuple(p for p in positions if p < limit - 1)


def row_subject_tokens(tokenizer, text: str, names: Sequence[str], characters: Sequence[CharacterLike],
                       anchor: str | None, limit: int) -> dict[str, tuple[int, ...]]:
    """Per named character, its subject tokens in a row's ``text``: a panel's (the prompt with
    ``[Name]`` mentions, expanded) or an anchor's (``anchor``'s description at the start)."""
    known = _by_name(characters)
    if anchor is not None:
        spans = {anchor: [(0, len(known[anchor].description))]}
    else:
        text, spans = character_text(text, characters)
    return {name: subject_tokens(tokenizer, text, subject_spans(text, spans[name], subject_words(known[name])), limit)
            for name in names}
