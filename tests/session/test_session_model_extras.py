"""Session settings for memory mode, VAE and LoRAs: validated, saved, and in the request."""

from __future__ import annotations

import pytest

from stylealigned_desktop.engine.request import Lora
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.session.store import load_session, save_session_as


def test_memory_vae_and_loras_reach_the_request(session):
    session.set_style_text("ink")
    session.add_panel("a fox")
    request = session.build_request()
    assert (request.memory, request.vae, request.loras) == ("auto", None, ())
    loras = (Lora("/loras/ink.safetensors", 0.8), Lora("/loras/pastel.safetensors", -0.25))
    session.update_settings(memory="balanced", vae=" madebyollin/sdxl-vae-fp16-fix ", loras=loras)
    request = session.build_request()
    assert (request.memory, request.vae, request.loras) == ("balanced", "madebyollin/sdxl-vae-fp16-fix", loras)


def test_bad_values_are_refused(session):
    with pytest.raises(SessionError, match="memory mode"):
        session.update_settings(memory="turbo")
    with pytest.raises(SessionError, match="LoRA"):
        session.update_settings(loras=("/loras/ink.safetensors",))
    with pytest.raises(SessionError, match=r"settings\.loras\[0\]\.weight must be a number"):
        GenerationSettings.from_dict({"loras": [{"path": "/x.safetensors", "weight": "strong"}]})
    with pytest.raises(SessionError, match=r"settings\.loras\[1\]: a LoRA needs a file"):
        GenerationSettings.from_dict({"loras": [{"path": "/x.safetensors"}, {"path": " "}]})
    with pytest.raises(SessionError, match=r"settings\.loras\[0\] has unknown field"):
        GenerationSettings.from_dict({"loras": [{"path": "/x.safetensors", "strength": 1}]})
    assert session.settings.memory == "auto" and session.settings.loras == ()


def test_the_choices_survive_save_and_load(session, tmp_path):
    loras = (Lora("/loras/ink.safetensors", 0.8),)
    session.update_settings(memory="low", vae="/models/vae", loras=loras)
    session.add_panel("a fox")
    saved = save_session_as(session, tmp_path / "Story")
    loaded = load_session(saved.parent if saved.is_file() else saved)
    try:
        assert (loaded.settings.memory, loaded.settings.vae, loaded.settings.loras) == ("low", "/models/vae", loras)
    finally:
        loaded.close()


def test_older_sessions_without_the_fields_read_with_defaults():
    data = GenerationSettings().to_dict()
    for name in ("memory", "vae", "loras"):
        del data[name]
    settings = GenerationSettings.from_dict(data)
    assert (settings.memory, settings.vae, settings.loras) == ("auto", "", ())


def test_the_preview_decoder_is_checked_saved_and_in_the_request(session, tmp_path):
    """Settings → Previews (issue 27): one of auto, factors, tiny, vae, off; kept with the
    session, read as Auto from sessions saved before it, and sent with every request."""
    session.set_style_text("ink")
    session.add_panel("a fox")
    assert session.build_request().previews == "auto"
    with pytest.raises(SessionError, match="previews must be one of auto, factors, tiny, vae, off"):
        session.update_settings(previews="taesd")
    session.update_settings(previews="vae")
    assert session.build_request().previews == "vae"
    saved = save_session_as(session, tmp_path / "Story")
    loaded = load_session(saved.parent if saved.is_file() else saved)
    try:
        assert loaded.settings.previews == "vae"
    finally:
        loaded.close()
    data = GenerationSettings().to_dict()
    del data["previews"]
    assert GenerationSettings.from_dict(data).previews == "auto"
