"""Settings: memory mode, VAE and LoRAs (drag and drop, weight sliders) reach the session."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from stylealigned_desktop.engine.request import Lora
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.ui.settings.model_extras import FP16_FIX_VAE
from tests.ui.test_controls import bound_settings
from tests.ui.uifakes import drop_files


def _lora_file(folder, name, key="lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", width=2048):
    """A LoRA file as its header describes it (the Settings panel reads nothing else)."""
    from safetensors.numpy import save_file

    path = folder / name
    save_file({f"{key}.lora_down.weight": np.zeros((4, width), np.float32),
               f"{key}.lora_up.weight": np.zeros((640, 4), np.float32)}, str(path))
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


def test_a_lora_that_is_not_for_the_models_base_is_refused_when_added_not_at_generate(qtbot, tmp_path):
    session, panel = bound_settings(qtbot)
    session.update_settings(model="tiny")  # an SDXL model chosen
    panel.set_settings(session.settings)
    problems = []
    panel.problem.connect(problems.append)
    flux = _lora_file(tmp_path, "flux-style.safetensors", key="transformer.single_transformer_blocks.0.attn.to_k",
                      width=3072)
    sd15 = _lora_file(tmp_path, "sd15-style.safetensors",
                      key="lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", width=768)
    damaged = tmp_path / "half.safetensors"
    damaged.write_bytes((2**40).to_bytes(8, "little") + b"{")
    drop_files(panel.loras, [flux, sd15, damaged])
    assert session.settings.loras == () and panel.loras.rows == []
    assert problems == [
        "flux-style.safetensors is not a LoRA for SDXL: it was made for a transformer model (Flux or SD 3). "
        "Use a LoRA trained for SDXL",
        "sd15-style.safetensors is a LoRA for SD 1.5; this model is SDXL. Use a LoRA trained for SDXL",
        "half.safetensors is not a LoRA file: it cannot be read as .safetensors "
        "(it may be damaged, incomplete, or another kind of file)"]
    # on an SD 1.5 model (told from its UNet), an SDXL LoRA is the one refused
    session.update_settings(model="tiny-sd15")
    panel.set_settings(session.settings)
    problems.clear()
    drop_files(panel.loras, [flux, _lora_file(tmp_path, "sdxl-ink.safetensors")])
    assert session.settings.loras == () and problems == [
        "flux-style.safetensors is not a LoRA for SD 1.5: it was made for a transformer model (Flux or SD 3). "
        "Use a LoRA trained for SD 1.5",
        "sdxl-ink.safetensors is a LoRA for SDXL; this model is SD 1.5. Use a LoRA trained for SD 1.5"]
