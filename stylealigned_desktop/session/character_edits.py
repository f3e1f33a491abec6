"""Editing the characters (spec section 13): adding, renaming, describing, removing them, their
anchor seeds and pictures, and the settings of character sharing (a mixin of
:class:`~stylealigned_desktop.session.document.SessionDocument`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import files, folders, observer
from .characters import Character, CharacterSettings, check_name, rename_in_prompt
from .document_state import DocumentState
from .errors import SessionError
from .json_fields import check_seed
from .pictures import PreparedPicture, prepare_picture

_FIELDS = {"name", "description", "words", "seeds_locked", "anchor_text"}


class CharacterEdits(DocumentState):
    """The characters and the settings of subject-driven shared attention."""

    def _character_index(self, name: str) -> int:
        for i, character in enumerate(self._characters):
            if character.name == name:
                return i
        raise SessionError(f"there is no character {name!r}")

    def _set_character(self, index: int, character: Character) -> Character:
        if character != self._characters[index]:
            self._characters[index] = character
            self._changed(observer.CHARACTERS)
        return character

    def add_character(self, name: str, description: str = "") -> Character:
        """A new character with fresh, locked anchor seeds (as many as the settings ask)."""
        name = check_name(name)
        if self.character(name) is not None:
            raise SessionError(f"there already is a character named {name!r}")
        count = self._character_settings.anchors_per_character
        character = Character(name=name, description=description,
                              anchor_seeds=tuple(self.draw_seed() for _ in range(count)))
        self._characters.append(character)
        self._changed(observer.CHARACTERS)
        return character

    def update_character(self, name: str, /, **changes: Any) -> Character:
        """Change ``name``, ``description``, ``words`` (a tuple; empty: the description's),
        ``seeds_locked`` and/or ``anchor_text``. A new name is written into every panel
        prompt that named the old one, in the same step."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise SessionError(f"characters have no field(s) {', '.join(unknown)}")
        index = self._character_index(name)
        if "words" in changes:
            changes["words"] = tuple(changes["words"])
        new = replace(self._characters[index], **changes)
        if new.name != name and self.character(new.name) is not None:
            raise SessionError(f"there already is a character named {new.name!r}")
        with self.batch():
            if new.name != name:
                for i, panel in enumerate(self._panels):
                    prompt = rename_in_prompt(panel.prompt, name, new.name)
                    if prompt != panel.prompt:
                        self._panels[i] = replace(panel, prompt=prompt)
                        self._panel_changed(i)
            return self._set_character(index, new)

    def remove_character(self, name: str) -> Character:
        """Take a character out (panels that still name it are flagged; its picture copies
        stay until an explicit save tidies the folder)."""
        character = self._characters.pop(self._character_index(name))
        self._changed(observer.CHARACTERS)
        return character

    def set_anchor_seed(self, name: str, anchor: int, seed: int) -> Character:
        index = self._character_index(name)
        character = self._characters[index]
        seeds = list(character.anchor_seeds)
        if not 0 <= anchor < self._character_settings.anchors_per_character:
            raise SessionError(f"{name} has no anchor {anchor + 1}")
        seeds[anchor] = check_seed(seed, "anchor seed")
        return self._set_character(index, replace(character, anchor_seeds=tuple(seeds)))

    def reroll_character(self, name: str) -> tuple[int, ...]:
        """New seeds for the anchors of ``name`` (a locked character keeps them until then)."""
        index = self._character_index(name)
        character = self._characters[index]
        count = self._character_settings.anchors_per_character
        seeds = tuple(self.draw_seed() for _ in range(count)) + character.anchor_seeds[count:]
        self._set_character(index, replace(character, anchor_seeds=seeds))
        return seeds

    def set_character_picture(self, name: str, anchor: int, path: str | Path) -> Character:
        """Copy a picture into ``characters/`` and make it anchor ``anchor`` of ``name`` (the
        artist's design, inverted instead of drawn). = :func:`prepare_picture` then
        :meth:`set_character_prepared`."""
        self._anchor_of(name, anchor)
        return self.set_character_prepared(name, anchor, prepare_picture(path))

    def set_character_prepared(self, name: str, anchor: int, prepared: PreparedPicture) -> Character:
        """Like :meth:`set_character_picture` for a picture already read and checked (cheap)."""
        index, character = self._anchor_of(name, anchor)
        stored = files.store_copy(self.ensure_folder(), folders.CHARACTERS, prepared)
        return self._set_picture(index, character, anchor, stored)

    def clear_character_picture(self, name: str, anchor: int) -> Character:
        """Anchor ``anchor`` of ``name`` is generated again."""
        index, character = self._anchor_of(name, anchor)
        return self._set_picture(index, character, anchor, None)

    def _anchor_of(self, name: str, anchor: int) -> tuple[int, Character]:
        index = self._character_index(name)
        character = self._characters[index]
        if isinstance(anchor, bool) or not isinstance(anchor, int) or \
                not 0 <= anchor < self._character_settings.anchors_per_character:
            raise SessionError(f"{name} has no anchor {anchor!r}")
        return index, character

    def _set_picture(self, index: int, character: Character, anchor: int,
                     picture: str | None) -> Character:
        pictures = list(character.pictures) + [None] * (len(character.anchor_seeds)
                                                         - len(character.pictures))
        pictures[anchor] = picture
        return self._set_character(index, replace(character, pictures=tuple(pictures)))

    def update_character_settings(self, **changes: Any) -> CharacterSettings:
        """Change ``character_dropout``, ``character_layers``, ``character_shift`` and/or
        ``anchors_per_character`` (characters with fewer anchor seeds get fresh ones; extra
        seeds and pictures are kept, unused, so raising the count again brings them back)."""
        try:
            settings = replace(self._character_settings, **changes)
        except TypeError as exc:
            raise SessionError(f"unknown character setting: {exc}") from None
        if settings == self._character_settings:
            return settings
        count = settings.anchors_per_character
        with self.batch():
            self._character_settings = settings
            self._changed(observer.CHARACTERS)
            for i, character in enumerate(self._characters):
                missing = count - len(character.anchor_seeds)
                if missing > 0:
                    seeds = character.anchor_seeds + tuple(self.draw_seed() for _ in range(missing))
                    self._set_character(i, replace(character, anchor_seeds=seeds))
        return settings

    def _put_character(self, character: Character) -> None:
        """``character`` replaces the session's character of its name, or is added."""
        if self.character(character.name) is None:
            self._characters.append(character)
            self._changed(observer.CHARACTERS)
        else:
            self._set_character(self._character_index(character.name), character)

    def _restore_characters(self, characters, settings: CharacterSettings | None,
                            notes: list[str]) -> None:
        """A past run's characters (``RunCharacter``s) as it drew them, their seeds locked:
        each replaces the character of its name, or comes back if it was removed; characters
        added since stay (panels may name them). An anchor picture since deleted from the
        session is left out (noted): that anchor is drawn from its seed."""
        if not characters:
            return
        with self.batch():
            if settings is not None and settings != self._character_settings:
                self._character_settings = settings
                self._changed(observer.CHARACTERS)
            for run_character in characters:
                character = replace(run_character.character, seeds_locked=True)
                gone = [k for k, p in enumerate(character.pictures) if p and self.file(p) is None]
                if gone:
                    notes.append(f"{character.name}'s anchor picture(s) {', '.join(str(k + 1) for k in gone)} "
                                 "are gone; drawn from their seeds")
                    character = replace(character, pictures=tuple(
                        None if k in gone else p for k, p in enumerate(character.pictures)))
                self._put_character(character)

    def take_characters(self, characters: Sequence[Any], settings: CharacterSettings | None = None) -> list[str]:
        """A picture's characters (the engine's, from a PNG dropped on Settings) and their
        settings, in one change: each replaces the session's character of its name, or is
        added; its anchor pictures (those on this computer) are copied in. The engine's anchor
        text carries the style text: what follows the session's own style text is kept.
        Returns what could not be taken (a picture that fails its checks), for the artist."""
        prepared, refused = {}, []
        for character in characters:  # read every picture before anything changes
            for anchor, path in enumerate(character.anchor_pictures):
                if path is not None:
                    try:
                        prepared[(character.name, anchor)] = prepare_picture(path)
                    except ValueError as exc:  # PictureError
                        refused.append(f"the picture of [{character.name}]'s anchor {anchor + 1}: {exc}")
        own = [Character(name=c.name, description=c.description, words=c.words, anchor_seeds=c.anchor_seeds,
                         anchor_text=_own_anchor_text(c.anchor_text, self._style.text)) for c in characters]
        with self.batch():
            if settings is not None:
                self.update_character_settings(**settings.to_dict())
            for character in own:
                self._put_character(character)
            for (name, anchor), picture in prepared.items():
                if anchor < self._character_settings.anchors_per_character:
                    self.set_character_prepared(name, anchor, picture)
        return refused


def _own_anchor_text(engine_text: str, style_text: str) -> str:
    """The artist's anchor text within the engine's ``", <anchor text>, <style text>"``
    (``planning.anchor_text``)."""
    text, style = engine_text.strip(), style_text.strip()
    if style and text.endswith(style):
        text = text[: -len(style)].rstrip()
    return text.strip(", ").strip()
