"""What the engine keys a reference picture's inversion by (spec 7.6): the model's weights with
its VAE and LoRAs, and the inversion guidance, never the generation guidance."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.models import model_identity
from stylealigned_desktop.engine.request import Lora, Panel, ReferencePicture, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.engine.tiny import build_tiny_components

from .loras import tiny_lora_state, write_diffusers_lora

STEPS = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inversion-keys")
    picture = folder / "style.png"
    image = Image.new("RGB", (150, 100), (30, 40, 120))
    ImageDraw.Draw(image).ellipse((30, 10, 110, 90), fill=(240, 170, 30))
    image.save(picture)
    vae = build_tiny_components()["vae"]
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    return {"picture": str(picture), "vae": str(folder / "vae"),
            "lora": str(write_diffusers_lora(folder / "ink.safetensors", tiny_lora_state(seed=3)))}


def _request(files, tmp_path, *, guidance=9.0, inversion_guidance=2.5, **kwargs):
    return SetRequest(
        model="tiny",
        style=ReferencePicture(files["picture"], "a sun", inversion_guidance=inversion_guidance, inversion_offset=1),
        panels=(Panel("a car", 2),),
        sampling=Sampling(steps=STEPS, guidance=guidance, width=128, height=64, scheduler="euler"),
        settings=StyleAlignedSettings.for_reference_image(), device="cpu", dtype="float32",
        cache_dir=str(tmp_path / "cache"), **kwargs)


def _inverted(events) -> bool:
    return sum(isinstance(e, ev.Inverting) for e in events) == STEPS


def test_the_inversion_key_names_vae_loras_and_the_inversion_guidance(files, tmp_path):
    engine = Engine()  # the real loader: the VAE and the LoRA are loaded as a run loads them
    base = _request(files, tmp_path)
    events = []
    key, _ = engine.reference_trajectory(base, events.append)
    assert _inverted(events)
    assert key.guidance == 2.5 and key.model == model_identity("tiny")

    # the generation guidance is not an inversion input: a set at another guidance finds it
    events.clear()
    engine.generate(replace(base, sampling=replace(base.sampling, guidance=4.0)), events.append)
    assert not any(isinstance(e, ev.Inverting) for e in events)

    lora = Lora(files["lora"], 0.7)
    changes = {
        "inversion guidance": (replace(base, style=replace(base.style, inversion_guidance=3.0)), model_identity("tiny")),
        "VAE": (replace(base, vae=files["vae"]), model_identity("tiny", vae=files["vae"])),
        "LoRA": (replace(base, loras=(lora,)), model_identity("tiny", loras=(lora,))),
        "LoRA weight": (replace(base, loras=(replace(lora, weight=0.4),)),
                        model_identity("tiny", loras=(replace(lora, weight=0.4),))),
    }
    keys = {key}
    for change, (request, model) in changes.items():
        events.clear()
        changed, _ = engine.reference_trajectory(request, events.append)
        assert _inverted(events), f"a new {change} must invert again"
        assert changed.model == model and changed.guidance == request.style.inversion_guidance
        keys.add(changed)
    assert len(keys) == 1 + len(changes)


def test_an_inversion_on_its_own_in_low_memory_encodes_the_picture_in_tiles(files, tmp_path, monkeypatch):
    """``reference_trajectory`` (what the server hands to its shards) plans the VAE as a run
    does: in ``low`` the picture is encoded in tiles, as diffusers' own tiled encode gives it."""
    from diffusers import AutoencoderKL

    from stylealigned_desktop.engine.images import fit_picture, load_picture

    calls = []
    original = AutoencoderKL._tiled_encode
    monkeypatch.setattr(AutoencoderKL, "_tiled_encode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    width, height = 192, 136  # above the tiny VAE's 128 px tile: tiling changes the latent
    request = replace(_request(files, tmp_path, memory="low"),
                      sampling=Sampling(steps=STEPS, guidance=9.0, width=width, height=height, scheduler="euler"))
    engine = Engine()
    _, trajectory = engine.reference_trajectory(request)
    assert len(calls) == 1

    vae = engine._pipe.vae
    vae.enable_tiling()
    pixels = engine._pipe.image_processor.preprocess(fit_picture(load_picture(files["picture"]), width, height))
    with torch.no_grad():
        tiled = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(trajectory.z0[0], tiled[0], rtol=0, atol=1e-5)
