"""Memory mode, VAE and LoRAs travel to a server: a LoRA as its upload's name (SHA-256), the
file name the artist knows it by and its weight, never as a path."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.engine.request import GeneratedReference, Lora, Panel, SetRequest
from stylealigned_desktop.server.wire import WireError, request_from_wire, request_to_wire

INK, PASTEL = "a" * 64, "b" * 64


def _request(**kwargs):
    return SetRequest(model="tiny", style=GeneratedReference("a toy train", 1), panels=(Panel("a car", 2),), **kwargs)


def test_memory_mode_and_vae_travel():
    request = _request(memory="low", vae="madebyollin/sdxl-vae-fp16-fix")
    data = json.loads(json.dumps(request_to_wire(request, {})))
    assert (data["memory"], data["vae"], data["loras"]) == ("low", "madebyollin/sdxl-vae-fp16-fix", [])
    back = request_from_wire(data, lambda sha: sha)
    assert (back.memory, back.vae, back.loras) == ("low", "madebyollin/sdxl-vae-fp16-fix", ())


def test_loras_travel_as_upload_names_with_their_file_names_and_weights():
    loras = (Lora("/home/me/styles/ink.safetensors", 0.8), Lora("/home/me/pastel.safetensors", -0.5))
    data = json.loads(json.dumps(request_to_wire(_request(loras=loras), {loras[0].path: INK, loras[1].path: PASTEL})))
    assert data["loras"] == [{"lora": INK, "file": "ink.safetensors", "weight": 0.8},
                             {"lora": PASTEL, "file": "pastel.safetensors", "weight": -0.5}]
    assert "/home/me" not in json.dumps(data)
    back = request_from_wire(data, lambda sha: sha, lambda sha, name: f"/srv/{sha}/{name}")
    assert back.loras == (Lora(f"/srv/{INK}/ink.safetensors", 0.8), Lora(f"/srv/{PASTEL}/pastel.safetensors", -0.5))
    assert [lora.name for lora in back.loras] == ["ink.safetensors", "pastel.safetensors"]


@pytest.mark.parametrize("lora, words", [
    ({"lora": INK, "file": "../../etc/ink.safetensors", "weight": 1.0}, "plain .safetensors file name"),
    ({"lora": INK, "file": "C:ink.safetensors", "weight": 1.0}, "plain .safetensors file name"),
    ({"lora": INK, "file": "ink.ckpt", "weight": 1.0}, "plain .safetensors file name"),
    ({"lora": INK, "file": ".safetensors", "weight": 1.0}, "plain .safetensors file name"),
    ({"lora": "/home/me/ink.safetensors", "file": "ink.safetensors", "weight": 1.0}, "SHA-256"),
    ({"lora": INK, "file": "ink.safetensors", "weight": "strong"}, "weight"),
    ({"lora": INK, "file": "ink.safetensors", "weight": 1.0, "path": "/srv/x"}, "'lora', 'file' and 'weight'"),
    ("ink.safetensors", "'lora', 'file' and 'weight'"),
])
def test_a_lora_that_is_not_an_upload_name_a_file_name_and_a_weight_is_refused(lora, words):
    data = {**request_to_wire(_request(), {}), "loras": [lora]}
    with pytest.raises(WireError, match="bad request") as refused:
        request_from_wire(data, lambda sha: sha, lambda sha, name: f"/srv/{sha}/{name}")
    assert words in str(refused.value)


def test_a_reader_that_takes_no_loras_refuses_a_request_with_them():
    data = {**request_to_wire(_request(), {}), "loras": [{"lora": INK, "file": "ink.safetensors", "weight": 1.0}]}
    with pytest.raises(WireError, match="takes no LoRAs"):
        request_from_wire(data, lambda sha: sha)
