"""The Settings panel: model, steps, guidance, size, scheduler, negative prompt, micro-batch,
and the StyleAligned knobs in a folded "Advanced" section with tooltips in an artist's words.
It edits a :class:`GenerationSettings` value; it emits ``changed`` with the new value after
every user edit and never while :meth:`set_settings` fills it in.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...engine.hub import download_command
from ...engine.models import is_tiny, native_side
from ...engine.request import SCHEDULERS
from ...engine.runfolder import read_parameters
from ...engine.settings import StyleAlignedSettings
from ...session.errors import SessionError
from ...session.generation import GenerationSettings
from ...session.picture_settings import settings_from_picture
from ..support import accept_as_copy, connect_command, files_pass_through, small_combo
from ..support import icon as icon_
from ..threads import CONSISTENCY_TIP, DEFAULT_DINO
from . import model_extras as extras
from .collapsible import CollapsibleSection
from .knobs import (
    CONTROL_MODEL_FIELDS,
    SCHEDULER_NAMES,
    SWITCH_LABELS,
    TIPS,
    strength_position,
    strength_shift,
)
from .set_size import SetSizeChoice


class SettingsPanel(QWidget):
    """Edits the session's GenerationSettings (see module docstring)."""

    changed = Signal(object)
    """The new GenerationSettings after a user edit."""
    picture_taken = Signal(object)  # a dropped picture's PictureSettings: settings and characters
    model_change_requested = Signal()
    problem = Signal(str)
    """A combination of values the session refuses (shown to the user)."""
    native_side_changed = Signal(int)
    """The model in use changed its native side (its base's: the size presets follow it)."""
    dino_source_changed = Signal(str)
    """The app-wide DINO model for consistency scores (hub id or folder; empty: the default).
    Not a session setting: it names something on this computer."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._settings = GenerationSettings()
        self._filling = False
        self._app_model = ""
        self._sized_model: str | None = None  # the model the size presets were told from
        self._server = ""  # the URL of the server that makes the pictures; empty: this computer
        self._no_gpu = False  # this computer has no GPU (known after the warm-up)
        self._dino = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.addLayout(form)
        form.addRow("Model", self._build_model_row())
        self._add_sampling_rows(form)
        self._add_output_rows(form)
        form.addRow("Style strength", self._build_strength_row())
        self.looks_section = CollapsibleSection("LoRAs and VAE", self._build_looks(),
                                                expanded=True)
        layout.addWidget(self.looks_section)
        self.advanced = self._build_advanced()
        self.advanced_section = CollapsibleSection("Advanced: StyleAligned", self.advanced)
        layout.addWidget(self.advanced_section)
        layout.addStretch(1)
        self._connect_edits()
        self.setAcceptDrops(True)  # a generated PNG dropped here: use that picture's settings
        self.set_settings(self._settings)

    # ----- construction ---------------------------------------------------------------------
    def _build_model_row(self) -> QHBoxLayout:
        """The model in use (the session's, else the app's), a "noise only" badge for tiny."""
        model_row = QHBoxLayout()
        self.model_label = QLabel("")
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_label.setWordWrap(True)
        self.tiny_badge = QLabel("noise only")
        self.tiny_badge.setObjectName("TinyWarning")
        self.tiny_badge.setToolTip("The built-in tiny model has random weights: its pictures are "
                                   "noise. Choose a real SDXL model to make art.")
        self.model_button = QPushButton("Change…")
        self.model_button.setToolTip("Choose the model: SDXL, SD 1.x or SD 2.x (download, folder, file or tiny)")
        connect_command(self.model_button.clicked, self.model_change_requested.emit)
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.tiny_badge)
        model_row.addWidget(self.model_button)
        return model_row

    def _add_sampling_rows(self, form: QFormLayout) -> None:
        """Steps, guidance, size (a preset or width × height) and the sampler."""
        self.steps = QSpinBox()
        self.steps.setRange(1, 200)
        self.steps.setToolTip(TIPS["steps"])
        form.addRow("Steps", self.steps)
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(0.0, 30.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(1)
        self.guidance.setToolTip(TIPS["guidance"])
        form.addRow("Guidance", self.guidance)
        self.set_size = SetSizeChoice()
        self.size_preset, self.width_box, self.height_box = (
            self.set_size.preset, self.set_size.width_box, self.set_size.height_box)
        form.addRow("Size", self.set_size)
        self.scheduler = small_combo()
        for name in SCHEDULERS:
            self.scheduler.addItem(SCHEDULER_NAMES.get(name, name), name)
        self.scheduler.setToolTip(TIPS["scheduler"])
        form.addRow("Sampler", self.scheduler)

    def _add_output_rows(self, form: QFormLayout) -> None:
        """The negative prompt, panels drawn at once, the memory mode and the previews."""
        self.negative = QLineEdit()
        files_pass_through(self.negative)  # a PNG dropped here: use its settings
        self.negative.setPlaceholderText("none")
        self.negative.setToolTip(TIPS["negative"])
        form.addRow("Avoid", self.negative)
        self.micro_batch = QSpinBox()
        self.micro_batch.setRange(0, 64)
        self.micro_batch.setSpecialValueText("Auto")
        self.micro_batch.setToolTip(TIPS["micro_batch"])
        form.addRow("Panels at once", self.micro_batch)
        self.memory, self.previews = extras.memory_combo(), extras.previews_combo()
        form.addRow("Memory", self.memory)
        form.addRow("Previews", self.previews)

    def _build_strength_row(self) -> QHBoxLayout:
        """The style-strength slider, from "freer" to "more alike" (see ``knobs.STRENGTH_RANGE``)."""
        strength_row = QHBoxLayout()
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setToolTip(TIPS["strength"])
        weaker = QLabel("freer")
        weaker.setObjectName("Hint")
        stronger = QLabel("more alike")
        stronger.setObjectName("Hint")
        strength_row.addWidget(weaker)
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(stronger)
        return strength_row

    def _build_looks(self) -> QFrame:
        """The LoRAs and the VAE (a folding section, open)."""
        looks = QFrame()
        looks_form = QFormLayout(looks)
        looks_form.setContentsMargins(12, 0, 0, 0)
        self.loras = extras.LoraList()
        self.vae = extras.VaeChoice()
        looks_form.addRow("LoRAs", self.loras)
        looks_form.addRow("VAE", self.vae)
        return looks

    def _connect_edits(self) -> None:
        """Every edit of the main form ends in ``_edited`` (the advanced knobs connect theirs
        as they are built)."""
        for box in (self.steps, self.guidance, self.width_box, self.height_box, self.micro_batch):
            box.valueChanged.connect(self._edited)
        for combo in (self.scheduler, self.memory, self.previews):
            combo.currentIndexChanged.connect(self._edited)
        self.set_size.edited.connect(self._edited)
        self.negative.editingFinished.connect(self._edited)
        self.loras.edited.connect(self._edited)
        self.loras.refused.connect(self.problem.emit)
        self.vae.edited.connect(self._edited)
        self.strength.valueChanged.connect(self._strength_moved)

    def _build_advanced(self) -> QFrame:
        """The StyleAligned knobs, the control models, the DINO model and "Paper defaults"
        (a folding section, closed)."""
        box = QFrame()
        form = QFormLayout(box)
        form.setContentsMargins(12, 0, 0, 0)
        self._add_sharing_switches(form)
        self._add_sharing_numbers(form)
        self._add_control_models(form)
        form.addRow("Consistency model (DINO)", self._build_dino_row())
        self.defaults_button = QPushButton("Paper defaults")
        self.defaults_button.setToolTip("Reset the StyleAligned knobs to the paper's defaults "
                                        "(for a reference picture when one is active)")
        connect_command(self.defaults_button.clicked, self._reset_defaults)
        form.addRow(self.defaults_button)
        for box_ in (self.shift, self.scale, self.level, self.inversion_guidance):
            box_.valueChanged.connect(self._edited)
        self.inversion_offset.valueChanged.connect(self._edited)
        self._picture_reference = False
        return box

    def _add_sharing_switches(self, form: QFormLayout) -> None:
        """What the panels share with the reference: one check box per StyleAligned switch."""
        self.flags: dict[str, QCheckBox] = {}
        for name, label in SWITCH_LABELS.items():
            check = QCheckBox(label)
            check.setToolTip(TIPS[name])
            check.toggled.connect(self._edited)
            self.flags[name] = check
            form.addRow(check)

    def _add_sharing_numbers(self, form: QFormLayout) -> None:
        """How much they share (shift, scale, unshared layers) and how a reference picture is
        read in (inversion guidance and skipped steps)."""
        self.shift = QDoubleSpinBox()
        self.shift.setRange(-5.0, 5.0)
        self.shift.setSingleStep(0.05)
        self.shift.setDecimals(3)
        self.shift.setToolTip(TIPS["shared_score_shift"])
        form.addRow("Reference weight (shift)", self.shift)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(0.0, 4.0)
        self.scale.setSingleStep(0.05)
        self.scale.setDecimals(2)
        self.scale.setToolTip(TIPS["shared_score_scale"])
        form.addRow("Reference focus (scale)", self.scale)
        self.level = QDoubleSpinBox()
        self.level.setRange(0.0, 1.0)
        self.level.setSingleStep(0.05)
        self.level.setDecimals(2)
        self.level.setToolTip(TIPS["only_self_level"])
        form.addRow("Unshared layers", self.level)
        self.inversion_guidance = QDoubleSpinBox()
        self.inversion_guidance.setRange(0.0, 20.0)
        self.inversion_guidance.setSingleStep(0.5)
        self.inversion_guidance.setDecimals(1)
        self.inversion_guidance.setToolTip(TIPS["inversion_guidance"])
        form.addRow("Picture read-in guidance", self.inversion_guidance)
        self.inversion_offset = QSpinBox()
        self.inversion_offset.setRange(-1, 199)
        self.inversion_offset.setSpecialValueText("Auto")
        self.inversion_offset.setToolTip(TIPS["inversion_offset"])
        form.addRow("Picture skipped steps", self.inversion_offset)

    def _add_control_models(self, form: QFormLayout) -> None:
        """The ControlNets and the depth estimator the session names (empty: the defaults)."""
        self.control_models: dict[str, QLineEdit] = {}
        for name, label, default, tip in CONTROL_MODEL_FIELDS:
            edit = QLineEdit()
            edit.setPlaceholderText(f"default: {default}")
            edit.setToolTip(tip + ". Empty: the default for the model.")
            edit.editingFinished.connect(self._edited)
            self.control_models[name] = edit
            form.addRow(label, edit)

    def _build_dino_row(self) -> QHBoxLayout:
        """The app's DINO model for consistency scores, typed or chosen as a folder."""
        dino_row = QHBoxLayout()
        self.dino_source = QLineEdit()
        self.dino_source.setPlaceholderText(f"default: {DEFAULT_DINO}")
        self.dino_source.setToolTip(
            "The DINO model that scores how consistent each finished run is (a hub id or a "
            "folder), for this computer, not the session. It is used only when it is already "
            f"downloaded: `{download_command(DEFAULT_DINO)}` or the model dialog.\n\n{CONSISTENCY_TIP}")
        self.dino_source.editingFinished.connect(self._dino_edited)
        self.dino_folder_button = QToolButton()
        self.dino_folder_button.setIcon(icon_("open"))
        self.dino_folder_button.setAutoRaise(True)
        self.dino_folder_button.setToolTip("Choose a folder holding the DINO model")
        connect_command(self.dino_folder_button.clicked, self.choose_dino_folder)
        dino_row.addWidget(self.dino_source, 1)
        dino_row.addWidget(self.dino_folder_button)
        return dino_row

    # ----- value in / out -------------------------------------------------------------------
    def set_no_gpu(self, reason: str | None) -> None:
        """What Auto picks on this computer when it has no GPU (None: it has one)."""
        extras.show_no_gpu(self.memory, reason)
        self._no_gpu = reason is not None
        self._show_model()  # Auto's previews depend on it too

    def set_app_model(self, model: str) -> None:
        """The app-wide model (shown when the session does not name its own)."""
        self._app_model = model
        self._sized_model = None  # told again: a hub model just downloaded now has its config here
        self._show_model()

    def set_server(self, url: str) -> None:
        """Pictures are made by the server at ``url`` (empty: on this computer)."""
        self._server = url
        self._show_model()

    def set_dino_source(self, source: str) -> None:
        """Show the app's DINO model source (empty: the default)."""
        self._dino = source
        if self.dino_source.text() != source:
            self.dino_source.setText(source)
            self.dino_source.setCursorPosition(0)

    def _dino_edited(self) -> None:
        text = self.dino_source.text().strip()
        if text != self._dino:
            self._dino = text
            self.dino_source_changed.emit(text)

    def choose_dino_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the folder of the DINO model (it holds config.json)",
            self.dino_source.text())
        if folder:
            self.dino_source.setText(folder)
            self._dino_edited()

    def set_picture_reference(self, active: bool) -> None:
        """Whether the style comes from a picture (changes what 'Paper defaults' means)."""
        self._picture_reference = active
        self.inversion_guidance.setEnabled(active)
        self.inversion_offset.setEnabled(active)

    def _show_model(self) -> None:
        model = self._settings.model or self._app_model
        shown = model or "not chosen"
        if self._server:  # the server's model, made there: say so, never the local one's look
            shown = f"{shown} on the server {self._server}"
        self.model_label.setText(shown)
        self.model_label.setToolTip(shown)
        self.tiny_badge.setVisible(is_tiny(model))
        if model != self._sized_model:  # once per model: telling its base reads its files (a hub
            self._sized_model = model    # model's config: a request), and this runs at every edit
            native = native_side(model)  # the size presets are the model's base's
            if native != self.set_size.native:
                self.set_size.show_native_side(native)
                self.native_side_changed.emit(native)
        self.loras.model = "" if self._server else (model or "")
        extras.show_auto_previews(self.previews, model, self._server, accelerator=not self._no_gpu)

    def settings(self) -> GenerationSettings:
        return self._settings

    def set_settings(self, settings: GenerationSettings) -> None:
        self._settings = settings
        self._filling = True
        try:
            self.steps.setValue(settings.steps)
            self.guidance.setValue(settings.guidance)
            self.width_box.setValue(settings.width)
            self.height_box.setValue(settings.height)
            self.set_size.sync()
            self.scheduler.setCurrentIndex(max(0, self.scheduler.findData(settings.scheduler)))
            if self.negative.text() != settings.negative_prompt:
                self.negative.setText(settings.negative_prompt)
                self.negative.setCursorPosition(0)
            self.micro_batch.setValue(settings.micro_batch or 0)
            self.memory.setCurrentIndex(max(0, self.memory.findData(settings.memory)))
            self.previews.setCurrentIndex(max(0, self.previews.findData(settings.previews)))
            self.loras.set_loras(settings.loras)
            self.vae.set_source(settings.vae)
            sa = settings.style_aligned
            for name, check in self.flags.items():
                check.setChecked(getattr(sa, name))
            self.shift.setValue(sa.shared_score_shift)
            self.scale.setValue(sa.shared_score_scale)
            self.level.setValue(sa.only_self_level)
            self.strength.setValue(strength_position(sa.shared_score_shift))
            self.inversion_guidance.setValue(settings.inversion_guidance)
            for name, edit in self.control_models.items():
                if edit.text() != getattr(settings, name):
                    edit.setText(getattr(settings, name))
            self.inversion_offset.setMaximum(max(0, settings.steps - 1))
            self.inversion_offset.setValue(
                -1 if settings.inversion_offset is None else settings.inversion_offset)
        finally:
            self._filling = False
        self._show_model()

    def _read(self) -> GenerationSettings:
        sa = StyleAlignedSettings(
            **{name: check.isChecked() for name, check in self.flags.items()},
            shared_score_shift=round(self.shift.value(), 3),
            shared_score_scale=round(self.scale.value(), 2),
            only_self_level=round(self.level.value(), 2),
        )
        offset = self.inversion_offset.value()
        steps = self.steps.value()
        return self._settings.replace(
            steps=steps,
            guidance=round(self.guidance.value(), 1),
            width=self.width_box.value() // 8 * 8,
            height=self.height_box.value() // 8 * 8,
            scheduler=self.scheduler.currentData(),
            negative_prompt=self.negative.text(),
            micro_batch=self.micro_batch.value() or None,
            memory=self.memory.currentData(),
            previews=self.previews.currentData(),
            loras=self.loras.loras(),
            vae=self.vae.source(),
            inversion_guidance=round(self.inversion_guidance.value(), 1),
            inversion_offset=None if offset < 0 else min(offset, steps - 1),
            style_aligned=sa,
            **{name: edit.text().strip() for name, edit in self.control_models.items()},
        )

    def _edited(self, *_args) -> None:
        if self._filling:
            return
        self.inversion_offset.setMaximum(max(0, self.steps.value() - 1))
        self.set_size.sync()
        try:
            new = self._read()
        except (SessionError, ValueError) as exc:
            self.problem.emit(str(exc))
            return
        if new != self._settings:
            self._settings = new
            self._filling = True
            self.strength.setValue(strength_position(new.style_aligned.shared_score_shift))
            self._filling = False
            self.changed.emit(new)

    def _strength_moved(self, position: int) -> None:
        if self._filling:
            return
        self._filling = True
        self.shift.setValue(round(strength_shift(position), 3))
        self._filling = False
        self._edited()

    @staticmethod
    def _dropped_png(event) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if len(urls) == 1 and urls[0].isLocalFile() and urls[0].toLocalFile().lower().endswith(".png"):
            return urls[0].toLocalFile()
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if self._dropped_png(event):
            accept_as_copy(event)
        else:
            super().dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        path = self._dropped_png(event)
        if path is None:
            super().dropEvent(event)
            return
        accept_as_copy(event)
        self.use_picture_settings(path)

    def use_picture_settings(self, path: str) -> None:
        """Take the settings a picture made by the app records (its ``stylealigned`` chunk), in
        one change; a LoRA or VAE it names that is not on this computer is left out and named."""
        try:
            taken = settings_from_picture(self._settings, read_parameters(path))
        except (SessionError, ValueError) as exc:
            self.problem.emit(str(exc))
            return
        self.set_settings(taken.settings)
        self.picture_taken.emit(taken)
        if notice := taken.notice(path):
            self.problem.emit(notice)

    def _reset_defaults(self) -> None:
        sa = (StyleAlignedSettings.for_reference_image() if self._picture_reference
              else StyleAlignedSettings())
        new = self._settings.replace(style_aligned=sa, inversion_guidance=2.0,
                                     inversion_offset=None)
        self.set_settings(new)
        self.changed.emit(new)
