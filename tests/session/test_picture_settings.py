"""What a picture's recorded settings give a session: hub ids as they are, LoRAs found by name for
pictures that recorded names only, older pictures leaving what they do not record."""

from __future__ import annotations

import pytest

from stylealigned_desktop.engine.request import Lora
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.session.picture_settings import settings_from_picture
from tests.loras import tiny_lora_state, write_diffusers_lora


def test_a_hub_vae_is_taken_as_it_is_and_a_missing_vae_file_is_named(tmp_path):
    mine = GenerationSettings(vae=str(tmp_path))
    taken = settings_from_picture(mine, {"vae": "madebyollin/sdxl-vae-fp16-fix"})
    assert taken.settings.vae == "madebyollin/sdxl-vae-fp16-fix" and taken.missing == ()
    assert taken.notice("panel-01.png") is None
    for gone in ("/nowhere/sdxl_vae.safetensors", "sdxl_vae.safetensors", "C:\\vaes\\fp16"):
        taken = settings_from_picture(mine, {"vae": gone, "steps": 12})
        assert taken.settings.vae == str(tmp_path) and taken.settings.steps == 12
        assert taken.missing == (f"the VAE {gone}",)
    assert settings_from_picture(mine, {"vae": None}).settings.vae == ""  # the model's own


def test_loras_recorded_by_name_only_are_found_among_the_sessions(tmp_path):
    ink = write_diffusers_lora(tmp_path / "ink.safetensors", tiny_lora_state())  # a LoRA, as a drop checks
    mine = GenerationSettings(loras=(Lora(str(ink), 1.0),))
    taken = settings_from_picture(mine, {"loras": [{"file": "ink.safetensors", "weight": -0.3},
                                                   {"file": "pastel.safetensors", "weight": 0.7}]})
    assert taken.settings.loras == (Lora(str(ink), -0.3),)
    assert taken.missing == ("the LoRA pastel.safetensors (weight 0.7)",)
    assert "pastel.safetensors" in taken.notice("/runs/a/panel-02.png")
    assert settings_from_picture(mine, {"loras": []}).settings.loras == ()  # a picture without LoRAs


def test_what_an_older_picture_does_not_record_stays():
    mine = GenerationSettings(memory="balanced", vae="owner/vae", loras=(Lora("/x/ink.safetensors", 0.5),))
    taken = settings_from_picture(mine, {"steps": 30})
    assert taken.settings == mine.replace(steps=30) and taken.missing == ()


@pytest.mark.parametrize("parameters", [
    {"memory": "huge"}, {"loras": "ink"}, {"loras": [{"weight": 1}]},
    {"loras": [{"file": "a.safetensors", "weight": "much"}]}, {"vae": 3}, ["steps"],
])
def test_settings_the_session_refuses_take_nothing(parameters):
    with pytest.raises(SessionError):
        settings_from_picture(GenerationSettings(), parameters)


def test_a_path_the_system_cannot_even_look_up_is_a_session_error():
    """Issue 23, item 9: whatever a dropped picture's settings name is one SessionError (one
    banner line), even a path longer than the system allows (Path.exists raises OSError)."""
    with pytest.raises(SessionError, match="cannot be used"):
        settings_from_picture(GenerationSettings(), {"vae": "/" + "x" * 5000 + "/vae.safetensors"})


MIRA = {"name": "Mira", "description": "a girl in a raincoat", "words": ["girl"], "anchor_seeds": [5, 6],
        "anchor_pictures": [], "anchor_text": ", ink"}


@pytest.mark.parametrize("characters, message", [
    ("Mira", "must be a list"),
    ([dict(MIRA, name="")], "name"),
    ([dict(MIRA, name="[Mira]")], "name"),
    ([dict(MIRA, name="Mi]ra")], "name"),
    ([MIRA, dict(MIRA, description="another girl")], "names a character twice: Mira"),
    ([dict(MIRA, words=["dog"])], "'dog'"),
    ([dict(MIRA, anchor_seeds=[])], "seed"),
    ([dict(MIRA, anchor_seeds=[2**70])], "seed"),
    ([dict(MIRA, anchor_pictures=[3])], "path or None"),
    ([dict(MIRA, costume="red")], "unknown character field"),
    (["Mira"], "must be an object"),
])
def test_characters_the_engine_refuses_take_nothing(characters, message):
    """A picture may come from anyone (issue 25): a bad characters record is one SessionError
    naming what is wrong, and nothing of the picture is taken."""
    with pytest.raises(SessionError, match="cannot be used") as refused:
        settings_from_picture(GenerationSettings(), {"steps": 30, "characters": characters})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_characters_and_their_settings_are_taken_and_missing_pictures_named(tmp_path):
    design = tmp_path / "mira.png"
    design.write_bytes(b"not read here: the session reads it when it copies it")
    gone = tmp_path / "gone.png"
    taken = settings_from_picture(GenerationSettings(), {
        "characters": [dict(MIRA, anchor_pictures=[str(gone), str(design)])],
        "stylealigned": {"character_dropout": 0.25, "character_shift": -1.0}})
    (mira,) = taken.characters
    assert (mira.name, mira.words, mira.anchor_seeds, mira.anchor_pictures) == ("Mira", ("girl",), (5, 6),
                                                                                (None, str(design)))
    assert taken.character_settings.character_dropout == 0.25 and taken.character_settings.character_shift == -1.0
    assert taken.character_settings.anchors_per_character == 2  # not recorded: the default
    assert taken.missing == (f"the picture of [Mira]'s anchor 1 (was {gone})",)
    assert settings_from_picture(GenerationSettings(), {"steps": 3}).characters == ()
