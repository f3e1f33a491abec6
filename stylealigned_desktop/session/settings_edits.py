"""Editing the generation settings: sampling, the StyleAligned knobs, presets (a mixin of
:class:`~stylealigned_desktop.session.document.SessionDocument`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..engine.settings import StyleAlignedSettings
from .base_sizes import SizeMove, panorama_on_base, preset_on_base
from .document_state import DocumentState
from .errors import SessionError
from .generation import GenerationSettings, source_defaults
from .presets import StylePreset


class SettingsEdits(DocumentState):
    """The sampling and StyleAligned settings, and presets."""

    def update_settings(self, **changes: Any) -> GenerationSettings:
        """Change sampling settings (fields of :class:`GenerationSettings`); validated first."""
        try:
            settings = self._settings.replace(**changes)
        except TypeError as exc:
            raise SessionError(f"unknown setting: {exc}") from None
        return self._set_settings(settings)

    def follow_base(self, old_native: int, new_native: int) -> tuple[SizeMove, ...]:
        """The model changed from one trained at ``old_native`` pixels a side to one trained at
        ``new_native``: the set's size and the panels' sizes that are presets of the old base
        (panoramas at its height) move to the new base's of the same aspect, as one change
        (``base_sizes``); sizes the artist typed stay. Returns what moved."""
        if old_native == new_native:
            return ()
        moves: list[SizeMove] = []
        with self.batch():
            old = (self._settings.width, self._settings.height)
            new = preset_on_base(old, old_native, new_native)
            if new is not None and new != old:
                self._set_settings(self._settings.replace(width=new[0], height=new[1]))
                moves.append(SizeMove(None, old, new))
            for index, panel in enumerate(self._panels):
                if panel.size is None:
                    continue
                panorama = panel.size_mode == "panorama"
                size = (panorama_on_base if panorama else preset_on_base)(panel.size, old_native, new_native)
                if size is not None and size != panel.size:
                    self._panels[index] = replace(panel, size=size)
                    self._panel_changed(index)
                    moves.append(SizeMove(panel.id, panel.size, size))
        return tuple(moves)

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
