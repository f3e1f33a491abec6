"""Hub models in the Hugging Face cache: completeness of a snapshot, its revision in the model
identity (so caches keyed by the model are not reused after the repository changes)."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.engine.hub import (
    cached_snapshot,
    complete_snapshot,
    download_command,
    missing_parts,
    snapshot_revision,
)
from stylealigned_desktop.engine.inversion import TrajectoryKey
from stylealigned_desktop.engine.models import model_identity

REPO = "someone/sdxl-like"
PIPELINE_INDEX = {"_class_name": "StableDiffusionXLPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                  "scheduler": ["diffusers", "EulerDiscreteScheduler"], "image_encoder": [None, None]}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache folder that huggingface_hub reads from."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def write_snapshot(cache, repo_id, commit, files: dict[str, bytes | str]):
    """The layout snapshot_download leaves: refs/main names the commit, files under snapshots/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        path = snapshot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return snapshot


def _pipeline_files(**extra):
    files = {"model_index.json": json.dumps(PIPELINE_INDEX), "unet/config.json": "{}",
             "unet/diffusion_pytorch_model.fp16.safetensors": b"w",
             "scheduler/scheduler_config.json": "{}"}
    files.update(extra)
    return files


def test_model_identity_names_the_cached_revision_and_changes_with_it(hub_cache):
    first = "a" * 40
    write_snapshot(hub_cache, REPO, first, _pipeline_files())
    assert snapshot_revision(REPO) == first
    identity = model_identity(REPO)
    assert identity == f"hub:{REPO}@{first}"
    key = dict(picture_hash="p", caption="", width=64, height=64, scheduler="ddim", steps=1, guidance=2.0,
               timesteps=(1,))
    second = "b" * 40
    write_snapshot(hub_cache, REPO, second, _pipeline_files())  # the repository moved on
    assert model_identity(REPO) == f"hub:{REPO}@{second}"
    assert TrajectoryKey(model=identity, **key).digest() != TrajectoryKey(model=model_identity(REPO), **key).digest()


def test_a_model_not_in_the_cache_has_no_snapshot(hub_cache):
    assert cached_snapshot(REPO) is None and snapshot_revision(REPO) is None
    assert model_identity(REPO) == f"hub:{REPO}"


def test_a_complete_pipeline_snapshot(hub_cache):
    snapshot = write_snapshot(hub_cache, REPO, "c" * 40, _pipeline_files())
    assert missing_parts(snapshot) == []
    assert complete_snapshot(REPO) == snapshot


def test_an_interrupted_pipeline_download_is_not_present(hub_cache):
    """snapshot_download writes refs/main and the small files first: model_index.json alone,
    or a component without its weights, is not a model."""
    files = _pipeline_files()
    del files["unet/diffusion_pytorch_model.fp16.safetensors"]
    snapshot = write_snapshot(hub_cache, REPO, "d" * 40, files)
    assert cached_snapshot(REPO) == snapshot
    assert missing_parts(snapshot) == ["unet/*.safetensors"]
    assert complete_snapshot(REPO) is None
    only_index = write_snapshot(hub_cache, "someone/other", "e" * 40, {"model_index.json": json.dumps(PIPELINE_INDEX)})
    assert missing_parts(only_index) == ["scheduler/", "unet/"]


def test_a_sharded_model_needs_every_shard(hub_cache):
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    snapshot = write_snapshot(hub_cache, "someone/controlnet", "f" * 40, {
        "config.json": "{}", "model.safetensors.index.json": json.dumps(index),
        "model-00001-of-00002.safetensors": b"1"})
    assert missing_parts(snapshot) == ["model-00002-of-00002.safetensors"]
    (snapshot / "model-00002-of-00002.safetensors").write_bytes(b"2")
    assert missing_parts(snapshot) == [] and complete_snapshot("someone/controlnet") == snapshot


def test_a_single_model_with_pickle_weights_only_is_not_present(hub_cache):
    snapshot = write_snapshot(hub_cache, "someone/dino", "0" * 40, {"config.json": "{}", "pytorch_model.bin": b"x"})
    assert missing_parts(snapshot) == ["*.safetensors"]


def test_the_download_command_is_huggingface_hubs_current_cli():
    assert download_command(REPO) == f"hf download {REPO}"


def test_an_sd15_snapshot_is_complete_without_its_safety_checker_and_its_base_is_read(hub_cache):
    """SD 1.x repositories name a safety checker the engine never loads: the download leaves it
    out, the snapshot is complete without it, and its UNet config says it is SD 1.5."""
    from fnmatch import fnmatch

    from stylealigned_desktop.engine.models import base_of_source
    from stylealigned_desktop.ui.dialogs.model_download import download_patterns

    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
             "feature_extractor": ["transformers", "CLIPImageProcessor"]}
    files = {"model_index.json": json.dumps(index), "unet/config.json": json.dumps({"cross_attention_dim": 768}),
             "unet/diffusion_pytorch_model.safetensors": b"w"}
    snapshot = write_snapshot(hub_cache, "someone/sd15-like", "f" * 40, files)
    assert missing_parts(snapshot) == []
    assert base_of_source("someone/sd15-like").name == "SD 1.5"
    ignored = download_patterns(half_precision=False)
    for name in ("safety_checker/model.safetensors", "v1-5-pruned-emaonly.safetensors",
                 "v2-1_768-ema-pruned.safetensors"):
        assert any(fnmatch(name, pattern) for pattern in ignored), name
    assert not any(fnmatch("unet/diffusion_pytorch_model.safetensors", pattern) for pattern in ignored)
