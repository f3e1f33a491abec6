"""The Settings panel and the Style panel edit the session (and only through it)."""

from __future__ import annotations

import json

from stylealigned_desktop.session.generation import SDXL_SIZES
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.session.presets import user_presets_dir
from stylealigned_desktop.ui.settings import SettingsPanel, StylePanel
from stylealigned_desktop.ui.settings.knobs import TIPS


def bound_settings(qtbot):
    session = Session()
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.set_settings(session.settings)

    def apply(new):
        old = session.settings
        session.update_settings(**{k: getattr(new, k) for k in new.__dataclass_fields__
                                   if getattr(new, k) != getattr(old, k)})

    panel.changed.connect(apply)
    return session, panel


def test_sampling_settings_reach_the_session(qtbot):
    session, panel = bound_settings(qtbot)
    panel.steps.setValue(12)
    panel.guidance.setValue(7.5)
    index = panel.size_preset.findData("1216x832")
    panel.size_preset.setCurrentIndex(index)
    panel.scheduler.setCurrentIndex(panel.scheduler.findData("euler"))
    panel.micro_batch.setValue(2)
    panel.negative.setText("blurry, text")
    panel.negative.editingFinished.emit()
    s = session.settings
    assert (s.steps, s.guidance, s.width, s.height, s.scheduler, s.micro_batch) == (
        12, 7.5, 1216, 832, "euler", 2)
    assert s.negative_prompt == "blurry, text"
    panel.micro_batch.setValue(0)
    assert session.settings.micro_batch is None and panel.micro_batch.text() == "Auto"
    panel.width_box.setValue(320)
    assert panel.size_preset.currentText() == "Custom" and session.settings.width == 320


def test_every_sdxl_size_is_offered():
    panel = SettingsPanel()
    offered = [panel.size_preset.itemData(i) for i in range(panel.size_preset.count())]
    assert [f"{w}x{h}" for w, h in SDXL_SIZES] == offered[:-1] and offered[-1] is None


def test_advanced_knobs_and_the_strength_slider(qtbot):
    session, panel = bound_settings(qtbot)
    panel.flags["adain_values"].setChecked(True)
    panel.shift.setValue(0.69)
    assert session.settings.style_aligned.adain_values
    assert abs(session.settings.style_aligned.shared_score_shift - 0.69) < 1e-9
    panel.strength.setValue(100)
    assert abs(session.settings.style_aligned.shared_score_shift - 1.4) < 1e-3
    panel.strength.setValue(50)
    assert abs(session.settings.style_aligned.shared_score_shift) < 1e-3
    panel.control_models["depth_model"].setText("/models/dpt")
    panel.control_models["depth_model"].editingFinished.emit()
    assert session.settings.depth_model == "/models/dpt"
    panel._reset_defaults()
    assert session.settings.style_aligned.shared_score_shift == 0.0
    assert not session.settings.style_aligned.adain_values


def test_every_knob_has_an_artist_tooltip():
    panel = SettingsPanel()
    for name, check in panel.flags.items():
        assert check.toolTip() == TIPS[name] and len(check.toolTip()) > 60
    for widget in (panel.shift, panel.scale, panel.level, panel.steps, panel.guidance):
        assert len(widget.toolTip()) > 60


def test_presets_apply_and_user_presets_are_saved_and_deleted(qtbot):
    session = Session()
    panel = StylePanel()
    qtbot.addWidget(panel)
    panel.set_session(session)
    names = [panel.preset.itemText(i) for i in range(panel.preset.count())]
    for demo in ("Minimal origami", "Claymation", "BW logo"):
        assert demo in names
    origami = panel.library.get("Minimal origami")
    panel.preset.setCurrentIndex(panel.preset.findData(origami.key))
    panel._preset_chosen(panel.preset.currentIndex())
    assert session.style.text == "minimal origami." and session.style.preset == "Minimal origami"

    panel.text.setText("gouache, muted greens")
    panel.text.textEdited.emit("gouache, muted greens")
    session.update_settings(steps=33)
    saved = panel.save_preset_named("My gouache")
    stored = json.loads((user_presets_dir() / saved.path.name).read_text())
    assert stored["style_text"] == "gouache, muted greens" and stored["sampling"]["steps"] == 33
    assert "My gouache (yours)" in [panel.preset.itemText(i) for i in range(panel.preset.count())]
    assert panel.delete_preset.isEnabled()
    panel.delete_current_preset()
    assert not saved.path.exists()
    assert "My gouache (yours)" not in [panel.preset.itemText(i)
                                        for i in range(panel.preset.count())]


def test_the_generated_reference_fields(qtbot):
    session = Session()
    panel = StylePanel()
    qtbot.addWidget(panel)
    panel.set_session(session)
    panel.show()
    panel.reference_prompt.setText("a toy train")
    panel.reference_prompt.textEdited.emit("a toy train")
    panel.reference_seed.setValue(77)
    assert session.style.reference_prompt == "a toy train" and session.style.reference_seed == 77
    panel.reference_lock.click()
    assert session.style.reference_seed_locked is False
    panel.reference_dice.click()
    assert session.style.reference_seed != 77
