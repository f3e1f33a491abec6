"""The window's size menus follow the chosen model's base (spec section 14): the set's size and
each panel's size offer the sizes the model was trained at about and panoramas at its height,
the base told from the model's config (never its name), before any weight loads."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.engine.tiny import tiny_unet_config
from stylealigned_desktop.ui.dialogs import ModelDialog
from stylealigned_desktop.ui.settings.settings_panel import SettingsPanel
from stylealigned_desktop.ui.storyboard.card import CUSTOM_SIZE, PANORAMA, SET_SIZE
from stylealigned_desktop.ui.support import DesktopConfig

from .test_storyboard import _choose
from .uifakes import FakeEngine, storyboard

SDXL_HUB = "stabilityai/stable-diffusion-xl-base-1.0"  # not in the tests' empty cache: SDXL's sizes


def _offered(combo) -> list:
    return [combo.itemData(i) for i in range(combo.count())]


def _choose_model_in_the_dialog(monkeypatch, name: str) -> None:
    def choose(dialog):
        dialog.tiny_choice.setCurrentIndex(dialog.tiny_choice.findData(name))
        dialog.tiny_radio.setChecked(True)
        dialog.try_accept()
        return dialog.result()

    monkeypatch.setattr(ModelDialog, "exec", choose)


def test_choosing_tiny_sd15_offers_its_sizes_in_both_menus_and_a_pick_sets_the_panel(qtbot, make_window, monkeypatch):
    window, _ = make_window(engine=FakeEngine(), config=DesktopConfig(model=SDXL_HUB))
    session = storyboard(window, prompts=("the bay at dawn", "a boat"), width=1024, height=1024)
    card = window.storyboard.card_at(0)
    assert "1344x768" in _offered(card.size_choice) and "1344x768" in _offered(window.settings_panel.size_preset)

    _choose_model_in_the_dialog(monkeypatch, "tiny-sd15")
    window.model_action.trigger()
    assert window.config.model == "tiny-sd15"
    # tiny-sd15's UNet is 16 latent pixels a side: 128 px, SDXL's aspects scaled to it in 64s
    sizes = ["128x128", "192x128", "128x192", "192x64", "64x192"]
    assert _offered(window.settings_panel.size_preset) == [*sizes, None]
    assert _offered(card.size_choice) == [SET_SIZE, *sizes, PANORAMA + "512x128", PANORAMA + "384x128", CUSTOM_SIZE]
    assert window.settings_panel.size_preset.currentData() == "128x128"  # the set's 1024 x 1024 followed the model

    _choose(qtbot, card.size_choice, "192x128")
    assert (session.panels[0].size, session.panels[0].size_mode) == ((192, 128), None)
    _choose(qtbot, card.size_choice, PANORAMA + "384x128")
    assert (session.panels[0].size, session.panels[0].size_mode) == ((384, 128), "panorama")
    _choose(qtbot, window.settings_panel.size_preset, "128x192")
    assert (session.settings.width, session.settings.height) == (128, 192)
    other = window.storyboard.card_at(1)
    _choose(qtbot, other.size_choice, CUSTOM_SIZE)  # Custom… starts from the set's size
    assert (other.custom_width.value(), other.custom_height.value()) == (128, 192)


def test_a_model_folder_is_read_for_its_base_not_its_name(qtbot, make_window, tmp_path):
    """A folder named like an SDXL model whose UNet is SD 1.5's at 64 latent pixels (512 px):
    the menus offer SD 1.5's quarter-megapixel sizes and panoramas 512 high, read from its config
    (the folder holds no weights: nothing is loaded)."""
    folder = tmp_path / "sdxl-turbo-1024"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}), encoding="utf-8")
    (folder / "unet" / "config.json").write_text(json.dumps({**tiny_unet_config("tiny-sd15"), "sample_size": 64}),
                                                 encoding="utf-8")
    window, _ = make_window(engine=FakeEngine(), config=DesktopConfig(model=str(folder)))
    session = storyboard(window, prompts=("the bay at dawn",), width=512, height=512)
    card = window.storyboard.card_at(0)
    assert _offered(window.settings_panel.size_preset)[:5] == ["512x512", "576x448", "448x576", "640x448", "448x640"]
    assert window.settings_panel.size_preset.currentData() == "512x512"
    assert [d for d in _offered(card.size_choice) if d.startswith(PANORAMA)] == [PANORAMA + "2048x512",
                                                                                PANORAMA + "1536x512"]
    _choose(qtbot, card.size_choice, PANORAMA + "2048x512")
    assert (session.panels[0].size, session.panels[0].size_mode) == ((2048, 512), "panorama")
    assert card.size_choice.currentText().startswith("Panorama 4:1  (2048 × 512)")


def test_the_settings_alone_offer_sdxls_sizes_until_told_the_model():
    panel = SettingsPanel()
    panel.set_app_model("tiny-sd2v")
    assert _offered(panel.size_preset)[0] == "128x128"
    panel.set_app_model(SDXL_HUB)
    assert _offered(panel.size_preset)[:3] == ["1024x1024", "1152x896", "896x1152"]


def test_the_models_base_is_read_once_per_model_not_at_every_edit(monkeypatch):
    """Telling a model's base reads its files (a hub model's config is a request to the hub):
    the panel does it when the model changes, not at each of the artist's edits."""
    from stylealigned_desktop.ui.settings import settings_panel

    read = []
    real = settings_panel.native_side
    monkeypatch.setattr(settings_panel, "native_side", lambda model: read.append(model) or real(model))
    panel = SettingsPanel()
    read.clear()  # its first look, with no model yet
    panel.set_app_model("tiny-sd15")
    for steps in (21, 22, 23):
        panel.set_settings(panel.settings().replace(steps=steps))
    panel.set_no_gpu("no GPU here")
    assert read == ["tiny-sd15"]
    assert _offered(panel.size_preset)[0] == "128x128"
    panel.set_settings(panel.settings().replace(model="tiny-sd2v", steps=24))
    assert read == ["tiny-sd15", "tiny-sd2v"]


@pytest.mark.parametrize("session_names_model", [False, True])
def test_picking_a_model_of_another_base_moves_the_preset_sizes_in_one_undo_step(qtbot, make_window, monkeypatch,
                                                                                 session_names_model):
    """An SDXL set at 1152 × 896 with panels at 1344 × 768, typed 960 × 640 and a 3:1 panorama:
    picking tiny-sd15 (trained at 128) moves the presets to its 128-scale aspects and the
    panorama to its height, keeps the typed size, says so, and one Undo puts the sizes back
    (with the session's own model, when it names one: the model change is the same step)."""
    window, _ = make_window(engine=FakeEngine(), config=DesktopConfig(model=SDXL_HUB))
    session = storyboard(window, prompts=("the bay at dawn", "a boat", "the harbour", "a gull"),
                         width=1152, height=896, model=SDXL_HUB if session_names_model else "")
    cards = [window.storyboard.card_at(i) for i in range(4)]
    _choose(qtbot, cards[0].size_choice, "1344x768")
    _choose(qtbot, cards[1].size_choice, CUSTOM_SIZE)
    cards[1].custom_width.setValue(960)
    cards[1].custom_height.setValue(640)
    cards[1].custom_height.editingFinished.emit()
    _choose(qtbot, cards[2].size_choice, PANORAMA + "3072x1024")
    assert [p.size for p in session.panels] == [(1344, 768), (960, 640), (3072, 1024), None]
    window.sessions.undo.flush()  # what the idle event loop does after each of those
    before = session.edit_state()

    _choose_model_in_the_dialog(monkeypatch, "tiny-sd15")
    window.model_action.trigger()

    assert (session.settings.width, session.settings.height) == (128, 128)  # 1152 x 896 at 1/8, in 64s
    assert [(p.size, p.size_mode) for p in session.panels] == [
        ((192, 128), None), ((960, 640), None), ((384, 128), "panorama"), (None, None)]
    assert window.settings_panel.size_preset.currentData() == "128x128"  # a preset again, never "Custom"
    assert [card.size_choice.currentData() for card in cards] == [
        "192x128", CUSTOM_SIZE, PANORAMA + "384x128", SET_SIZE]
    assert window.statusBar().currentMessage() == (
        "Model: tiny-sd15. Set size 1152×896 → 128×128; 2 panels 1344×768 → 192×128, "
        "3072×1024 → 384×128 for SD 1.5")
    assert session.settings.model == ("tiny-sd15" if session_names_model else "")

    window.sessions.undo.flush()
    window.undo_action.trigger()
    assert session.edit_state() == before
    assert window.settings_panel.size_preset.currentData() == ("1152x896" if session_names_model else None)
