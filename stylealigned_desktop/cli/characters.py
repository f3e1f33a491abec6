"""The characters of ``stylealigned generate`` (spec section 13, docs/characters.md).

``--character "Mira=a red-haired girl in a yellow raincoat"`` defines a character that panel
prompts (``--prompt``, prompts files) name as ``[Mira]``; ``--character-words Mira=girl,raincoat``
chooses the words that locate it, ``--character-image Mira=FILE`` (repeatable) gives its anchors
the artist's pictures in order. Character i's anchor k is seeded ``--seed + 1000 (i + 1) + k``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.request import Character
from .common import UsageError

ANCHOR_SEED_STEP = 1000


def add_character_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("characters (name them as [Name] in panel prompts; docs/characters.md)")
    group.add_argument("--character", action="append", default=[], metavar="NAME=DESCRIPTION",
                       help='a character, e.g. "Mira=a red-haired girl in a yellow raincoat" (repeatable)')
    group.add_argument("--character-words", action="append", default=[], metavar="NAME=WORD,WORD",
                       help="the description's words that locate the character (default: all but a, the, in, ...)")
    group.add_argument("--character-image", action="append", default=[], metavar="NAME=FILE",
                       help="a picture of the character for its next anchor (repeat for more anchors)")


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise UsageError(f"{flag} takes NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def characters_from_args(args, anchors: int) -> tuple[Character, ...]:
    """The characters of a command line; ``anchors``: anchors per character (the settings')."""
    described = dict.fromkeys(name for name, _ in (_pair(t, "--character") for t in args.character))
    pairs = [_pair(t, "--character") for t in args.character]
    if len(described) != len(pairs):
        twice = next(n for n, _ in pairs if [p for p, _ in pairs].count(n) > 1)
        raise UsageError(f"--character {twice} is given twice")
    words, images = {}, {}
    for flag, texts in (("--character-words", args.character_words), ("--character-image", args.character_image)):
        for text in texts:
            name, value = _pair(text, flag)
            if name not in described:
                have = ", ".join(described) or "none"
                raise UsageError(f"{flag} names {name}, which no --character defines (characters: {have})")
            if flag == "--character-words":
                words[name] = tuple(w.strip() for w in value.split(",") if w.strip())
            else:  # read with the other pictures, before any model loads (engine.request_files)
                images.setdefault(name, []).append(str(Path(value).expanduser()))
    style = f", {args.style}" if args.style else ""
    characters = []
    try:
        for i, (name, description) in enumerate(pairs):
            if len(images.get(name, ())) > anchors:
                raise UsageError(f"[{name}] has {len(images[name])} pictures but {anchors} anchors "
                                 "(--anchors-per-character)")
            seeds = tuple(args.seed + ANCHOR_SEED_STEP * (i + 1) + k for k in range(anchors))
            characters.append(Character(name, description, words.get(name, ()), anchor_seeds=seeds,
                                        anchor_pictures=tuple(images.get(name, ())), anchor_text=style))
    except ValueError as error:
        raise UsageError(str(error)) from None
    return tuple(characters)
