"""The storyboard document: :class:`Session` and the value types it holds (no Qt, no torch).

Everything the GUI does to a session goes through a ``Session`` method; the value types
(:class:`Panel`, :class:`Reference`, :class:`Style`, :class:`GenerationSettings`, ...) are
frozen, so reading them is always safe and every change is notified. Use the session from one
thread (the GUI thread); hand the engine only the immutable ``SetRequest`` of a ``RunPlan``.

API summary (``i`` is a 0-based panel index; methods raise :class:`SessionError`, a
``ValueError`` whose message is written for the user, and then nothing has changed)::

    s = Session()                         # untitled; lives in paths.data_dir()/autosave/...
    s = Session.open(folder)              # = store.load_session(folder)
    s.save(); s.save_as(folder)           # = store.save_session / store.save_session_as
    unsubscribe = s.subscribe(fn)         # fn(Change): kinds in observer.py (STYLE, PANELS, ...)
    with s.batch(): ...                   # several edits, one notification per kind

    # read
    s.folder s.title s.untitled s.dirty s.style s.references s.active_reference
    s.panels s.settings s.history s.path(relative) s.missing_files() s.cache_folder

    # panels
    s.add_panel(prompt="", index=None, seed=None, seed_locked=False) -> Panel
    s.remove_panel(i) / s.move_panel(i, j) / s.duplicate_panel(i) -> Panel
    s.update_panel(i, prompt=..., seed=..., seed_locked=...) -> Panel
    s.panel_index(panel_id) / s.panel(panel_id)
    s.set_panel_control_picture(i, path) / s.set_panel_control_data(i, data, name)
    s.set_panel_control_prepared(i, prepared)   # see prepare_picture below
    s.clear_panel_control_picture(i)
    s.update_panel_control(i, mode=..., scale=..., guidance_start=..., guidance_end=...,
                           canny_low=..., canny_high=..., map_kind=...)
    s.import_panels_text(text, replace_all=False, base=None, source=...) -> [Panel]
    s.import_panels_file(path, replace_all=False) -> [Panel]   # all or nothing
    s.export_panels_text() -> str;  s.export_panels_file(path)
    #   the CLI's --prompts-file format (prompts_file.py): "prompt | seed=N | control=MODE:PATH
    #   | scale= | start= | end= | low= | high= | kind=", one panel a line

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
    s.set_active_reference(ref_id_or_None)      # None: generated reference from the style text
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

    # generation and history
    s.build_request(only=None, default_model="", device="auto", dtype="auto") -> SetRequest
    #   cache_dir = s.cache_folder; ControlNet / depth model sources from the settings (None: default)
    plan = s.prepare_generate(...)              # fresh seeds for unlocked panels -> RunPlan
    plan = s.prepare_reroll(i, ...)             # new seed for panel i, request.only == (i,)
    #   engine.generate(plan.request, ...); write the run folder into plan.folder
    s.record_run(plan, status="finished", panel_files=None, consistency=None) -> RunRecord
    s.discard_plan(plan)                        # a run that produced nothing (failed early)
    s.set_run_consistency(run_id, score); s.remove_run(run_id, delete_files=True)
    s.restore_run(run_id, settings=True, seeds=True, panels=False) -> [notes]
    s.close()                                   # releases an untitled folder's lock

Elsewhere in this package:

- ``store``: ``load_session``, ``save_session``, ``save_session_as``, ``autosave_session``,
  ``list_recoverable`` / ``recover_session`` / ``discard_recoverable`` (crash recovery on
  start), ``discard_untitled`` (the user closes an untitled session without saving),
  ``recent_sessions`` / ``remember_recent`` / ``forget_recent``.
- ``autosave.Autosaver(session, schedule=..., on_error=...)``: debounced autosave driven by a
  GUI timer (``poll()``), ``flush()`` on close. A titled session is autosaved in place (its
  own session.json, atomically); an untitled one in its autosave-area folder.
- ``presets``: ``load_presets()`` -> ``PresetLibrary(presets, problems)``,
  ``save_user_preset``, ``delete_user_preset``; ``StylePreset``.
- ``values``: ``SDXL_SIZES`` (size presets), ``MAX_SEED`` (seeds fit a Qt spin box).
- ``observer``: the change kinds ``STYLE REFERENCES PANELS PANEL SETTINGS HISTORY SAVED``.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import prompts_file
from ..engine.request import (
    GeneratedReference,
    PanelControl,
    ReferencePicture,
    SetRequest,
)
from ..engine.request import Panel as RequestPanel
from ..engine.settings import StyleAlignedSettings
from . import folders, observer
from .errors import PictureError, SessionError
from .history import RunPlan, RunRecord, RunStyle, new_run_id
from .observer import Change, Observable
from .pictures import (
    PreparedPicture,
    picture_extensions,
    prepare_picture,
    prepare_picture_data,
    store_picture,
)
from .presets import StylePreset
from .values import (
    MAX_SEED,
    SDXL_SIZES,
    Control,
    GenerationSettings,
    Panel,
    Reader,
    Reference,
    Style,
    check_seed,
    source_defaults,
)

__all__ = [
    "MAX_SEED",
    "SDXL_SIZES",
    "Change",
    "Control",
    "GenerationSettings",
    "Panel",
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
    "prepare_picture",
    "prepare_picture_data",
]


def compose_prompt(subject: str, style_text: str) -> str:
    """The final prompt: ``subject + ", " + style_text`` (either alone when the other is empty)."""
    subject, style_text = subject.strip(), style_text.strip()
    if subject and style_text:
        return f"{subject}, {style_text}"
    return subject or style_text


def _panel_line_number(text: str, k: int) -> int:
    """The 1-based line number of the ``k``-th (0-based) panel line of a storyboard text.

    Only needed for error messages: ``prompts_file.parse_text`` returns the panels without
    their line numbers, and a panel line is one ``parse_line`` does not skip.
    """
    numbers = (n for n, line in enumerate(text.splitlines(), start=1)
               if prompts_file.parse_line(line) is not None)
    return next(itertools.islice(numbers, k, None))


def _new_panel_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class ReferenceImport:
    """The outcome of adding many pictures: what was added, what was already there, what failed."""

    added: list[Reference] = field(default_factory=list)
    already_present: list[Reference] = field(default_factory=list)
    errors: list[PictureError] = field(default_factory=list)


class Session(Observable):
    """A storyboard session: style source, gallery, panels, settings and run history.

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
        self._style = Style(reference_seed=self._draw_seed())
        self._references: list[Reference] = []
        self._panels: list[Panel] = []
        self._settings = GenerationSettings()
        self._history: list[RunRecord] = []
        self._planned_runs: set[str] = set()
        self._left_folders: list[Path] = []  # untitled folders to delete once their runs are in
        self._dirty = False

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
        """The gallery picture used as style reference, or None (generated reference)."""
        return self.reference(self._style.active_reference) if self._style.active_reference else None

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
        """The absolute path of a session-relative file (``references/ab12.png``)."""
        return self._folder.joinpath(*relative.split("/"))

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
            if record.style.file:
                used.add(record.style.file)
            used.update(p.control.image for p in record.panels if p.control and p.control.image)
        return used

    def missing_files(self) -> list[str]:
        """Pictures of the gallery and panels whose copies are gone from the folder."""
        wanted = [r.file for r in self._references]
        wanted += [p.control.image for p in self._panels if p.control.image]
        return sorted({f for f in wanted if not self.path(f).is_file()})

    # --- notification helpers -----------------------------------------------------------------

    def _changed(self, kind: str, index: int | None = None, panel_id: str | None = None) -> None:
        change = Change(kind, index, panel_id)
        if change.persistent:
            self._dirty = True
        self._notify(change)

    def _panel_changed(self, index: int) -> None:
        self._changed(observer.PANEL, index, self._panels[index].id)

    def _draw_seed(self) -> int:
        return self._rng.randint(0, MAX_SEED)

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self._panels):
            raise SessionError(
                f"panel {index!r} does not exist (the storyboard has {len(self._panels)} panels)"
            )
        return index

    def _ensure_folder(self) -> Path:
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
            id=_new_panel_id(),
            prompt=prompt,
            seed=self._draw_seed() if seed is None else check_seed(seed),
            seed_locked=bool(seed_locked),
        )
        self._panels.insert(index, panel)
        self._changed(observer.PANELS)
        return panel

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
        copy = replace(source, id=_new_panel_id())
        self._panels.insert(index + 1, copy)
        self._changed(observer.PANELS)
        return copy

    def update_panel(self, index: int, **changes: Any) -> Panel:
        """Change ``prompt``, ``seed`` and/or ``seed_locked`` of panel ``index``."""
        allowed = {"prompt", "seed", "seed_locked"}
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
                          image=self._store_control_copy(prepared))
        return self._set_control(index, control)

    def _store_control_copy(self, prepared: PreparedPicture) -> str:
        """Copy a control picture into ``controls/``; its session-relative path."""
        store_picture(prepared.data, self._ensure_folder() / folders.CONTROLS,
                      prepared.stored_name)
        return f"{folders.CONTROLS}/{prepared.stored_name}"

    def clear_panel_control_picture(self, index: int) -> Panel:
        """Remove panel ``index``'s control picture (its mode and strength are kept)."""
        old = self._panels[self._index(index)]
        return self._set_control(index, replace(old.control, image=None))

    def import_panels_text(
        self,
        text: str,
        replace_all: bool = False,
        *,
        base: str | Path | None = None,
        source: str = "storyboard text",
    ) -> list[Panel]:
        """Add a panel per line of a plain-text storyboard, the format of ``stylealigned
        generate --prompts-file`` (:mod:`stylealigned_desktop.prompts_file`).

        Blank and ``#`` lines are ignored. ``seed=N`` gives the panel seed N, locked (without
        it a seed is drawn, unlocked). ``control=MODE:PATH`` copies the picture into
        ``controls/`` (as :meth:`set_panel_control_picture` does) with the line's ``scale``,
        ``start``/``end``, ``low``/``high`` and ``kind`` (the map kind); what a line leaves
        out keeps :class:`Control`'s defaults. A relative PATH is relative to ``base`` (the
        imported file's folder); text without a ``base`` needs absolute paths.

        All or nothing: a malformed line, a bad value or an unreadable control picture raises
        :class:`SessionError` naming ``source`` and the line number, and nothing changes.
        With ``replace_all`` the current panels are dropped first. Returns the new panels.
        """
        folder = None if base is None else Path(base).expanduser().absolute()
        try:
            lines = prompts_file.parse_text(text, source, folder)
        except prompts_file.PromptsFileError as exc:
            raise SessionError(str(exc)) from None

        def where(k: int) -> str:
            return f"{source}:{_panel_line_number(text, k)}"

        # everything is checked (and read) before anything is written
        checked: list[tuple[prompts_file.PanelLine, Control, PreparedPicture | None]] = []
        for k, line in enumerate(lines):
            try:
                if line.seed is not None:
                    check_seed(line.seed)
                control, picture = self._control_of_line(line)
            except PictureError as exc:
                raise SessionError(f"{where(k)}: control picture {exc.path}: {exc.reason}") from None
            except SessionError as exc:
                raise SessionError(f"{where(k)}: {exc}") from None
            checked.append((line, control, picture))
        new = []
        for k, (line, control, picture) in enumerate(checked):
            if picture is not None:
                try:
                    image = self._store_control_copy(picture)
                except OSError as exc:
                    raise SessionError(
                        f"{where(k)}: the control picture cannot be copied into the session "
                        f"({exc.strerror or exc})"
                    ) from None
                control = replace(control, image=image)
            new.append(Panel(
                id=_new_panel_id(),
                prompt=line.prompt,
                seed=self._draw_seed() if line.seed is None else line.seed,
                seed_locked=line.seed is not None,
                control=control,
            ))
        if replace_all:
            self._panels = new
        else:
            self._panels.extend(new)
        if new or replace_all:
            self._changed(observer.PANELS)
        return new

    @staticmethod
    def _control_of_line(
        line: prompts_file.PanelLine,
    ) -> tuple[Control, PreparedPicture | None]:
        """A storyboard line's control settings (no picture yet) and its picture (read and
        checked, not copied)."""
        if not line.control_mode:
            return Control(), None
        control = Control(mode=line.control_mode, **line.control_values(Control()))
        picture = Path(line.control_image)
        if not picture.is_absolute():
            raise SessionError(
                f"the control picture {picture} is a relative path: give a full path "
                "(in an imported file, relative paths start from the file's folder)"
            )
        return control, prepare_picture(picture)

    def export_panels_text(self) -> str:
        """The storyboard as plain text (:func:`prompts_file.format_line`, one panel a line)
        that :meth:`import_panels_text` and ``stylealigned generate --prompts-file`` read back.

        Locked seeds are written (``seed=N``), unlocked ones are not (they are drawn anew);
        a control is written as ``control=MODE:<absolute path of the session's copy>`` with
        its settings that differ from :class:`Control`'s defaults (``kind`` always for a
        map). Line breaks in a prompt become spaces; panels without a prompt are left out
        (a line needs one).
        """
        d = Control()
        lines = []
        for panel in self._panels:
            prompt = " ".join(panel.prompt.split())
            if not prompt:
                continue
            control: dict[str, Any] = {}
            c = panel.control
            if c.image:
                control = {"control_mode": c.mode, "control_image": str(self.path(c.image))}
                for key, name in (("scale", "scale"), ("start", "guidance_start"),
                                  ("end", "guidance_end"), ("low", "canny_low"),
                                  ("high", "canny_high"), ("kind", "map_kind")):
                    if getattr(c, name) != getattr(d, name) or (key == "kind" and c.mode == "map"):
                        control[key] = getattr(c, name)
            seed = panel.seed if panel.seed_locked else None
            lines.append(prompts_file.format_line(
                prompts_file.PanelLine(prompt=prompt, seed=seed, **control)
            ))
        return "".join(f"{line}\n" for line in lines)

    def import_panels_file(self, path: str | Path, replace_all: bool = False) -> list[Panel]:
        """Read a plain-text storyboard file (UTF-8; see :meth:`import_panels_text`) and add its
        panels; relative control paths start from the file's folder."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise SessionError(f"{path.name}: the file does not exist") from None
        except UnicodeDecodeError:
            raise SessionError(f"{path.name}: not a UTF-8 text file") from None
        except OSError as exc:
            raise SessionError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
        return self.import_panels_text(
            text, replace_all=replace_all, base=path.absolute().parent, source=path.name
        )

    def export_panels_file(self, path: str | Path) -> None:
        """Write :meth:`export_panels_text` to ``path`` (atomically)."""
        from .atomic import write_text_atomic

        try:
            write_text_atomic(path, self.export_panels_text())
        except OSError as exc:
            raise SessionError(f"{Path(path).name}: cannot be written ({exc.strerror or exc})") from None

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
        seed = self._draw_seed()
        self._set_style(reference_seed=seed)
        return seed

    def set_active_reference(self, ref_id: str | None) -> None:
        """Use gallery picture ``ref_id`` as the style reference; None: a generated reference.

        Switching between a generated reference and a picture also moves guidance and the
        StyleAligned settings to the authors' defaults for the new source, unless the user
        changed them (see :meth:`GenerationSettings.for_source`).
        """
        if ref_id is not None and self.reference(ref_id) is None:
            raise SessionError(f"no picture {ref_id!r} in the gallery")
        self._set_source(ref_id)

    def _set_source(self, ref_id: str | None) -> None:
        was_picture = self._style.active_reference is not None
        with self.batch():
            self._set_style(active_reference=ref_id)
            if (ref_id is not None) != was_picture:
                self._set_settings(self._settings.for_source(picture=ref_id is not None))

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
        if existing is not None and self.path(existing.file).is_file():
            return existing, False
        store_picture(prepared.data, self._ensure_folder() / folders.REFERENCES,
                      prepared.stored_name)
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
            if first and self._style.active_reference is None:
                self._set_source(reference.id)
        return reference, True

    def add_references(self, paths: Iterable[str | Path]) -> ReferenceImport:
        """Add many pictures (files, or folders searched recursively for picture files).

        Bad files do not stop the others: they are listed in ``errors``.
        """
        result = ReferenceImport()
        extensions = picture_extensions()
        files: list[Path] = []
        for item in paths:
            item = Path(item)
            if item.is_dir():
                files.extend(
                    f for f in sorted(item.rglob("*"))
                    if f.is_file() and f.suffix.lower() in extensions
                    and not any(part.startswith(".") for part in f.relative_to(item).parts)
                )
            else:
                files.append(item)
        with self.batch():
            for file in files:
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
            if self._style.active_reference == ref_id:
                self._set_source(None)
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
        _, defaults = source_defaults(self._style.active_reference is not None)
        return self.set_style_aligned(defaults)

    def apply_preset(
        self, preset: StylePreset, sampling: bool = True, style_aligned: bool = True
    ) -> None:
        """Take a preset's style text and negative prompt, and its suggested settings."""
        settings = preset.apply_to(self._settings, sampling=sampling, style_aligned=style_aligned)
        with self.batch():
            self._set_style(text=preset.style_text, preset=preset.name)
            self._set_settings(settings)

    # --- generation ---------------------------------------------------------------------------

    def _style_source(self) -> tuple[GeneratedReference | ReferencePicture, RunStyle]:
        style = self._style
        reference = self.active_reference
        if style.active_reference is not None and reference is None:
            raise SessionError("the active reference picture is no longer in the gallery")
        if reference is not None:
            path = self.path(reference.file)
            if not path.is_file():
                raise SessionError(
                    f"the reference picture {reference.name or reference.file} is missing from "
                    f"the session folder ({reference.file}); remove it or add it again"
                )
            source = ReferencePicture(
                path=str(path),
                caption=reference.caption,
                inversion_guidance=self._settings.inversion_guidance,
                inversion_offset=self._settings.inversion_offset,
            )
            run_style = RunStyle(
                kind="picture", reference_id=reference.id, file=reference.file,
                caption=reference.caption,
            )
            return source, run_style
        prompt = compose_prompt(style.reference_prompt, style.text)
        if not prompt:
            raise SessionError(
                "there is no style yet: write a style text or a reference prompt, "
                "or choose a reference picture"
            )
        return (
            GeneratedReference(prompt=prompt, seed=style.reference_seed),
            RunStyle(kind="generated", prompt=prompt, subject=style.reference_prompt.strip(),
                     seed=style.reference_seed),
        )

    def _request_panel(self, index: int, panel: Panel) -> tuple[RequestPanel, Control | None]:
        prompt = compose_prompt(panel.prompt, self._style.text)
        if not prompt:
            raise SessionError(f"panel {index + 1} has no prompt and there is no style text")
        control = panel.control if panel.control.image else None
        request_control = None
        if control is not None:
            path = self.path(control.image)
            if not path.is_file():
                raise SessionError(
                    f"panel {index + 1}'s control picture is missing from the session folder "
                    f"({control.image}); choose it again or remove it"
                )
            request_control = PanelControl(
                image=str(path),
                mode=control.mode,
                scale=control.scale,
                guidance_start=control.guidance_start,
                guidance_end=control.guidance_end,
                canny_low=control.canny_low,
                canny_high=control.canny_high,
                map_kind=control.map_kind,
            )
        return RequestPanel(prompt=prompt, seed=panel.seed, control=request_control), control

    def _plan(
        self, only: Sequence[int] | None, default_model: str, device: str, dtype: str
    ) -> RunPlan:
        if not self._panels:
            raise SessionError("the storyboard has no panels: add at least one")
        model = self._settings.model.strip() or default_model.strip()
        if not model:
            raise SessionError("no model is chosen: pick one in the model dialog")
        if only is not None:
            for i in only:
                self._index(i)
        source, run_style = self._style_source()
        built = [self._request_panel(i, p) for i, p in enumerate(self._panels)]
        try:
            request = SetRequest(
                model=model,
                style=source,
                panels=tuple(b[0] for b in built),
                sampling=self._settings.sampling(),
                settings=self._settings.style_aligned,
                micro_batch=self._settings.micro_batch,
                device=device,
                dtype=dtype,
                only=None if only is None else tuple(only),
                cache_dir=str(self.cache_folder),  # a reference picture is inverted once per session
                **self._settings.engine_choices(),
            )
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        taken = {r.id for r in self._history} | self._planned_runs
        outputs = self._folder / folders.OUTPUTS
        if outputs.is_dir():
            taken |= {p.name for p in outputs.iterdir()}
        run_id = new_run_id(taken)
        return RunPlan(
            run_id=run_id,
            folder=outputs / run_id,
            request=request,
            panel_ids=tuple(p.id for p in self._panels),
            subjects=tuple(p.prompt.strip() for p in self._panels),
            controls=tuple(b[1] for b in built),
            style=run_style,
            style_text=self._style.text.strip(),
            settings=replace(self._settings, model=model),
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
        """Draw fresh seeds for the unlocked panels (and an unlocked generated reference), then
        plan the run. ``only`` limits the run (and the new seeds) to those panel indices.

        If the session cannot be generated (no panels, no model, missing picture...) a
        :class:`SessionError` is raised before any seed changes.
        """
        self._plan(only, default_model, device, dtype)  # validate before changing seeds
        selected = range(len(self._panels)) if only is None else sorted(set(only))
        with self.batch():
            for i in selected:
                if not self._panels[i].seed_locked:
                    self._panels[i] = replace(self._panels[i], seed=self._draw_seed())
                    self._panel_changed(i)
            if self._style.active_reference is None and not self._style.reference_seed_locked:
                self._set_style(reference_seed=self._draw_seed())
        plan = self._plan(only, default_model, device, dtype)
        self._planned_runs.add(plan.run_id)
        self._ensure_folder()  # the engine writes the run folder in here
        return plan

    def prepare_reroll(
        self, index: int, *, default_model: str = "", device: str = "auto", dtype: str = "auto"
    ) -> RunPlan:
        """Give panel ``index`` a new seed (even if locked; the lock stays) and plan a run of
        that panel alone (``request.only == (index,)``); the other panels keep their images."""
        self._plan((index,), default_model, device, dtype)
        self.update_panel(index, seed=self._draw_seed())
        plan = self._plan((index,), default_model, device, dtype)
        self._planned_runs.add(plan.run_id)
        self._ensure_folder()
        return plan

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
        self._history = [r for r in self._history if r.id != record.id] + [record]
        self._plan_done(plan)
        self._changed(observer.HISTORY)
        return record

    def discard_plan(self, plan: RunPlan) -> None:
        """Forget a plan that produced nothing worth keeping (failed before any image).

        Its run folder is removed if the engine left it empty.
        """
        folder = plan.folder
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        self._plan_done(plan)

    @property
    def runs_in_progress(self) -> int:
        """Plans handed out and neither recorded nor discarded yet."""
        return len(self._planned_runs)

    def _adopt_run_folder(self, plan: RunPlan) -> Path:
        """The run's folder inside the current session folder (moved there after a save-as)."""
        target = self._folder / folders.OUTPUTS / plan.run_id
        source = plan.folder
        if source.absolute() == target.absolute() or not source.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, dirs_exist_ok=True)
        if any(source.resolve().is_relative_to(f.resolve()) for f in self._left_folders):
            shutil.rmtree(source, ignore_errors=True)
        return target

    def _plan_done(self, plan: RunPlan) -> None:
        self._planned_runs.discard(plan.run_id)
        if not self._planned_runs:
            for folder in self._left_folders:
                if folders.is_in_autosave_root(folder):
                    self._keep_cache_of(folder)
                    shutil.rmtree(folder, ignore_errors=True)
            self._left_folders.clear()

    def _keep_cache_of(self, folder: Path) -> None:
        """Copy inversion trajectories a run wrote into ``folder`` after the session had moved
        away (save-as mid-run) into the current cache: an inversion costs about as much as
        generating a picture. A copy that fails only means it is recomputed later."""
        old = folder / folders.CACHE
        if old.is_dir():
            with contextlib.suppress(OSError):
                shutil.copytree(old, self.cache_folder, dirs_exist_ok=True,
                                ignore=folders.ignore_temporaries)

    def set_run_consistency(self, run_id: str, score: float | None) -> None:
        record = self.run(run_id)
        index = self._history.index(record)
        self._history[index] = replace(record, consistency=score)
        self._changed(observer.HISTORY)

    def remove_run(self, run_id: str, delete_files: bool = True) -> None:
        """Drop a run from the history and, by default, delete its run folder."""
        record = self.run(run_id)
        self._history.remove(record)
        if delete_files:
            folder = self.path(record.folder)
            if folder.is_dir() and folder.resolve().is_relative_to(self._folder.resolve()):
                shutil.rmtree(folder, ignore_errors=True)
        self._changed(observer.HISTORY)

    def restore_run(
        self, run_id: str, *, settings: bool = True, seeds: bool = True, panels: bool = False
    ) -> list[str]:
        """Bring back what a past run used.

        ``settings``: its sampling/StyleAligned settings, style text and style source.
        ``seeds``: each panel still in the storyboard gets the seed it had in that run, locked
        (as copying a seed does in other tools). ``panels``: replace the storyboard with the
        run's panels (prompts, seeds locked, controls whose pictures still exist).
        Returns notes about what could not be restored (e.g. a reference picture since deleted).
        """
        record = self.run(run_id)
        notes: list[str] = []
        with self.batch():
            if settings:
                style_changes: dict[str, Any] = {"text": record.style_text}
                if record.style.kind == "generated":
                    style_changes.update(
                        reference_prompt=record.style.subject,
                        reference_seed=record.style.seed,
                        reference_seed_locked=True,
                        active_reference=None,
                    )
                elif record.style.reference_id and self.reference(record.style.reference_id):
                    style_changes["active_reference"] = record.style.reference_id
                elif record.style.file and self.path(record.style.file).is_file():
                    ref, _ = self._add_prepared(prepare_picture(self.path(record.style.file)))
                    if record.style.caption:
                        self.set_reference_caption(ref.id, record.style.caption)
                    style_changes["active_reference"] = ref.id
                else:
                    notes.append("the run's reference picture is gone; the style source is unchanged")
                if style_changes.get("text") != self._style.text:
                    style_changes["preset"] = None
                self._set_style(**style_changes)
                # after the source: re-adding a lost picture switches the source, and that
                # must not move the run's guidance to a default
                self._set_settings(record.settings)
            if panels:
                restored = []
                for run_panel in record.panels:
                    control = run_panel.control or Control()
                    if control.image and not self.path(control.image).is_file():
                        notes.append(
                            f"panel {run_panel.index + 1}'s control picture is gone; left without one"
                        )
                        control = replace(control, image=None)
                    restored.append(Panel(
                        id=run_panel.panel_id, prompt=run_panel.subject, seed=run_panel.seed,
                        seed_locked=True, control=control,
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

    # --- files --------------------------------------------------------------------------------

    def collect_garbage(self) -> list[str]:
        """Delete copies in references/ and controls/ that nothing refers to any more.

        Called by an explicit save (not by autosave, so an undo-like re-add stays cheap).
        Returns the session-relative paths removed.
        """
        used = self.referenced_files()
        removed = []
        for sub in (folders.REFERENCES, folders.CONTROLS):
            folder = self._folder / sub
            if not folder.is_dir():
                continue
            for file in folder.iterdir():
                rel = f"{sub}/{file.name}"
                if file.is_file() and rel not in used:
                    file.unlink(missing_ok=True)
                    removed.append(rel)
        return sorted(removed)

    # --- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-ready data (store.py adds the format and schema version)."""
        return {
            "style": self._style.to_dict(),
            "references": [r.to_dict() for r in self._references],
            "panels": [p.to_dict() for p in self._panels],
            "settings": self._settings.to_dict(),
            "history": [r.to_dict() for r in self._history],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], folder: str | Path, *, rng: random.Random | None = None
    ) -> Session:
        """A session from :meth:`to_dict` data (already migrated to the current schema)."""
        r = Reader(data, "session")
        session = cls(folder, rng=rng)
        session._style = Style.from_dict(r.obj("style", {}), "style")
        session._references = [
            Reference.from_dict(x, f"references[{i}]") for i, x in enumerate(r.items("references"))
        ]
        session._panels = [Panel.from_dict(x, f"panels[{i}]") for i, x in enumerate(r.items("panels"))]
        session._settings = GenerationSettings.from_dict(r.obj("settings", {}), "settings")
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
        if session._style.active_reference is not None and session._style.active_reference not in ref_ids:
            raise SessionError(
                f"style.active_reference {session._style.active_reference!r} is not in the gallery"
            )
        return session

    def _mark_saved(self, folder: Path | None = None, untitled: bool | None = None) -> None:
        """Called by store.py after a successful write (and a move, for save-as)."""
        if folder is not None:
            self._folder = folder
        if untitled is not None:
            self._untitled = untitled
        self._dirty = False
        self._changed(observer.SAVED)

    @classmethod
    def open(cls, path: str | Path, allow_missing: bool = False) -> Session:
        """Load a session folder (see :func:`store.load_session`)."""
        from .store import load_session

        return load_session(path, allow_missing=allow_missing)

    def save(self) -> Path:
        """Write session.json (see :func:`store.save_session`); untitled sessions need save_as."""
        from .store import save_session

        return save_session(self)

    def save_as(self, folder: str | Path) -> Path:
        """Save under a new folder (see :func:`store.save_session_as`)."""
        from .store import save_session_as

        return save_session_as(self, folder)

    def close(self) -> None:
        """Release the session folder (an untitled one stays recoverable until discarded)."""
        folders.release_lock(self._folder)
