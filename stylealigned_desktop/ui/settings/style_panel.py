"""The Style panel: a preset, the style text every prompt gets, and the generated reference
(its prompt, seed and lock). Bound to a session like the other panels; user presets are saved to
the config folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...session import observer
from ...session.errors import SessionError
from ...session.json_fields import MAX_SEED as MAX_SEED_
from ..support import connect_command, files_pass_through, small_combo
from ..support import icon as icon_


class StylePanel(QWidget):
    """The style: preset, style text, and the generated reference (prompt and seed).

    Bound to a session like the other panels; user presets are saved to the config folder.
    """

    message = Signal(str, bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.session = None
        self._subscription = observer.Subscription(self._on_change)
        self._filling = False
        self.library = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        title = QLabel("Style")
        title.setObjectName("PanelTitle")
        layout.addWidget(title)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(form)
        form.addRow("Preset", self._build_preset_row())
        self.text = QLineEdit()
        files_pass_through(self.text)
        self.text.setPlaceholderText("e.g. “minimal origami.” — added to every prompt")
        self.text.setToolTip("The style description added to the end of every panel's prompt "
                             "(and the reference's). Short and about the look, not the subject.")
        self.text.textEdited.connect(self._text_edited)
        form.addRow("Style text", self.text)
        self.source = QLabel("")
        self.source.setObjectName("Hint")
        self.source.setWordWrap(True)
        form.addRow("Reference", self.source)
        self._add_generated_reference_rows(form)
        self.reload_presets()

    # ----- construction ---------------------------------------------------------------------
    def _build_preset_row(self) -> QHBoxLayout:
        """The preset chooser with save-as and delete."""
        preset_row = QHBoxLayout()
        self.preset = small_combo()
        self.preset.setToolTip("Style presets: a style text with a negative prompt and settings "
                               "that suit it. Yours are kept in the app's config folder.")
        self.preset.activated.connect(self._preset_chosen)
        self.save_preset = QToolButton()
        self.save_preset.setIcon(icon_("save"))
        self.save_preset.setToolTip("Save the current style text and settings as your own preset")
        connect_command(self.save_preset.clicked, self.save_as_preset)
        self.delete_preset = QToolButton()
        self.delete_preset.setIcon(icon_("delete"))
        self.delete_preset.setToolTip("Delete the selected preset (only your own)")
        connect_command(self.delete_preset.clicked, self.delete_current_preset)
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.save_preset)
        preset_row.addWidget(self.delete_preset)
        return preset_row

    def _add_generated_reference_rows(self, form: QFormLayout) -> None:
        """What the generated reference shows, and its seed with lock and dice (shown only
        while the style comes from a generated reference)."""
        self.reference_prompt = QLineEdit()
        self.reference_prompt.setPlaceholderText("what the generated reference shows, e.g. "
                                                 "“a toy train”")
        self.reference_prompt.setToolTip("With no reference picture, the style is set by a "
                                         "generated reference picture: this is its subject "
                                         "(the style text is added).")
        self.reference_prompt.textEdited.connect(self._reference_prompt_edited)
        self.reference_prompt_label = QLabel("Shows")
        form.addRow(self.reference_prompt_label, self.reference_prompt)
        seed_row = QHBoxLayout()
        self.reference_seed = QSpinBox()
        self.reference_seed.setRange(0, MAX_SEED_)
        self.reference_seed.setToolTip("The generated reference's seed: keep it to keep the style")
        self.reference_seed.valueChanged.connect(self._reference_seed_edited)
        self.reference_lock = QToolButton()
        self.reference_lock.setCheckable(True)
        self.reference_lock.setAutoRaise(True)
        self.reference_lock.toggled.connect(self._reference_lock_edited)
        self.reference_dice = QToolButton()
        self.reference_dice.setIcon(icon_("dice"))
        self.reference_dice.setAutoRaise(True)
        self.reference_dice.setToolTip("Try another generated reference (new seed)")
        connect_command(self.reference_dice.clicked, self._reroll_reference)
        seed_row.addWidget(self.reference_seed, 1)
        seed_row.addWidget(self.reference_lock)
        seed_row.addWidget(self.reference_dice)
        self.reference_seed_label = QLabel("Seed")
        form.addRow(self.reference_seed_label, seed_row)

    # ----- binding --------------------------------------------------------------------------
    def set_session(self, session) -> None:
        self.session = session
        self._subscription.follow(session)
        self.refresh()

    def _on_change(self, change) -> None:
        if change.kind in ("style", "references"):
            self.refresh()

    def refresh(self) -> None:
        if self.session is None:
            return
        style = self.session.style
        self._filling = True
        try:
            if self.text.text() != style.text:
                self.text.setText(style.text)
                if not self.text.hasFocus():
                    self.text.setCursorPosition(0)
            if self.reference_prompt.text() != style.reference_prompt:
                self.reference_prompt.setText(style.reference_prompt)
            self.reference_seed.setValue(min(style.reference_seed, MAX_SEED_))
            self.reference_lock.setChecked(style.reference_seed_locked)
            self._show_lock(style.reference_seed_locked)
            self._select_preset(style.preset)
        finally:
            self._filling = False
        active = self.session.active_reference
        sources = self.session.active_sources
        generated = style.uses_generated
        for widget in (self.reference_prompt, self.reference_prompt_label, self.reference_seed,
                       self.reference_seed_label, self.reference_lock, self.reference_dice):
            widget.setVisible(generated)
        if len(sources) > 1:
            self.source.setText(f"A blend of {len(sources)} references, weighted in the gallery")
        elif generated:
            self.source.setText("Generated from “Shows” + the style text")
        else:
            caption = f" — “{active.caption}”" if active.caption else ""
            self.source.setText(f"The picture {active.name or active.id}{caption}")

    def _show_lock(self, locked: bool) -> None:
        self.reference_lock.setIcon(icon_("lock" if locked else "unlock"))
        self.reference_lock.setToolTip(
            "Seed locked: every Generate uses the same reference (click to unlock)" if locked
            else "Seed free: each Generate tries a new reference (click to lock)")

    # ----- presets --------------------------------------------------------------------------
    def reload_presets(self) -> None:
        from ...session.presets import load_presets

        self.library = load_presets()
        for problem in self.library.problems:
            self.message.emit(str(problem), True)
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItem("Choose a preset…", None)
        builtin = [p for p in self.library.presets if p.source == "built-in"]
        user = [p for p in self.library.presets if p.source != "built-in"]
        for preset in builtin:
            self.preset.addItem(preset.name, preset.key)
            self.preset.setItemData(self.preset.count() - 1,
                                    f"{preset.style_text}\n{preset.description}".strip(),
                                    Qt.ItemDataRole.ToolTipRole)
        if user:
            self.preset.insertSeparator(self.preset.count())
            for preset in user:
                self.preset.addItem(f"{preset.name} (yours)", preset.key)
                self.preset.setItemData(self.preset.count() - 1, preset.style_text,
                                        Qt.ItemDataRole.ToolTipRole)
        self.preset.blockSignals(False)
        if self.session is not None:
            self._select_preset(self.session.style.preset)

    def _select_preset(self, name: str | None) -> None:
        index = 0
        if name and self.library is not None:
            preset = self.library.get(name)
            if preset is not None:
                index = max(0, self.preset.findData(preset.key))
        self.preset.setCurrentIndex(index)
        key = self.preset.currentData()
        preset = self.library.get(key) if (key and self.library) else None
        self.delete_preset.setEnabled(preset is not None and preset.source != "built-in")

    def _preset_chosen(self, index: int) -> None:
        key = self.preset.itemData(index)
        if not key or self.session is None or self.library is None:
            return
        preset = self.library.get(key)
        try:
            self.session.apply_preset(preset)
        except SessionError as exc:
            self.message.emit(str(exc), True)
            return
        self.message.emit(f"Style preset “{preset.name}”: {preset.style_text}", False)

    def save_as_preset(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        if self.session is None:
            return
        name, ok = QInputDialog.getText(self, "Save style preset", "Name of the preset:",
                                        text=self.session.style.preset or "")
        if ok and name.strip():
            self.save_preset_named(name.strip())

    def save_preset_named(self, name: str):
        """Save the session's style text and settings as the user's preset ``name``."""
        from ...session.presets import StylePreset, save_user_preset

        settings = self.session.settings
        try:
            preset = save_user_preset(StylePreset(
                name=name,
                style_text=self.session.style.text,
                negative_prompt=settings.negative_prompt,
                sampling={"steps": settings.steps, "guidance": settings.guidance,
                          "width": settings.width, "height": settings.height,
                          "scheduler": settings.scheduler},
                style_aligned=settings.style_aligned.to_dict(),
            ))
        except (SessionError, OSError) as exc:
            self.message.emit(f"Could not save the preset: {exc}", True)
            return None
        self.session.apply_preset(preset)  # labels the session with the new preset
        self.reload_presets()
        self.message.emit(f"Saved the preset “{preset.name}”", False)
        return preset

    def delete_current_preset(self) -> None:
        from ...session.presets import delete_user_preset

        key = self.preset.currentData()
        preset = self.library.get(key) if (key and self.library) else None
        if preset is None:
            return
        try:
            delete_user_preset(preset)
        except (SessionError, OSError) as exc:
            self.message.emit(str(exc), True)
            return
        self.reload_presets()
        self.message.emit(f"Deleted the preset “{preset.name}”", False)

    # ----- edits ----------------------------------------------------------------------------
    def _text_edited(self, text: str) -> None:
        if not self._filling and self.session is not None:
            self.session.set_style_text(text)

    def _reference_prompt_edited(self, text: str) -> None:
        if not self._filling and self.session is not None:
            self.session.set_reference_prompt(text)

    def _reference_seed_edited(self, value: int) -> None:
        if not self._filling and self.session is not None:
            self.session.set_reference_seed(seed=value)

    def _reference_lock_edited(self, locked: bool) -> None:
        self._show_lock(locked)
        if not self._filling and self.session is not None:
            self.session.set_reference_seed(locked=locked)

    def _reroll_reference(self) -> None:
        if self.session is not None:
            self.session.reroll_reference()
