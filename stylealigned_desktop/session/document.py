"""The storyboard document: its state, every edit of it, its change notifications and its
JSON form (no Qt, no torch, no session.json: ``store.py`` reads and writes that).

:class:`SessionDocument` is the base of :class:`~stylealigned_desktop.session.model.Session`,
which adds generation and history; see ``model.py`` for the whole API. The document is put
together from one module per responsibility:

- ``document_state.py``: the state, reading it, lookups, change notifications;
- ``panel_edits.py``: panels and their control pictures;
- ``style_edits.py``: the style text, the generated reference, the gallery, the active sources;
- ``settings_edits.py``: sampling and StyleAligned settings, presets;
- ``character_edits.py``: the characters, their anchors and the character settings (their
  value types and the ``[Name]`` parser in ``characters.py``, spec section 13);
- ``notes_edits.py``: panel notes (scene, shot, action, dialogue, camera, duration) and the
  set's default duration (their value types in ``notes.py``);
- this module: the JSON form (``to_dict`` / ``from_dict``), undo states, saving and closing.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import folders, observer
from .character_edits import CharacterEdits
from .characters import Character, CharacterSettings
from .errors import SessionError
from .generation import GenerationSettings
from .history import RunRecord
from .json_fields import Reader
from .notes import BoardSettings
from .notes_edits import NoteEdits
from .panel_edits import PanelEdits
from .settings_edits import SettingsEdits
from .style_edits import ReferenceImport, StyleEdits
from .values import Panel, Reference, Style

__all__ = ["ReferenceImport", "SessionDocument"]


class SessionDocument(PanelEdits, StyleEdits, SettingsEdits, NoteEdits, CharacterEdits):
    """The document of a session: style source, gallery, panels, settings and run history.

    ``folder`` is the session folder; an untitled session's folder lies under
    ``paths.data_dir()/autosave`` (created on the first write) until it is saved under a name.
    ``rng`` draws seeds (inject a seeded ``random.Random`` in tests).
    """

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-ready data (store.py adds the format and schema version)."""
        return {
            "style": self._style.to_dict(),
            "references": [r.to_dict() for r in self._references],
            "panels": [p.to_dict() for p in self._panels],
            "settings": self._settings.to_dict(),
            "board": self._board.to_dict(),
            "characters": [c.to_dict() for c in self._characters],
            "character_settings": self._character_settings.to_dict(),
            "history": [r.to_dict() for r in self._history],
        }

    def edit_state(self) -> dict[str, Any]:
        """What the user edits (style, gallery, panels, settings, characters; not the run history), as
        JSON-ready data: an undo step is two of these."""
        data = self.to_dict()
        del data["history"]
        return data

    def restore_edit_state(self, state: Mapping[str, Any]) -> None:
        """Put back an :meth:`edit_state` (undo / redo); the history stays as it is."""
        restored = type(self).from_dict({**state, "history": []}, self._folder)
        with self.batch():
            for kind, name in ((observer.STYLE, "_style"), (observer.REFERENCES, "_references"),
                               (observer.PANELS, "_panels"), (observer.SETTINGS, "_settings"),
                               (observer.BOARD, "_board"),
                               (observer.CHARACTERS, "_characters"),
                               (observer.CHARACTERS, "_character_settings")):
                if getattr(restored, name) != getattr(self, name):
                    setattr(self, name, getattr(restored, name))
                    self._changed(kind)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], folder: str | Path, *, rng: random.Random | None = None
    ) -> SessionDocument:
        """A session from :meth:`to_dict` data (already migrated to the current schema)."""
        r = Reader(data, "session")
        session = cls(folder, rng=rng)
        session._style = Style.from_dict(r.obj("style", {}), "style")
        session._references = [
            Reference.from_dict(x, f"references[{i}]") for i, x in enumerate(r.items("references"))
        ]
        session._panels = [Panel.from_dict(x, f"panels[{i}]") for i, x in enumerate(r.items("panels"))]
        session._settings = GenerationSettings.from_dict(r.obj("settings", {}), "settings")
        session._board = BoardSettings.from_dict(r.obj("board", {}), "board")
        session._characters = [Character.from_dict(x, f"characters[{i}]")
                                for i, x in enumerate(r.items("characters"))]
        session._character_settings = CharacterSettings.from_dict(
            r.obj("character_settings", {}), "character_settings")
        session._history = [
            RunRecord.from_dict(x, f"history[{i}]") for i, x in enumerate(r.items("history"))
        ]
        for key in ("format", "schema_version", "app_version", "saved"):
            r.raw(key)  # bookkeeping of the file format, checked by store.py
        r.done()
        ids = [p.id for p in session._panels]
        if len(set(ids)) != len(ids):
            raise SessionError("two panels share one id")
        names = [c.name for c in session._characters]
        if len(set(names)) != len(names):
            raise SessionError("two characters share one name")
        ref_ids = {x.id for x in session._references}
        if len(ref_ids) != len(session._references):
            raise SessionError("two gallery pictures share one id")
        for source in session._style.sources:
            if source.picture is not None and source.picture not in ref_ids:
                raise SessionError(f"style.sources names {source.picture!r}, which is not in the gallery")
        return session

    def _mark_saved(self, folder: Path | None = None, untitled: bool | None = None) -> None:
        """Called by store.py after a successful write (and a move, for save-as)."""
        if folder is not None:
            self._folder = folder
        if untitled is not None:
            self._untitled = untitled
        self._dirty = False
        self._changed(observer.SAVED)

    def close(self) -> None:
        """Release the session folder (an untitled one stays recoverable until discarded)."""
        if not self._read_only:
            folders.release_lock(self._folder)
