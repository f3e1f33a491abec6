"""A replacement VAE (issue 12): loaded from a folder, decoding in the pipeline's dtype when its
config does not force float32, recorded with the run."""

from __future__ import annotations

import json

import pytest
import torch

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.models import ModelSourceError, model_identity
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.tiny import build_tiny_components


def _vae_folder(folder, force_upcast):
    vae = build_tiny_components()["vae"]
    vae.register_to_config(force_upcast=force_upcast)
    vae.save_pretrained(folder, safe_serialization=True)
    assert json.loads((folder / "config.json").read_text())["force_upcast"] is force_upcast
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("vaes")
    return {flag: _vae_folder(base / f"upcast-{flag}", flag) for flag in (True, False)}


def _request(vae=None, dtype="float16"):
    return SetRequest(model="tiny", style=GeneratedReference("a toy train", 1), panels=(Panel("a car", 2),),
                      sampling=Sampling(steps=1, width=64, height=64), device="cpu", dtype=dtype, vae=vae)


def _decode_dtypes(engine, request):
    seen = []
    engine.pipeline(request.model, request.device, request.dtype, vae=request.vae, memory="fast")
    vae = engine._pipe.vae
    handle = vae.post_quant_conv.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    try:
        result = engine.generate(request)
    finally:
        handle.remove()
    return seen, result, vae


@pytest.mark.parametrize("force_upcast, decode_dtype", [(False, torch.float16), (True, torch.float32)])
def test_a_vae_that_does_not_force_upcasting_decodes_in_float16(folders, force_upcast, decode_dtype):
    engine = Engine()
    seen, result, vae = _decode_dtypes(engine, _request(str(folders[force_upcast])))
    assert seen and set(seen) == {decode_dtype}
    assert vae.dtype == torch.float16  # put back after an upcast decode
    assert vae.config.force_upcast is force_upcast
    assert result.metadata["request"]["vae"] == str(folders[force_upcast])


def test_the_vae_is_part_of_the_model_identity_and_a_new_vae_reloads(folders):
    assert model_identity("tiny", vae=str(folders[False])) != model_identity("tiny")
    assert model_identity("tiny", vae=str(folders[False])) != model_identity("tiny", vae=str(folders[True]))
    engine = Engine()
    loads = []
    original = engine._loader
    engine._loader = lambda *a, **k: loads.append(k["vae"]) or original(*a, **k)
    engine.pipeline("tiny", "cpu", "float32", vae=str(folders[False]))
    engine.pipeline("tiny", "cpu", "float32", vae=str(folders[False]))
    engine.pipeline("tiny", "cpu", "float32")
    assert loads == [str(folders[False]), None]


@pytest.mark.parametrize("source, message", [("missing/folder/", "not found"), ("vae.ckpt", "pickle"),
                                             ("not a hub id", "neither")])
def test_bad_vae_sources_are_refused(tmp_path, source, message):
    with pytest.raises(ModelSourceError, match=message):
        Engine().generate(_request(source, dtype="float32"))
