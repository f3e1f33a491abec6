"""Editing the storyboard's panels: adding, removing, moving, changing them and their
control pictures (a mixin of :class:`~stylealigned_desktop.session.document.SessionDocument`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import files, folders, observer
from .document_state import DocumentState
from .errors import SessionError
from .json_fields import check_seed
from .pictures import PreparedPicture, prepare_picture, prepare_picture_data
from .values import Control, Panel, new_panel_id


class PanelEdits(DocumentState):
    """The panels of the storyboard and their control pictures."""

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
        multiples of 64, or None for the session's size) with its ``size_mode`` (None, or
        "panorama" for a panorama preset; a size given without it is no panorama) and/or
        ``notes`` (a PanelNotes; see ``update_panel_notes``) of panel ``index``."""
        allowed = {"prompt", "seed", "seed_locked", "size", "size_mode", "notes"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise SessionError(f"panels have no field(s) {', '.join(unknown)}")
        if "seed_locked" in changes:
            changes["seed_locked"] = bool(changes["seed_locked"])
        if "size" in changes:
            changes.setdefault("size_mode", None)
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
