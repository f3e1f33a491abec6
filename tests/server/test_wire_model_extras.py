"""Memory mode and VAE travel to a server; LoRA files (on this computer) are refused for now."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.engine.request import GeneratedReference, Lora, Panel, SetRequest
from stylealigned_desktop.server.wire import WireError, request_from_wire, request_to_wire


def _request(**kwargs):
    return SetRequest(model="tiny", style=GeneratedReference("a toy train", 1), panels=(Panel("a car", 2),), **kwargs)


def test_memory_mode_and_vae_travel():
    request = _request(memory="low", vae="madebyollin/sdxl-vae-fp16-fix")
    data = json.loads(json.dumps(request_to_wire(request, {})))
    assert (data["memory"], data["vae"]) == ("low", "madebyollin/sdxl-vae-fp16-fix") and "loras" not in data
    back = request_from_wire(data, lambda sha: sha)
    assert (back.memory, back.vae, back.loras) == ("low", "madebyollin/sdxl-vae-fp16-fix", ())


def test_a_request_with_loras_is_refused_before_it_travels(tmp_path):
    with pytest.raises(WireError, match="LoRA"):
        request_to_wire(_request(loras=(Lora(str(tmp_path / "ink.safetensors"), 0.8),)), {})
    data = request_to_wire(_request(), {})
    data["loras"] = [{"path": "/home/someone/ink.safetensors", "weight": 1.0}]
    with pytest.raises(WireError, match="unknown request field"):
        request_from_wire(data, lambda sha: sha)
