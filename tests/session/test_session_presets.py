"""Style presets: the built-in ones are valid, user presets round-trip, broken ones are reported."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.session import presets
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import SDXL_SIZES, GenerationSettings
from stylealigned_desktop.session.presets import StylePreset

AUTHORS_DEMO_STYLES = {
    "macro photo. 3d game asset.",
    "BW logo. high contrast.",
    "minimal origami.",
    "made of claymation, stop motion animation.",
    "sketch, character sheet.",
}


def test_built_in_presets_are_all_valid():
    files = sorted(presets.builtin_presets_dir().glob("*.json"))
    library = presets.load_presets()
    assert library.problems == []
    builtin = [p for p in library.presets if p.source == "built-in"]
    assert len(builtin) == len(files) >= 9
    assert {p.style_text for p in builtin} >= AUTHORS_DEMO_STYLES
    assert len({p.name for p in builtin}) == len(builtin)
    for preset in builtin:
        data = json.loads(preset.path.read_text(encoding="utf-8"))
        assert data["format"] == "stylealigned-style"
        assert preset.description and preset.style_text
        settings = preset.apply_to(GenerationSettings())
        assert settings.sampling().steps >= 1  # the engine accepts it
        assert isinstance(settings.style_aligned, StyleAlignedSettings)
        assert (settings.width, settings.height) in SDXL_SIZES


def test_user_preset_saved_and_reloaded():
    preset = StylePreset(
        name="My moody ink",
        style_text="moody ink wash, heavy shadows",
        negative_prompt="color",
        description="for the night scenes",
        sampling={"steps": 30, "guidance": 6.0, "width": 1344, "height": 768},
        style_aligned={"shared_score_shift": 0.3, "adain_values": True},
    )
    saved = presets.save_user_preset(preset)
    assert saved.path.parent == presets.user_presets_dir()
    assert saved.key == "user/my-moody-ink"
    library = presets.load_presets()
    assert library.problems == []
    loaded = library.get("My moody ink")
    assert loaded == saved
    assert loaded.style_aligned_settings() == StyleAlignedSettings(
        shared_score_shift=0.3, adain_values=True)
    presets.delete_user_preset(loaded)
    assert presets.load_presets().get("My moody ink") is None


def test_broken_user_presets_are_reported_by_name_and_the_rest_load():
    folder = presets.user_presets_dir()
    presets.save_user_preset(StylePreset(name="Good one", style_text="pastel"))
    (folder / "truncated.json").write_text('{"name": "Half', encoding="utf-8")
    (folder / "bad-steps.json").write_text(json.dumps(
        {"name": "Zero steps", "style_text": "x", "sampling": {"steps": 0}}), encoding="utf-8")
    (folder / "bad-knob.json").write_text(json.dumps(
        {"name": "Bad knob", "style_text": "x", "style_aligned": {"share_everything": True}}),
        encoding="utf-8")
    (folder / "no-text.json").write_text(json.dumps({"name": "No text"}), encoding="utf-8")
    library = presets.load_presets()
    assert library.get("Good one") is not None
    assert len([p for p in library.presets if p.source == "built-in"]) >= 9
    problems = {p.name: p.message for p in library.problems}
    assert set(problems) == {"truncated", "Zero steps", "Bad knob", "No text"}
    assert "JSON" in problems["truncated"]
    assert "steps" in problems["Zero steps"]
    assert "share_everything" in problems["Bad knob"]
    assert "style_text" in problems["No text"]
    assert "Zero steps" in str(next(p for p in library.problems if p.name == "Zero steps"))


def test_apply_preset_to_a_session(session):
    library = presets.load_presets()
    preset = library.get("Cinematic film still")
    session.apply_preset(preset)
    assert session.style.text == preset.style_text
    assert session.style.preset == "Cinematic film still"
    assert session.settings.negative_prompt == preset.negative_prompt
    assert (session.settings.width, session.settings.height) == (
        preset.sampling["width"], preset.sampling["height"])
    assert session.settings.model == "tiny"  # a preset never changes the model
    session.set_style_text("my own words")
    assert session.style.preset is None  # no longer the preset's text
    session.update_settings(steps=3)
    session.apply_preset(preset, sampling=False)
    assert session.settings.steps == 3


def test_preset_validation():
    with pytest.raises(SessionError, match="name"):
        StylePreset(name="  ", style_text="x")
    with pytest.raises(SessionError, match="seed"):
        StylePreset(name="x", style_text="x", sampling={"seed": 3})
    with pytest.raises(SessionError, match="newer"):
        StylePreset.from_dict({"format": "stylealigned-style", "version": 99, "name": "x",
                               "style_text": "x"})
    builtin = presets.load_presets().presets[0]
    with pytest.raises(SessionError, match="built in"):
        presets.delete_user_preset(builtin)
