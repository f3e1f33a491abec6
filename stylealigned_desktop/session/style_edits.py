"""Editing the style source: the style text, the generated reference, the gallery and which
references the style comes from, with what weight (a mixin of
:class:`~stylealigned_desktop.session.document.SessionDocument`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import files, folders, observer
from .document_state import DocumentState
from .errors import PictureError, SessionError
from .json_fields import check_seed
from .pictures import PreparedPicture, picture_files, prepare_picture, prepare_picture_data
from .values import Reference, StyleReference


@dataclass
class ReferenceImport:
    """The outcome of adding many pictures: what was added, what was already there, what failed."""

    added: list[Reference] = field(default_factory=list)
    already_present: list[Reference] = field(default_factory=list)
    errors: list[PictureError] = field(default_factory=list)


class StyleEdits(DocumentState):
    """The style text, the generated reference, the gallery and the style's active sources."""

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
        section 11); ``ref_id`` None is the generated reference. Taking out the last one is
        refused: falling back to the generated reference would also move guidance and the
        StyleAligned settings, a change the artist did not ask for."""
        self._check_source(ref_id)
        sources = [x for x in self._style.sources if x.picture != ref_id]
        if active:
            old = self._style.weight_of(ref_id)
            sources.append(StyleReference(ref_id, weight if old is None else old))
        elif not sources:
            raise SessionError("the style needs a reference: mix in another one (or the "
                               "generated one) before leaving this one out")
        self._set_sources(tuple(sources))

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
