"""Settings: memory mode, VAE and LoRAs (drag and drop, weight sliders) reach the session."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from stylealigned_desktop.engine.request import Lora
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.ui.settings.model_extras import FP16_FIX_VAE
from tests.ui.test_controls import bound_settings
from tests.ui.uifakes import drop_files


def _lora_file(folder, name):
    path = folder / name
    path.write_bytes(b"{}")  # the Settings panel only takes the path; the engine checks the file
    return path


def test_dropped_lora_files_join_the_session_with_weight_one(qtbot, tmp_path):
    session, panel = bound_settings(qtbot)
    first, second = _lora_file(tmp_path, "ink.safetensors"), _lora_file(tmp_path, "pastel.safetensors")
    enter, drop = drop_files(panel.loras, [first, second])
    assert enter.isAccepted() and drop.isAccepted()
    assert session.settings.loras == (Lora(str(first), 1.0), Lora(str(second), 1.0))
    assert [row.name.text() for row in panel.loras.rows] == ["ink.safetensors", "pastel.safetensors"]
    assert not panel.loras.empty_hint.isVisibleTo(panel)


def test_a_dropped_non_lora_file_is_refused_with_a_message(qtbot, tmp_path):
    session, panel = bound_settings(qtbot)
    problems = []
    panel.problem.connect(problems.append)
    drop_files(panel.loras, [tmp_path / "sketch.jpg"])
    assert session.settings.loras == ()
    assert problems and "sketch.jpg" in problems[0] and ".safetensors" in problems[0]


def test_weight_slider_keys_and_remove_button(qtbot, tmp_path):
    session, panel = bound_settings(qtbot)
    drop_files(panel.loras, [_lora_file(tmp_path, "ink.safetensors"), _lora_file(tmp_path, "pastel.safetensors")])
    slider = panel.loras.rows[0].slider
    for _ in range(4):
        QTest.keyClick(slider, Qt.Key.Key_Left)  # 0.05 per step
    assert session.settings.loras[0].weight == 0.8
    assert panel.loras.rows[0].value.text() == "0.80"
    QTest.mouseClick(panel.loras.rows[1].remove_button, Qt.MouseButton.LeftButton)
    assert [lora.name for lora in session.settings.loras] == ["ink.safetensors"]


def test_add_lora_button_uses_the_file_dialog(qtbot, tmp_path, monkeypatch):
    session, panel = bound_settings(qtbot)
    chosen = _lora_file(tmp_path, "ink.safetensors")
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(chosen)], "LoRA (*.safetensors)"))
    QTest.mouseClick(panel.loras.add_button, Qt.MouseButton.LeftButton)
    assert session.settings.loras == (Lora(str(chosen), 1.0),)


def test_memory_mode_and_the_offered_fp16_fix_vae(qtbot):
    session, panel = bound_settings(qtbot)
    assert panel.memory.currentData() == "auto"
    panel.memory.setCurrentIndex(panel.memory.findData("low"))
    assert session.settings.memory == "low"
    combo = panel.vae.combo
    index = combo.findText(FP16_FIX_VAE)
    assert index >= 0
    combo.setCurrentIndex(index)
    combo.activated.emit(index)  # what a click on the offered entry sends
    assert session.settings.vae == FP16_FIX_VAE
    combo.setEditText("")
    combo.lineEdit().editingFinished.emit()
    assert session.settings.vae == ""


def test_the_panel_shows_the_sessions_choices(qtbot, tmp_path):
    _, panel = bound_settings(qtbot)
    lora = Lora(str(tmp_path / "ink.safetensors"), 0.35)
    panel.set_settings(GenerationSettings(memory="balanced", vae="/models/vae", loras=(lora,)))
    assert panel.memory.currentData() == "balanced"
    assert panel.vae.source() == "/models/vae"
    assert panel.loras.loras() == (lora,) and panel.loras.rows[0].value.text() == "0.35"
