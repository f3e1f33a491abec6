"""A replacement VAE (issue 12): loaded from a folder, decoding in the pipeline's dtype when its
config does not force float32, recorded with the run."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import pytest
import torch

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.models import ModelSourceError, model_identity
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
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


def _retrained_in_place(path, *, replace_file):
    """The VAE's weights changed, its file keeping its name, size and modification time (a
    trainer's save within the same second, a copy that keeps times). ``replace_file``: a new file
    put in the old one's place, as trainers and downloads do; else the same file rewritten."""
    from safetensors import safe_open
    from safetensors.torch import save

    before = os.stat(path)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        weights = {name: handle.get_tensor(name) * 1.05 for name in handle.keys()}  # noqa: SIM118
    content = save(weights, metadata=metadata)
    if replace_file:
        path.with_suffix(".part").write_bytes(content)
        os.replace(path.with_suffix(".part"), path)
    else:
        with open(path, "r+b") as handle:  # the same file (inode), overwritten
            handle.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert (after.st_ino == before.st_ino) is not replace_file


def test_a_vae_file_is_identified_by_its_content(tmp_path):
    """Rewritten in place with its size and time kept, it is another VAE; a copy elsewhere
    (a server's) is the same one."""
    from safetensors.torch import save_file

    file = tmp_path / "my-vae.safetensors"
    save_file({k: v.contiguous() for k, v in build_tiny_components()["vae"].state_dict().items()}, str(file))
    copy = tmp_path / "elsewhere" / "renamed.safetensors"
    copy.parent.mkdir()
    shutil.copy2(file, copy)
    first = model_identity("tiny", vae=str(file))
    assert model_identity("tiny", vae=str(copy)) == first
    _retrained_in_place(file, replace_file=False)
    assert model_identity("tiny", vae=str(file)) != first
    assert model_identity("tiny", vae=str(copy)) == first


def test_a_vae_replaced_in_place_is_inverted_with_again(tmp_path):
    """A reference picture inverted with a VAE; the VAE folder's weights are replaced by others
    of the same size and time: the next set inverts again, with the new VAE, exactly as a fresh
    engine does (the stale trajectory is neither reused nor recomputed with the old VAE)."""
    from PIL import Image, ImageDraw

    picture = tmp_path / "style.png"
    image = Image.new("RGB", (150, 100), (30, 40, 120))
    ImageDraw.Draw(image).ellipse((30, 10, 110, 90), fill=(240, 170, 30))
    image.save(picture)
    folder = _vae_folder(tmp_path / "vae", False)
    request = SetRequest(model="tiny", style=ReferencePicture(str(picture), "a sun", inversion_offset=1),
                         panels=(Panel("a car", 2),), sampling=Sampling(steps=3, width=128, height=64),
                         device="cpu", dtype="float32", vae=str(folder), cache_dir=str(tmp_path / "cache"))
    engine = Engine()
    key, trajectory = engine.reference_trajectory(request)
    _retrained_in_place(folder / "diffusion_pytorch_model.safetensors", replace_file=True)
    events = []
    new_key, new_trajectory = engine.reference_trajectory(request, events.append)
    assert sum(isinstance(e, ev.Inverting) for e in events) == 3
    assert new_key.model != key.model
    assert (new_trajectory.z0 - trajectory.z0).abs().max() > 1e-3
    _, fresh = Engine().reference_trajectory(replace(request, cache_dir=str(tmp_path / "fresh-cache")))
    torch.testing.assert_close(new_trajectory.z0, fresh.z0, rtol=0, atol=0)
