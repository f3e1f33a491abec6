"""The session document's state and what every kind of edit shares: reading it, looking
things up in it, notifying a change (no Qt, no torch).

:class:`DocumentState` holds the style, gallery, panels, settings and run history; the edits are
mixins on it (``panel_edits.py``, ``style_edits.py``, ``settings_edits.py``) that
:class:`~stylealigned_desktop.session.document.SessionDocument` puts together.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import files, folders, observer
from .characters import Character, CharacterSettings
from .errors import SessionError
from .generation import GenerationSettings
from .history import RunCharacter, RunRecord
from .json_fields import MAX_SEED
from .notes import BoardSettings
from .observer import Change, Observable
from .values import Panel, Reference, Style


class DocumentState(Observable):
    """A session document's state (style source, gallery, panels, settings, run history), read
    through properties and lookups; every edit notifies through :meth:`_changed`.

    ``folder`` is the session folder; an untitled session's folder lies under
    ``paths.data_dir()/autosave`` (created on the first write) until it is saved under a name.
    ``rng`` draws seeds (inject a seeded ``random.Random`` in tests).
    """

    def __init__(self, folder: str | Path | None = None, *, rng: random.Random | None = None):
        super().__init__()
        self._rng = rng or random.SystemRandom()
        if folder is None:
            self._folder = folders.new_untitled_folder()
            self._untitled = True
        else:
            self._folder = Path(folder).expanduser().absolute()
            self._untitled = folders.is_in_autosave_root(self._folder)
        self._style = Style(reference_seed=self.draw_seed())
        self._references: list[Reference] = []
        self._panels: list[Panel] = []
        self._settings = GenerationSettings()
        self._board = BoardSettings()  # the deliverables' default duration (notes.py)
        self._characters: list[Character] = []  # spec section 13 (characters.py)
        self._character_settings = CharacterSettings()
        self._history: list[RunRecord] = []
        self._dirty = False
        self._read_only = False  # opened while another app holds it (store.load_session)

    # --- reading -----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def untitled(self) -> bool:
        """True until the session is saved under a name (its folder is in the autosave area)."""
        return self._untitled

    @property
    def title(self) -> str:
        return "Untitled" if self._untitled else folders.title_of(self._folder)

    @property
    def read_only(self) -> bool:
        """Opened while another running app has the folder: never written (Save As copies)."""
        return self._read_only

    @property
    def dirty(self) -> bool:
        """Changes not yet written to session.json (by a save or an autosave)."""
        return self._dirty

    @property
    def style(self) -> Style:
        return self._style

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(self._references)

    @property
    def active_reference(self) -> Reference | None:
        """The gallery picture the style comes from when it is the only active reference, else
        None (the generated reference, or several references: see :attr:`active_sources`)."""
        return self.reference(self._style.active_reference) if self._style.active_reference else None

    @property
    def active_sources(self) -> tuple[tuple[Reference | None, float], ...]:
        """The active references in order, as (gallery picture, or None for the generated
        reference; weight as set, not normalised)."""
        return tuple((None if x.picture is None else self.reference(x.picture), x.weight)
                     for x in self._style.sources)

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(self._panels)

    @property
    def settings(self) -> GenerationSettings:
        return self._settings

    @property
    def characters(self) -> tuple[Character, ...]:
        return tuple(self._characters)

    @property
    def character_settings(self) -> CharacterSettings:
        return self._character_settings

    def character(self, name: str) -> Character | None:
        return next((c for c in self._characters if c.name == name), None)

    @property
    def history(self) -> tuple[RunRecord, ...]:
        """Runs, oldest first."""
        return tuple(self._history)

    def newest_pictures(self) -> tuple[dict[int, tuple[Path, RunRecord]], dict[str, tuple[Path, RunRecord]]]:
        """The newest finished run's reference pictures by position and, per panel id, its
        newest finished picture, each with its run (what the grid shows and exports take)."""
        references: dict[int, tuple[Path, RunRecord]] = {}
        panels: dict[str, tuple[Path, RunRecord]] = {}
        for record in self._history:
            if record.status != "finished":
                continue
            if record.reference_images():
                references = {k: (self.path(file), record) for k, file in record.reference_images()}
            for run_panel in record.generated:
                panels[run_panel.panel_id] = (self.path(f"{record.folder}/{run_panel.file}"), record)
        return references, panels

    def newest_anchors(self) -> dict[tuple[str, int], tuple[Path, RunCharacter]]:
        """Per (character name, 0-based anchor), the newest finished run's picture of it, with
        the character as that run drew it (the grid shows it after a reopen, outdated when the
        character has changed since: :meth:`RunCharacter.drew_the_same`)."""
        found: dict[tuple[str, int], tuple[Path, RunCharacter]] = {}
        for record in self._history:
            if record.status == "finished":
                for run_character in record.characters:
                    for k, image in enumerate(run_character.images):
                        if image:
                            found[run_character.character.name, k] = (
                                self.path(f"{record.folder}/{image}"), run_character)
        return found

    @property
    def cache_folder(self) -> Path:
        """Where the engine keeps this session's inversion trajectories (``cache/``; every
        request the session builds names it as ``cache_dir``). Nothing in it is needed: a
        missing file is recomputed, so it is never reported missing."""
        return self._folder / folders.CACHE

    def path(self, relative: str) -> Path:
        """The absolute path of a session-relative file (``references/ab12.png``), to show it;
        :meth:`file` checks that it really is one of the session's files."""
        return files.session_path(self._folder, relative)

    def file(self, relative: str) -> Path | None:
        """The real path of a session file that is a regular file inside the session folder
        (never reached through a link); None otherwise. Read files through this."""
        return files.regular_file(self._folder, relative)

    def reference(self, ref_id: str) -> Reference | None:
        return next((r for r in self._references if r.id == ref_id), None)

    def panel_index(self, panel_id: str) -> int:
        """The current index of the panel with this id (SessionError if it is gone)."""
        for i, panel in enumerate(self._panels):
            if panel.id == panel_id:
                return i
        raise SessionError(f"no panel with id {panel_id!r} (it was deleted)")

    def panel(self, panel_id: str) -> Panel:
        return self._panels[self.panel_index(panel_id)]

    def run(self, run_id: str) -> RunRecord:
        for record in self._history:
            if record.id == run_id:
                return record
        raise SessionError(f"no run {run_id!r} in this session's history")

    def referenced_files(self) -> set[str]:
        """Session-relative picture files the session or its history refers to."""
        used = {r.file for r in self._references}
        used.update(p.control.image for p in self._panels if p.control.image)
        used.update(f for c in self._characters for f in c.pictures if f)
        for record in self._history:
            used.update(x.file for x in record.references if x.file)
            used.update(p.control.image for p in record.panels if p.control and p.control.image)
        return used

    def missing_files(self) -> list[str]:
        """Pictures of the gallery, panels and characters whose copies are gone from the folder (a link
        in a copy's place counts as gone: the session never reads through links)."""
        wanted = [r.file for r in self._references]
        wanted += [p.control.image for p in self._panels if p.control.image]
        wanted += [f for c in self._characters for f in c.pictures if f]
        return sorted({f for f in wanted if self.file(f) is None})

    # --- notification helpers -----------------------------------------------------------------

    def _changed(self, kind: str, index: int | None = None, panel_id: str | None = None) -> None:
        change = Change(kind, index, panel_id)
        if change.persistent:
            self._dirty = True
        self._notify(change)

    def _panel_changed(self, index: int) -> None:
        self._changed(observer.PANEL, index, self._panels[index].id)

    def draw_seed(self) -> int:
        """A fresh random seed (from the session's ``rng``)."""
        return self._rng.randint(0, MAX_SEED)

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self._panels):
            raise SessionError(
                f"panel {index!r} does not exist (the storyboard has {len(self._panels)} panels)"
            )
        return index

    def ensure_folder(self) -> Path:
        """Create the session folder (and, for an untitled one, mark it as ours)."""
        new = not self._folder.exists()
        self._folder.mkdir(parents=True, exist_ok=True)
        if self._untitled and (new or folders.read_lock(self._folder) is None):
            folders.write_lock(self._folder)
        return self._folder

    # --- the primitive setters the edits share (each notifies its kind) ---------------------

    def _set_style(self, **changes: Any) -> Style:
        new = replace(self._style, **changes)
        if new != self._style:
            self._style = new
            self._changed(observer.STYLE)
        return new

    def _set_settings(self, settings: GenerationSettings) -> GenerationSettings:
        if settings != self._settings:
            self._settings = settings
            self._changed(observer.SETTINGS)
        return settings
