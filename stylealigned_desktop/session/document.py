"""The storyboard document: its state, every edit of it, its change notifications and its
JSON form (no Qt, no torch, no session.json: ``store.py`` reads and writes that).

:class:`SessionDocument` is the base of :class:`~stylealigned_desktop.session.model.Session`,
which adds generation and history; see ``model.py`` for the whole API.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.settings import StyleAlignedSettings
from . import files, folders, observer
from .errors import PictureError, SessionError
from .generation import GenerationSettings, source_defaults
from .history import RunRecord
from .json_fields import MAX_SEED, Reader, check_seed
from .notes import BoardSettings, PanelNotesEdits
from .observer import Change, Observable
from .pictures import PreparedPicture, picture_files, prepare_picture, prepare_picture_data
from .presets import StylePreset
from .values import Control, Panel, Reference, Style, StyleReference, new_panel_id


@dataclass
class ReferenceImport:
    """The outcome of adding many pictures: what was added, what was already there, what failed."""

    added: list[Reference] = field(default_factory=list)
    already_present: list[Reference] = field(default_factory=list)
    errors: list[PictureError] = field(default_factory=list)


class SessionDocument(PanelNotesEdits, Observable):
    """The document of a session: style source, gallery, panels, settings and run history.

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
        self._board = BoardSettings()
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
    def history(self) -> tuple[RunRecord, ...]:
        """Runs, oldest first."""
        return tuple(self._history)

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
        for record in self._history:
            used.update(x.file for x in record.references if x.file)
            used.update(p.control.image for p in record.panels if p.control and p.control.image)
        return used

    def missing_files(self) -> list[str]:
        """Pictures of the gallery and panels whose copies are gone from the folder (a link
        in a copy's place counts as gone: the session never reads through links)."""
        wanted = [r.file for r in self._references]
        wanted += [p.control.image for p in self._panels if p.control.image]
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

    # --- panels -------------------------------------------------------------------------------

    def add_panel(
        self,
        prompt: str = "",
        *,
        index: int | None = None,
        seed: int | None = None,
        seed_locked: bool = False,
    ) -> Panel:
        """Insert a panel at ``index`` (default: the end). Without ``seed`` one is drawn."""
        if index is None:
            index = len(self._panels)
        if not 0 <= index <= len(self._panels):
            raise SessionError(f"cannot insert a panel at {index} ({len(self._panels)} panels)")
        panel = Panel(
            id=new_panel_id(),
            prompt=prompt,
            seed=self.draw_seed() if seed is None else check_seed(seed),
            seed_locked=bool(seed_locked),
        )
        self._panels.insert(index, panel)
        self._changed(observer.PANELS)
        return panel

    def add_panels(self, panels: Sequence[Panel], replace_all: bool = False) -> list[Panel]:
        """Append ready-made panels (each with a new id), or with ``replace_all`` make them the
        whole storyboard; one notification. Used by the storyboard text import."""
        ids = [p.id for p in panels]
        kept = [] if replace_all else self._panels
        if len(set(ids)) != len(ids) or set(ids) & {p.id for p in kept}:
            raise SessionError("two panels would share one id")
        if panels or replace_all:
            self._panels = [*kept, *panels]
            self._changed(observer.PANELS)
        return list(panels)

    def remove_panel(self, index: int) -> Panel:
        panel = self._panels.pop(self._index(index))
        self._changed(observer.PANELS)
        return panel

    def clear_panels(self) -> None:
        if self._panels:
            self._panels.clear()
            self._changed(observer.PANELS)

    def move_panel(self, index: int, to: int) -> None:
        """Move panel ``index`` so that it ends up at position ``to``."""
        self._index(index)
        if not 0 <= to < len(self._panels):
            raise SessionError(f"cannot move a panel to {to} ({len(self._panels)} panels)")
        if index != to:
            self._panels.insert(to, self._panels.pop(index))
            self._changed(observer.PANELS)

    def duplicate_panel(self, index: int) -> Panel:
        """A copy (new id, same prompt, seed, lock and control) right after panel ``index``."""
        source = self._panels[self._index(index)]
        copy = replace(source, id=new_panel_id())
        self._panels.insert(index + 1, copy)
        self._changed(observer.PANELS)
        return copy

    def update_panel(self, index: int, **changes: Any) -> Panel:
        """Change ``prompt``, ``seed``, ``seed_locked`` and/or ``size`` ((width, height),
        multiples of 64, or None for the session's size) and/or ``notes`` (a PanelNotes; see
        ``update_panel_notes``) of panel ``index``."""
        allowed = {"prompt", "seed", "seed_locked", "size", "notes"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise SessionError(f"panels have no field(s) {', '.join(unknown)}")
        if "seed_locked" in changes:
            changes["seed_locked"] = bool(changes["seed_locked"])
        old = self._panels[self._index(index)]
        new = replace(old, **changes)
        if new != old:
            self._panels[index] = new
            self._panel_changed(index)
        return new

    def _set_control(self, index: int, control: Control) -> Panel:
        old = self._panels[index]
        if control != old.control:
            self._panels[index] = replace(old, control=control)
            self._panel_changed(index)
        return self._panels[index]

    def update_panel_control(self, index: int, **changes: Any) -> Panel:
        """Change the control settings of panel ``index``: ``mode``, ``scale``,
        ``guidance_start``/``guidance_end``, ``canny_low``/``canny_high``, ``map_kind``."""
        if "image" in changes:
            raise SessionError("set the control picture with set_panel_control_picture()")
        old = self._panels[self._index(index)]
        try:
            control = replace(old.control, **changes)
        except TypeError as exc:
            raise SessionError(f"unknown control setting: {exc}") from None
        return self._set_control(index, control)

    def set_panel_control_picture(self, index: int, path: str | Path) -> Panel:
        """Copy a picture into ``controls/`` and make it panel ``index``'s control picture.

        = :func:`prepare_picture` then :meth:`set_panel_control_prepared`.
        """
        self._index(index)
        return self.set_panel_control_prepared(index, prepare_picture(path))

    def set_panel_control_data(self, index: int, data: bytes, name: str = "control.png") -> Panel:
        """Like :meth:`set_panel_control_picture` for picture bytes (e.g. from the clipboard)."""
        self._index(index)
        return self.set_panel_control_prepared(index, prepare_picture_data(data, name))

    def set_panel_control_prepared(self, index: int, prepared: PreparedPicture) -> Panel:
        """Make a prepared picture panel ``index``'s control picture (copied into ``controls/``).

        Cheap (nothing is decoded): the slow part was :func:`prepare_picture`.
        """
        self._index(index)
        control = replace(self._panels[index].control,
                          image=self.store_control_copy(prepared))
        return self._set_control(index, control)

    def store_control_copy(self, prepared: PreparedPicture) -> str:
        """Copy a control picture into ``controls/`` (not yet used by a panel); its
        session-relative path."""
        return files.store_copy(self.ensure_folder(), folders.CONTROLS, prepared)

    def clear_panel_control_picture(self, index: int) -> Panel:
        """Remove panel ``index``'s control picture (its mode and strength are kept)."""
        old = self._panels[self._index(index)]
        return self._set_control(index, replace(old.control, image=None))

    # --- style and gallery --------------------------------------------------------------------

    def _set_style(self, **changes: Any) -> Style:
        new = replace(self._style, **changes)
        if new != self._style:
            self._style = new
            self._changed(observer.STYLE)
        return new

    def set_style_text(self, text: str) -> None:
        """The text appended to every prompt (clears the "preset" label if it no longer matches)."""
        self._set_style(text=text, preset=self._style.preset if text == self._style.text else None)

    def set_reference_prompt(self, text: str) -> None:
        """What the generated reference shows (its prompt is this + ", " + the style text)."""
        self._set_style(reference_prompt=text)

    def set_reference_seed(self, seed: int | None = None, locked: bool | None = None) -> None:
        """Set the generated reference's seed and/or whether Generate keeps it."""
        changes: dict[str, Any] = {}
        if seed is not None:
            changes["reference_seed"] = check_seed(seed, "reference seed")
        if locked is not None:
            changes["reference_seed_locked"] = bool(locked)
        self._set_style(**changes)

    def reroll_reference(self) -> int:
        """Draw a new seed for the generated reference; returns it."""
        seed = self.draw_seed()
        self._set_style(reference_seed=seed)
        return seed

    def set_active_reference(self, ref_id: str | None) -> None:
        """Take the style from gallery picture ``ref_id`` alone; None: from the generated
        reference alone.

        Switching between a generated reference and pictures also moves guidance and the
        StyleAligned settings to the authors' defaults for the new source, unless the user
        changed them (see :meth:`GenerationSettings.for_source`).
        """
        self._check_source(ref_id)
        self._set_sources((StyleReference(ref_id),))

    def set_source_active(self, ref_id: str | None, active: bool, weight: float = 1.0) -> None:
        """Add a reference to the style's sources (with ``weight``) or take it out (spec
        section 11); ``ref_id`` None is the generated reference. Taking out the last one leaves
        the generated reference."""
        self._check_source(ref_id)
        sources = [x for x in self._style.sources if x.picture != ref_id]
        if active:
            old = self._style.weight_of(ref_id)
            sources.append(StyleReference(ref_id, weight if old is None else old))
        self._set_sources(tuple(sources) or (StyleReference(),))

    def set_source_weight(self, ref_id: str | None, weight: float) -> None:
        """Change an active reference's weight (>= 0; 0 keeps it listed without using it)."""
        if self._style.weight_of(ref_id) is None:
            raise SessionError("that reference is not active: mark it active first")
        self._set_sources(tuple(StyleReference(x.picture, weight) if x.picture == ref_id else x
                                for x in self._style.sources))

    def _check_source(self, ref_id: str | None) -> None:
        if ref_id is not None and self.reference(ref_id) is None:
            raise SessionError(f"no picture {ref_id!r} in the gallery")

    def _set_sources(self, sources: tuple[StyleReference, ...]) -> None:
        was_picture = self._style.uses_picture
        with self.batch():
            style = self._set_style(sources=sources)
            if style.uses_picture != was_picture:
                self._set_settings(self._settings.for_source(picture=style.uses_picture))

    def add_reference(self, path: str | Path) -> Reference:
        """Copy a picture file into ``references/`` and add it to the gallery.

        The first picture of an empty gallery becomes the active reference. Adding a picture
        that is already in the gallery returns the existing entry. A file that is no readable
        picture raises :class:`PictureError` naming it, and nothing changes.
        = :func:`prepare_picture` (slow for big pictures) then :meth:`add_prepared`.
        """
        return self.add_prepared(prepare_picture(path))

    def add_reference_data(self, data: bytes, name: str = "pasted.png") -> Reference:
        """Like :meth:`add_reference` for picture bytes (clipboard, "use as reference")."""
        return self.add_prepared(prepare_picture_data(data, name))

    def add_prepared(self, prepared: PreparedPicture) -> Reference:
        """Add a picture made by :func:`prepare_picture` to the gallery, as :meth:`add_reference`.

        Cheap (nothing is decoded: it writes the copy and adds the entry); call it on the
        session's thread. A picture already in the gallery returns the existing entry.
        """
        reference, _ = self._add_prepared(prepared)
        return reference

    def _add_prepared(self, prepared: PreparedPicture) -> tuple[Reference, bool]:
        """(the gallery entry, whether it is new)."""
        ref_id = prepared.content_id
        existing = self.reference(ref_id)
        if existing is not None and self.file(existing.file) is not None:
            return existing, False
        files.store_copy(self.ensure_folder(), folders.REFERENCES, prepared)
        if existing is not None:  # the entry was there but its copy had gone missing
            return existing, False
        reference = Reference(
            id=ref_id,
            file=f"{folders.REFERENCES}/{prepared.stored_name}",
            name=prepared.name,
            width=prepared.info.width,
            height=prepared.info.height,
        )
        with self.batch():
            first = not self._references
            self._references.append(reference)
            self._changed(observer.REFERENCES)
            if first and not self._style.uses_picture:
                self._set_sources((StyleReference(reference.id),))
        return reference, True

    def add_references(self, paths: Iterable[str | Path]) -> ReferenceImport:
        """Add many pictures (files, or folders searched recursively for picture files).

        Bad files do not stop the others: they are listed in ``errors``.
        """
        result = ReferenceImport()
        with self.batch():
            for file in picture_files(paths):
                try:
                    reference, added = self._add_prepared(prepare_picture(file))
                except PictureError as exc:
                    result.errors.append(exc)
                    continue
                (result.added if added else result.already_present).append(reference)
        return result

    def remove_reference(self, ref_id: str) -> Reference:
        """Take a picture out of the gallery (its copy stays until an explicit save cleans up)."""
        reference = self.reference(ref_id)
        if reference is None:
            raise SessionError(f"no picture {ref_id!r} in the gallery")
        with self.batch():
            self._references.remove(reference)
            self._changed(observer.REFERENCES)
            if self._style.weight_of(ref_id) is not None:
                sources = tuple(x for x in self._style.sources if x.picture != ref_id)
                self._set_sources(sources or (StyleReference(),))
        return reference

    def set_reference_caption(self, ref_id: str, caption: str) -> None:
        """Describe what a gallery picture shows (used when inverting it)."""
        reference = self.reference(ref_id)
        if reference is None:
            raise SessionError(f"no picture {ref_id!r} in the gallery")
        if caption != reference.caption:
            index = self._references.index(reference)
            self._references[index] = replace(reference, caption=caption)
            self._changed(observer.REFERENCES)

    # --- settings -----------------------------------------------------------------------------

    def _set_settings(self, settings: GenerationSettings) -> GenerationSettings:
        if settings != self._settings:
            self._settings = settings
            self._changed(observer.SETTINGS)
        return settings

    def update_settings(self, **changes: Any) -> GenerationSettings:
        """Change sampling settings (fields of :class:`GenerationSettings`); validated first."""
        try:
            settings = self._settings.replace(**changes)
        except TypeError as exc:
            raise SessionError(f"unknown setting: {exc}") from None
        return self._set_settings(settings)

    def set_style_aligned(self, settings: StyleAlignedSettings) -> GenerationSettings:
        return self._set_settings(self._settings.replace(style_aligned=settings))

    def update_style_aligned(self, **changes: Any) -> GenerationSettings:
        """Change StyleAligned knobs by name (``shared_score_shift=0.7``, ...)."""
        try:
            settings = self._settings.style_aligned.replace(**changes)
        except (TypeError, ValueError) as exc:
            raise SessionError(f"StyleAligned setting: {exc}") from None
        return self.set_style_aligned(settings)

    def reset_style_aligned(self) -> GenerationSettings:
        """The authors' StyleAligned defaults for the current source (picture or generated)."""
        _, defaults = source_defaults(self._style.uses_picture)
        return self.set_style_aligned(defaults)

    def apply_preset(
        self, preset: StylePreset, sampling: bool = True, style_aligned: bool = True
    ) -> None:
        """Take a preset's style text and negative prompt, and its suggested settings."""
        settings = preset.apply_to(self._settings, sampling=sampling, style_aligned=style_aligned)
        with self.batch():
            self._set_style(text=preset.style_text, preset=preset.name)
            self._set_settings(settings)

    # --- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-ready data (store.py adds the format and schema version)."""
        return {
            "style": self._style.to_dict(),
            "references": [r.to_dict() for r in self._references],
            "panels": [p.to_dict() for p in self._panels],
            "settings": self._settings.to_dict(),
            "board": self._board.to_dict(),
            "history": [r.to_dict() for r in self._history],
        }

    def edit_state(self) -> dict[str, Any]:
        """What the user edits (style, gallery, panels, settings; not the run history), as
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
                               (observer.BOARD, "_board")):
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
        session._history = [
            RunRecord.from_dict(x, f"history[{i}]") for i, x in enumerate(r.items("history"))
        ]
        for key in ("format", "schema_version", "app_version", "saved"):
            r.raw(key)  # bookkeeping of the file format, checked by store.py
        r.done()
        ids = [p.id for p in session._panels]
        if len(set(ids)) != len(ids):
            raise SessionError("two panels share one id")
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
