"""The window's size menus follow the chosen model's base (spec section 14): the set's size and
each panel's size offer the sizes the model was trained at about and panoramas at its height,
the base told from the model's config (never its name), before any weight loads."""

from __future__ import annotations

import json

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
    assert window.settings_panel.size_preset.currentText() == "Custom"  # the set's 1024 is no preset of it

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
