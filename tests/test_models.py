import json

import pytest

from stylealigned_desktop.engine.models import (
    ModelSourceError,
    classify_source,
    load_pipeline,
    model_identity,
    resolve_device,
    resolve_dtype,
)

from .cli_refusals import refused_generate


def test_classify_sources(tmp_path):
    assert classify_source("tiny") == "tiny"
    assert classify_source("stabilityai/stable-diffusion-xl-base-1.0") == "hub"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    assert classify_source(str(folder)) == "folder"
    single = tmp_path / "sdxl.safetensors"
    single.write_bytes(b"x")
    assert classify_source(str(single)) == "single_file"


@pytest.mark.parametrize("name", ["model.ckpt", "model.pt", "model.pth", "pytorch_model.bin", "m.pkl"])
def test_pickle_checkpoints_are_refused_even_if_missing(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04")
    with pytest.raises(ModelSourceError, match="pickle"):
        classify_source(str(path))


@pytest.mark.parametrize(
    "source, fragment",
    [("", "no model"), ("./missing-folder", "no such"), ("/nowhere/model.safetensors", "no such"),
     ("not a model!", "unknown model")],
)
def test_unusable_sources(source, fragment):
    with pytest.raises(ModelSourceError, match=fragment):
        classify_source(source)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelSourceError, match="model_index.json"):
        classify_source(str(tmp_path))


def test_hub_model_missing_offline_explains_how_to_get_it():
    with pytest.raises(ModelSourceError, match="hf download someone/no-such-sdxl"):
        load_pipeline("someone/no-such-sdxl", device="cpu")


def test_broken_single_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"this is not a safetensors file")
    with pytest.raises(ModelSourceError, match="broken.safetensors"):
        load_pipeline(str(path), device="cpu")


def test_device_and_dtype_on_this_machine():
    import torch

    device = resolve_device("cpu")
    assert device.type == "cpu" and resolve_dtype("auto", device) == torch.float32
    assert resolve_dtype("float16", device) == torch.float16
    if not torch.cuda.is_available():
        with pytest.raises(ModelSourceError, match="no CUDA"):
            resolve_device("cuda")


def test_model_identity_changes_with_the_weights(tmp_path):
    folder = tmp_path / "m"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"a")
    first = model_identity(str(folder))
    weights.write_bytes(b"bb")
    assert model_identity(str(folder)) != first
    assert model_identity("tiny") == model_identity("tiny")


def _hostile_model(tmp_path, kind):
    """A model source an artist may point at by mistake."""
    import os

    if kind == "broken index":  # a folder whose model_index.json is no JSON and which has no UNet config
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "model_index.json").write_text("{not json")
        return tmp_path / "broken"
    if kind == "not a checkpoint":
        (tmp_path / "notes.safetensors").write_text("hello")
        return tmp_path / "notes.safetensors"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.safetensors")  # opening it would block: it must never be opened
        return tmp_path / "pipe.safetensors"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


@pytest.mark.parametrize("kind, said", [
    ("broken index", "cannot tell which base model this is .*: its unet/config.json is missing or not valid JSON"),
    ("not a checkpoint", "cannot tell which base model this is .*: it is no safetensors checkpoint"),
    ("fifo", "not a regular file or folder"),
    ("symlink loop", "a link that leads nowhere"),
])
def test_a_hostile_model_is_one_line_and_exit_2_before_anything_loads(tmp_path, capsys, monkeypatch, kind, said):
    import re

    source = str(_hostile_model(tmp_path, kind))
    err = refused_generate(["--model", source, "--reference-prompt", "a hill", "--prompt", "a fox"],
                           tmp_path, monkeypatch, capsys)
    assert source in err and re.search(said, err), err
