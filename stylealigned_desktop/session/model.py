"""A storyboard session: :class:`Session` and the value types it holds (no Qt, no torch).

``Session`` = the document (``document.py`` and the modules it puts together: state, edits,
notifications, JSON form) plus generation (this module: planning runs with the pure
``planning.py``, filing their results, restoring what a past run used). Everything the GUI
does to a session goes through a ``Session`` method; the value types (:class:`Panel`,
:class:`Reference`, :class:`Style`, :class:`GenerationSettings`, ...) are frozen, so reading
them is always safe and every change is notified. Use the session from one thread (the GUI
thread); hand the engine only the immutable ``SetRequest`` of a ``RunPlan``. The session never
reads or writes ``session.json``: the store does (``store.py`` imports this module, never the
other way round).

API summary (``i`` is a 0-based panel index; methods raise :class:`SessionError`, a
``ValueError`` whose message is written for the user, and then nothing has changed)::

    s = Session()                         # untitled; lives in paths.data_dir()/autosave/...
    #   the session never reads or writes session.json itself: store.load_session(folder),
    #   store.save_session(s), store.save_session_as(s, folder), store.autosave_session(s)
    unsubscribe = s.subscribe(fn)         # fn(Change): kinds in observer.py (STYLE, PANELS, ...)
    with s.batch(): ...                   # several edits, one notification per kind

    # read
    s.folder s.title s.untitled s.dirty s.style s.references s.active_reference
    s.panels s.settings s.history s.path(relative) s.missing_files() s.cache_folder

    # panels
    s.add_panel(prompt="", index=None, seed=None, seed_locked=False) -> Panel
    s.remove_panel(i) / s.move_panel(i, j) / s.duplicate_panel(i) -> Panel
    s.update_panel(i, prompt=..., seed=..., seed_locked=..., size=(w, h) or None) -> Panel
    s.panel_index(panel_id) / s.panel(panel_id)
    s.set_panel_control_picture(i, path) / s.set_panel_control_data(i, data, name)
    s.set_panel_control_prepared(i, prepared)   # see prepare_picture below
    s.clear_panel_control_picture(i)
    s.update_panel_control(i, mode=..., scale=..., guidance_start=..., guidance_end=...,
                           canny_low=..., canny_high=..., map_kind=...)
    s.add_panels(panels, replace_all=False)     # ready-made Panels (the text import uses it)
    s.update_panel_notes(i, scene=..., shot=..., action=..., dialogue=..., notes=...,
                         camera=..., duration=...)   # notes_edits.py; scene/shot/duration None: auto
    s.board.default_duration; s.set_default_duration(seconds)
    s.panel_numbers() -> [PanelNumber(scene, shot, panel)]; s.panel_durations() -> [seconds]
    #   storyboard text (the CLI's --prompts-file format) in and out: prompts_file.py's
    #   import_panels_text/_file(s, ...) and export_panels_text/_file(s, ...)

    # characters (spec section 13; character_edits.py, characters.py)
    s.characters s.character(name) s.character_settings
    s.add_character(name, description="") -> Character   # fresh anchor seeds, locked
    s.update_character(name, name=..., description=..., words=(...), seeds_locked=...,
                       anchor_text=...)          # a new name is written into the prompts too
    s.remove_character(name); s.set_anchor_seed(name, anchor, seed); s.reroll_character(name)
    s.set_character_picture(name, anchor, path) / s.set_character_prepared(name, anchor, prepared)
    s.clear_character_picture(name, anchor)     # the anchor is generated again
    s.update_character_settings(character_dropout=..., character_layers=...,
                                character_shift=..., anchors_per_character=...)
    #   a panel names a character as [Name]: characters.named_characters(prompt)

    # style and gallery
    s.set_style_text(text); s.set_reference_prompt(text)
    s.set_reference_seed(seed=None, locked=None); s.reroll_reference() -> int
    s.add_reference(path) -> Reference          # copied into references/, validated with PIL
    s.add_reference_data(data, name) -> Reference  # clipboard bytes
    s.add_references(paths) -> ReferenceImport  # many files / folders; errors collected
    #   two steps, so a GUI decodes big pictures off its thread (add_reference = both):
    prepared = prepare_picture(path)            # module function: read, check, hash; any
    prepared = prepare_picture_data(data, name) #   thread, no session state; PictureError
    s.add_prepared(prepared) -> Reference       # cheap: writes the copy, adds it
    s.set_panel_control_prepared(i, prepared) -> Panel  # the same for a control picture
    s.remove_reference(ref_id); s.set_reference_caption(ref_id, caption)
    s.set_active_reference(ref_id_or_None)      # the style from this one picture (None: generated)
    s.set_source_active(ref_id_or_None, active, weight=1.0)  # several references (spec 11);
    #   leaving out the last one is refused (SessionError), never a silent fallback
    s.set_source_weight(ref_id_or_None, weight)  # weight >= 0, normalised when planned
    s.active_sources -> ((Reference or None, weight), ...)
    #   switching generated <-> picture (also by adding the first picture or removing the
    #   active one) moves guidance (5 <-> 10) and the StyleAligned settings (plain <->
    #   for_reference_image()) to the new source's authors' defaults unless the user changed them

    # settings and presets
    s.update_settings(steps=..., guidance=..., width=..., height=..., scheduler=...,
                      negative_prompt=..., micro_batch=..., model=..., controlnet_canny=...,
                      controlnet_depth=..., depth_model=..., ...) -> GenerationSettings
    s.update_style_aligned(shared_score_shift=..., ...); s.set_style_aligned(StyleAlignedSettings)
    s.reset_style_aligned()                     # the authors' defaults for the current source
    s.apply_preset(preset, sampling=True, style_aligned=True)

    # generation and history (the plan itself is built by planning.py, a pure function)
    s.build_request(only=None, default_model="", device="auto", dtype="auto") -> SetRequest
    #   cache_dir = s.cache_folder; ControlNet / depth model sources from the settings (None: default)
    plan = s.prepare_generate(...)              # fresh seeds for unlocked panels -> RunPlan
    plan = s.prepare_reroll(i, ...)             # panel i alone (new seed unless locked)
    #   the storyboard's seeds change only when record_run(plan, "finished") files the run
    #   engine.generate(plan.request, ...); write the run folder into plan.folder
    s.record_run(plan, status="finished", panel_files=None, consistency=None) -> RunRecord
    s.discard_plan(plan)                        # a run that produced nothing (failed early)
    s.set_run_consistency(run_id, score); s.remove_run(run_id, delete_files=True)
    s.restore_run(run_id, settings=True, seeds=True, panels=False) -> [notes]
    s.close()                                   # releases an untitled folder's lock

Elsewhere in this package:

- ``store`` (imports this module; never the other way): ``load_session``, ``save_session``
  (also drops unused picture copies), ``save_session_as``, ``autosave_session``, ``list_recoverable`` / ``recover_session`` / ``discard_recoverable`` (crash recovery on
  start), ``discard_untitled`` (the user closes an untitled session without saving),
  ``recent_sessions`` / ``remember_recent`` / ``forget_recent``.
- ``autosave.Autosaver(session, schedule=..., on_error=...)``: debounced autosave driven by a
  GUI timer (``poll()``), ``flush()`` on close. A titled session is autosaved in place (its
  own session.json, atomically); an untitled one in its autosave-area folder.
- ``presets``: ``load_presets()`` -> ``PresetLibrary(presets, problems)``,
  ``save_user_preset``, ``delete_user_preset``; ``StylePreset``.
- ``values``: ``SDXL_SIZES`` (size presets), ``MAX_SEED`` (seeds fit a Qt spin box).
- ``observer``: the change kinds ``STYLE REFERENCES PANELS PANEL SETTINGS BOARD CHARACTERS
  HISTORY SAVED``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.request import SetRequest
from . import files, folders, observer, planning
from .characters import Character, CharacterSettings, named_characters
from .document import ReferenceImport, SessionDocument
from .errors import PictureError, SessionError
from .generation import SDXL_SIZES, GenerationSettings, is_panorama_size
from .history import RunPlan, RunRecord
from .json_fields import MAX_SEED
from .notes import CAMERA_PRESETS, BoardSettings, PanelNotes, PanelNumber
from .observer import Change
from .pictures import PreparedPicture, prepare_picture, prepare_picture_data
from .planning import compose_prompt
from .presets import StylePreset
from .values import Control, Panel, Reference, Style, StyleReference

__all__ = [
    "MAX_SEED",
    "SDXL_SIZES",
    "Change",
    "Character",
    "CharacterSettings",
    "Control",
    "GenerationSettings",
    "CAMERA_PRESETS",
    "BoardSettings",
    "Panel",
    "PanelNotes",
    "PanelNumber",
    "PictureError",
    "PreparedPicture",
    "Reference",
    "ReferenceImport",
    "RunPlan",
    "RunRecord",
    "Session",
    "SessionError",
    "Style",
    "StylePreset",
    "compose_prompt",
    "named_characters",
    "prepare_picture",
    "prepare_picture_data",
]


@dataclass(frozen=True)
class RunSeeds:
    """The seeds a planned run drew: panel id -> (the panel's seed then, the run's), and the
    generated reference's (then, the run's) when it drew one."""

    panels: dict[str, tuple[int, int]]
    reference: tuple[int, int] | None = None
    characters: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    """Character name -> (its anchor seeds then, the run's), for characters not locked."""


class Session(SessionDocument):
    """A storyboard session: the document (style source, gallery, panels, settings, history;
    :class:`SessionDocument`) plus generation: planning runs and filing their results.

    ``folder`` is the session folder; an untitled session's folder lies under
    ``paths.data_dir()/autosave`` (created on the first write) until it is saved under a name.
    ``rng`` draws seeds (inject a seeded ``random.Random`` in tests).
    """

    def __init__(self, folder: str | Path | None = None, *, rng: random.Random | None = None):
        super().__init__(folder, rng=rng)
        self._planned_runs: set[str] = set()
        self._left_folders: list[Path] = []  # untitled folders to delete once their runs are in
        self._run_seeds: dict[str, RunSeeds] = {}
        """The seeds each planned run drew, written into the storyboard when it finishes."""

    # --- generation ---------------------------------------------------------------------------

    def _taken_run_ids(self) -> set[str]:
        return {r.id for r in self._history} | self._planned_runs | files.run_folder_names(self._folder)

    def _plan(
        self, only: Sequence[int] | None, default_model: str, device: str, dtype: str,
        seeds: RunSeeds | None = None,
    ) -> RunPlan:
        panels, style, characters = self._panels, self._style, self._characters
        if seeds is not None:  # the run's fresh seeds, not (yet) the storyboard's
            panels = [replace(p, seed=seeds.panels[p.id][1]) if p.id in seeds.panels else p
                      for p in panels]
            if seeds.reference is not None:
                style = replace(style, reference_seed=seeds.reference[1])
            characters = [replace(c, anchor_seeds=seeds.characters[c.name][1])
                          if c.name in seeds.characters else c for c in characters]
        return planning.plan_run(
            style=style, gallery=self.reference, panels=panels,
            settings=self._settings, outputs=files.contained(self._folder, folders.OUTPUTS),
            cache_dir=files.cache_folder(self._folder), file_of=self.file,
            taken_run_ids=self._taken_run_ids(),
            only=only, default_model=default_model, device=device, dtype=dtype,
            characters=characters, character_settings=self._character_settings,
        )

    def build_request(
        self,
        only: Sequence[int] | None = None,
        *,
        default_model: str = "",
        device: str = "auto",
        dtype: str = "auto",
    ) -> SetRequest:
        """The engine request for the current state, seeds as they are (nothing changes).

        Prompts are ``panel prompt + ", " + style text``. ``default_model`` is used when the
        session names no model (the app's configured one).
        """
        return self._plan(only, default_model, device, dtype).request

    def prepare_generate(
        self,
        only: Sequence[int] | None = None,
        *,
        default_model: str = "",
        device: str = "auto",
        dtype: str = "auto",
    ) -> RunPlan:
        """Plan a run with fresh seeds for the unlocked panels (and an unlocked generated
        reference). ``only`` limits the run (and the new seeds) to those panel indices.

        The storyboard keeps its seeds until the run is recorded as finished
        (:meth:`record_run`): a cancelled or failed run changes no seed, and a locked seed
        never changes. If the session cannot be generated (no panels, no model, missing
        picture...) a :class:`SessionError` is raised.
        """
        selected = range(len(self._panels)) if only is None else sorted(set(only))
        style = self._style
        new_reference = style.uses_generated and not style.reference_seed_locked
        return self._prepare(only, selected, new_reference, default_model, device, dtype,
                             new_anchors=True)

    def prepare_reroll(
        self, index: int, *, default_model: str = "", device: str = "auto", dtype: str = "auto"
    ) -> RunPlan:
        """Plan a run of panel ``index`` alone (``request.only == (index,)``), with a new seed
        unless its seed is locked (then it is drawn again with that seed: after a prompt or
        control change); the reference and the other panels keep theirs."""
        return self._prepare((index,), (index,), False, default_model, device, dtype)

    def _prepare(self, only, selected, new_reference: bool, default_model: str, device: str,
                 dtype: str, new_anchors: bool = False) -> RunPlan:
        self._plan(only, default_model, device, dtype)  # validate before drawing seeds
        panels = self._panels
        seeds = RunSeeds(
            panels={panels[i].id: (panels[i].seed, self.draw_seed())
                    for i in selected if not panels[i].seed_locked},
            reference=((self._style.reference_seed, self.draw_seed()) if new_reference
                       else None),
            characters={c.name: (c.anchor_seeds, tuple(self.draw_seed() for _ in c.anchor_seeds))
                        for c in self._characters if new_anchors and not c.seeds_locked},
        )
        plan = self._plan(only, default_model, device, dtype, seeds)
        self._planned_runs.add(plan.run_id)
        self._run_seeds[plan.run_id] = seeds
        self.ensure_folder()  # the engine writes the run folder in here
        return plan

    def _take_run_seeds(self, plan: RunPlan) -> None:
        """A finished run's seeds become the storyboard's, where the artist did not change or
        lock a seed meanwhile (their edit is newer than the run)."""
        seeds = self._run_seeds.pop(plan.run_id, None)
        if seeds is None:
            return
        for panel_id, (before, seed) in seeds.panels.items():
            index = next((i for i, p in enumerate(self._panels) if p.id == panel_id), None)
            if index is None:
                continue  # deleted meanwhile
            panel = self._panels[index]
            if not panel.seed_locked and panel.seed == before:
                self._panels[index] = replace(panel, seed=seed)
                self._panel_changed(index)
        style = self._style
        if (seeds.reference is not None and not style.reference_seed_locked
                and style.reference_seed == seeds.reference[0]):
            self._set_style(reference_seed=seeds.reference[1])
        for name, (before, drawn) in seeds.characters.items():
            character = self.character(name)
            if character is not None and not character.seeds_locked and \
                    character.anchor_seeds == before:
                self._characters[self._characters.index(character)] = replace(
                    character, anchor_seeds=drawn)
                self._changed(observer.CHARACTERS)

    def record_run(
        self,
        plan: RunPlan,
        status: str = "finished",
        panel_files: Mapping[int, str] | None = None,
        reference_file: str | None = None,
        consistency: float | None = None,
        message: str = "",
    ) -> RunRecord:
        """File a finished (or cancelled / failed) run in the history.

        By default the images are found by name in the run folder (``reference.png``,
        ``panel-NN.png`` for each generated panel, NN = index + 1). If the session was saved
        under another folder while the run was going, the run folder is moved into it.
        """
        folder = self._adopt_run_folder(plan)
        record = RunRecord.from_plan(
            plan, self._folder, status=status, panel_files=panel_files,
            reference_file=reference_file, consistency=consistency, message=message,
            run_folder=folder,
        )
        with self.batch():
            self._history = [r for r in self._history if r.id != record.id] + [record]
            if status == "finished":
                self._take_run_seeds(plan)
            self._plan_done(plan)
            self._changed(observer.HISTORY)
        return record

    def discard_plan(self, plan: RunPlan) -> None:
        """Forget a plan that produced nothing worth keeping (failed before any image).

        Its run folder is removed if the engine left it empty.
        """
        files.remove_empty_run_folder(plan.folder)
        self._plan_done(plan)

    @property
    def runs_in_progress(self) -> int:
        """Plans handed out and neither recorded nor discarded yet."""
        return len(self._planned_runs)

    def _adopt_run_folder(self, plan: RunPlan) -> Path:
        """The run's folder inside the current session folder (moved there after a save-as)."""
        move = any(plan.folder.resolve().is_relative_to(f.resolve()) for f in self._left_folders)
        return files.adopt_run_folder(self._folder, plan.run_id, plan.folder, move)

    def leave_folder(self, old: Path) -> None:
        """An untitled folder the session moved away from while runs still write there: it is
        deleted (its inversion cache kept) once the last running plan is recorded or discarded."""
        self._left_folders.append(old)

    def _plan_done(self, plan: RunPlan) -> None:
        self._planned_runs.discard(plan.run_id)
        self._run_seeds.pop(plan.run_id, None)
        if not self._planned_runs:
            for folder in self._left_folders:
                files.retire_untitled_folder(folder, self.cache_folder)
            self._left_folders.clear()

    def set_run_consistency(self, run_id: str, score: float | None) -> None:
        record = self.run(run_id)
        index = self._history.index(record)
        self._history[index] = replace(record, consistency=score)
        self._changed(observer.HISTORY)

    def runs_without_folder(self) -> list[str]:
        """The run folders (session-relative) of history entries whose folder is gone: a
        History > Delete whose new history a crash kept from being saved, or a folder deleted
        by hand. A run folder that is a link counts as gone."""
        gone = []
        for record in self._history:
            try:
                present = files.run_folder(self._folder, record.folder).is_dir()
            except files.ContainmentError:
                present = False
            if not present:
                gone.append(record.folder)
        return gone

    def missing_files(self) -> list[str]:
        """The pictures of the gallery and panels that are gone, and the folders of history
        runs that are gone (:meth:`runs_without_folder`)."""
        return sorted({*super().missing_files(), *self.runs_without_folder()})

    def drop_runs_without_folder(self) -> list[str]:
        """Drop the history entries whose run folder is gone (nothing on disk is touched);
        their folders."""
        gone = set(self.runs_without_folder())
        if gone:
            self._history = [r for r in self._history if r.folder not in gone]
            self._changed(observer.HISTORY)
        return sorted(gone)

    def remove_run(self, run_id: str, delete_files: bool = True) -> None:
        """Drop a run from the history and, by default, delete its run folder."""
        record = self.run(run_id)
        self._history.remove(record)
        if delete_files:
            pictures = [*(x.image or "" for x in record.references), *(p.file or "" for p in record.panels)]
            files.remove_run_files(self._folder, record.folder, pictures)
        self._changed(observer.HISTORY)

    def _restore_style(self, record: RunRecord, notes: list[str]) -> None:
        """The run's style text and references (with their weights and captions: a picture is
        inverted from its caption); pictures since deleted are added again from the run's copy
        when it still exists, else left out (noted)."""
        style_changes: dict[str, Any] = {"text": record.style_text}
        sources, gone = [], 0
        for run_style in record.references:
            if run_style.kind == "generated":
                style_changes.update(reference_prompt=run_style.subject, reference_seed=run_style.seed,
                                     reference_seed_locked=True)
                sources.append(StyleReference(None, run_style.weight))
                continue
            ref = self.reference(run_style.reference_id) if run_style.reference_id else None
            if ref is None and run_style.file and self.file(run_style.file) is not None:
                ref, _ = self._add_prepared(prepare_picture(self.file(run_style.file)))
            if ref is None:
                gone += 1
                continue
            self.set_reference_caption(ref.id, run_style.caption)
            sources = [x for x in sources if x.picture != ref.id]
            sources.append(StyleReference(ref.id, run_style.weight))
        if not sources:
            notes.append("the run's reference picture is gone; the style source is unchanged")
        elif gone:
            notes.append(f"{gone} reference picture(s) of the run are gone; left out of the style")
        if sources and sum(x.weight for x in sources) > 0:
            style_changes["sources"] = tuple(sources)
        if style_changes.get("text") != self._style.text:
            style_changes["preset"] = None
        self._set_style(**style_changes)

    def restore_run(
        self, run_id: str, *, settings: bool = True, seeds: bool = True, panels: bool = False
    ) -> list[str]:
        """Bring back what a past run used.

        ``settings``: its sampling/StyleAligned settings, style text and style source, and
        its characters (as it drew them, seeds locked) with their settings.
        ``seeds``: each panel still in the storyboard gets the seed it had in that run, locked
        (as copying a seed does in other tools). ``panels``: replace the storyboard with the
        run's panels (prompts, seeds locked, controls whose pictures still exist).
        Returns notes about what could not be restored (e.g. a reference picture since deleted).
        """
        record = self.run(run_id)
        notes: list[str] = []
        with self.batch():
            if settings:
                self._restore_style(record, notes)
                self._restore_characters(record.characters, record.character_settings, notes)
                # after the sources: re-adding a lost picture switches the source, and that
                # must not move the run's guidance to a default
                self._set_settings(record.settings)
            if panels:
                restored = []
                kept_notes = {p.id: p.notes for p in self._panels}  # the run does not carry them
                for run_panel in record.panels:
                    control = run_panel.control or Control()
                    if control.image and self.file(control.image) is None:
                        notes.append(
                            f"panel {run_panel.index + 1}'s control picture is gone; left without one"
                        )
                        control = replace(control, image=None)
                    restored.append(Panel(
                        id=run_panel.panel_id, prompt=run_panel.subject, seed=run_panel.seed,
                        seed_locked=True, control=control, size=run_panel.size,
                        notes=kept_notes.get(run_panel.panel_id, PanelNotes()),
                        # a run keeps sizes; a size of a panorama preset's shape was one
                        size_mode="panorama" if is_panorama_size(run_panel.size) else None,
                    ))
                self._panels = restored
                self._changed(observer.PANELS)
            elif seeds:
                for i, panel in enumerate(self._panels):
                    run_panel = record.panel(panel.id)
                    if run_panel is not None:
                        self.update_panel(i, seed=run_panel.seed, seed_locked=True)
                if not any(record.panel(p.id) for p in self._panels):
                    notes.append("none of the run's panels is still in the storyboard")
        return notes

