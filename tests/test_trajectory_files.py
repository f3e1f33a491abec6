"""A trajectory file read back (engine/trajectory.py, spec 7.6): its version, the shapes of its
tensors and their types, each refusal in full. Written by ``save_trajectory`` and then edited
as another program or version would have written it. Then the file as written (its metadata,
its temporary), the key's digest, the indexing's bounds and the cache's memory and warnings,
all without a model."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from fnmatch import fnmatch

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from stylealigned_desktop.engine.inversion import (
    TRAJECTORY_VERSION,
    Trajectory,
    TrajectoryCache,
    TrajectoryFileError,
    TrajectoryKey,
    load_trajectory,
    reference_latent_after_step,
    reference_unet_input,
    save_trajectory,
)

STEPS = 2


def _trajectory() -> Trajectory:
    latents = torch.randn(STEPS + 1, 4, 8, 12, generator=torch.Generator().manual_seed(3))
    return Trajectory(latents=latents, timesteps=torch.tensor([900, 400]), caption="a harbour", guidance=2.5,
                      width=96, height=64, scheduler="euler")


def _edited(tmp_path, metadata=None, **tensors):
    """A file save_trajectory wrote, with some of its metadata (None: left out) and tensors replaced."""
    path = save_trajectory(tmp_path / "saved.safetensors", _trajectory())
    with safe_open(str(path), framework="pt") as handle:
        saved = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
        fields = handle.metadata()
    fields.update(metadata or {})
    save_file({**saved, **tensors}, str(path), metadata={k: v for k, v in fields.items() if v is not None})
    return path


def _refusal(path) -> str:
    with pytest.raises(TrajectoryFileError) as refused:
        load_trajectory(path)
    return str(refused.value).removeprefix(f"invalid trajectory file {path}: ")


def test_a_file_of_this_version_or_without_one_is_read_and_a_newer_one_is_refused(tmp_path):
    for version in (str(TRAJECTORY_VERSION), None):
        loaded = load_trajectory(_edited(tmp_path, {"version": version}))
        assert torch.equal(loaded.latents, _trajectory().latents)
    newer = str(TRAJECTORY_VERSION + 1)
    assert _refusal(_edited(tmp_path, {"version": newer})) == f"written by a newer version ({newer})"


def test_the_tensors_must_fit_the_steps(tmp_path):
    latents = _trajectory().latents
    cases = {"latents of another rank": {"latents": latents[:, 0].contiguous()},
             "a latent too many": {"latents": torch.cat([latents, latents[:1]])},
             "a level too many": {"timesteps": torch.tensor([900, 400, 100])}}
    expected = {"latents of another rank": "shapes (3, 8, 12) / (2,) do not match 2 steps",
                "a latent too many": "shapes (4, 4, 8, 12) / (2,) do not match 2 steps",
                "a level too many": "shapes (3, 4, 8, 12) / (3,) do not match 2 steps"}
    assert {case: _refusal(_edited(tmp_path, **tensors)) for case, tensors in cases.items()} == expected
    broken = latents.clone()
    broken[1, 2, 3, 4] = float("nan")
    assert _refusal(_edited(tmp_path, latents=broken)) == "latents are not finite"


def test_half_precision_latents_and_int32_levels_are_read_as_float32_and_int64(tmp_path):
    trajectory = _trajectory()
    path = _edited(tmp_path, latents=trajectory.latents.half(), timesteps=trajectory.timesteps.int())
    loaded = load_trajectory(path)
    assert loaded.latents.dtype == torch.float32 and loaded.timesteps.dtype == torch.int64
    assert torch.equal(loaded.latents, trajectory.latents.half().float())
    assert loaded.timesteps.tolist() == [900, 400]
    assert (loaded.caption, loaded.guidance, loaded.width, loaded.height, loaded.scheduler) == (
        "a harbour", 2.5, 96, 64, "euler")


def _key(picture_hash="abc123", caption="a harbour", timesteps=(900, 400)) -> TrajectoryKey:
    return TrajectoryKey(picture_hash=picture_hash, caption=caption, model="tiny", width=96, height=64,
                         scheduler="euler", steps=STEPS, guidance=2.5, timesteps=timesteps)


def test_a_trajectory_is_indexed_from_either_end_and_names_its_range():
    trajectory = _trajectory()
    assert torch.equal(trajectory[-3], trajectory.latents[:1]) and torch.equal(trajectory[2], trajectory.latents[2:])
    for index in (3, -4):
        with pytest.raises(IndexError) as refused:
            trajectory[index]
        assert str(refused.value) == f"trajectory index {index} out of range 0..2"


def test_offset_zero_is_an_offset_and_the_bounds_are_named():
    trajectory = _trajectory()
    assert torch.equal(reference_unet_input(trajectory, 0, 0), trajectory[0])
    assert torch.equal(reference_latent_after_step(trajectory, 0, 0), trajectory[1])
    with pytest.raises(ValueError) as refused:
        reference_unet_input(trajectory, 0, STEPS)
    assert str(refused.value) == "inversion offset must be in 0..1 for 2 steps, got 2"
    with pytest.raises(ValueError) as refused:
        reference_latent_after_step(trajectory, STEPS, 0)
    assert str(refused.value) == "denoising step must be in 0..1, got 2"


def test_a_key_takes_the_levels_as_whole_numbers_and_needs_one_per_step():
    key = _key(timesteps=torch.tensor([900.0, 400.0]))  # a schedule's float levels
    assert key.timesteps == (900, 400) and all(type(t) is int for t in key.timesteps)
    assert key.digest() == _key().digest()
    with pytest.raises(ValueError) as refused:
        _key(timesteps=(900, 400, 100))
    assert str(refused.value) == "a trajectory key needs the 2 levels of the schedule, got 3"


def test_a_keys_digest_is_the_sha256_of_its_fields_as_sorted_ascii_json():
    """The cache's file names: the same for the same inputs in every run, version and platform of
    the app (a cache folder outlives an update); the format version is one of the fields."""
    key = TrajectoryKey(picture_hash="abc123", caption="un café", model="tiny", width=96, height=64,
                        scheduler="euler", steps=2, guidance=2, timesteps=(900, 400))
    text = ('{"caption": "un caf\\u00e9", "format_version": ' + str(TRAJECTORY_VERSION) + ', "guidance": 2.0, '
            '"height": 64, "model": "tiny", "picture_hash": "abc123", "scheduler": "euler", "steps": 2, '
            '"timesteps": [900, 400], "width": 96}')
    assert key.digest() == hashlib.sha256(text.encode("ascii")).hexdigest()


def test_a_saved_file_says_what_it_is_and_for_which_picture_and_model(tmp_path):
    key = _key()
    path = save_trajectory(tmp_path / "new" / "folders" / "t.safetensors", _trajectory(), key)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata == {"format": "stylealigned-trajectory", "version": str(TRAJECTORY_VERSION),
                        "caption": "a harbour", "guidance": "2.5", "width": "96", "height": "64",
                        "scheduler": "euler", "steps": "2", "picture_hash": "abc123", "model": "tiny",
                        "key": json.dumps({"caption": "a harbour", "guidance": 2.5, "height": 64, "model": "tiny",
                                           "picture_hash": "abc123", "scheduler": "euler", "steps": 2,
                                           "timesteps": [900, 400], "width": 96}, sort_keys=True)}


def test_a_file_is_written_through_a_tmp_file_beside_it(tmp_path, monkeypatch):
    """The temporary sits in the same folder (an atomic replace) and ends in .tmp (a session
    folder's copy skips those)."""
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    path = save_trajectory(tmp_path / "t.safetensors", _trajectory())
    [(temporary, target)] = replaced
    assert os.path.dirname(temporary) == str(tmp_path) and target == path
    assert fnmatch(os.path.basename(temporary), f".t.safetensors.{os.getpid()}.*.tmp")  # run folders' naming
    assert sorted(tmp_path.iterdir()) == [path]


def test_the_cache_removes_what_a_killed_write_left_a_minute_ago_and_keeps_a_fresh_one(tmp_path):
    """A write killed mid-way leaves its temporary (a whole trajectory's size) in the cache
    folder: the next write there removes it once it is a minute old; a fresher one may be
    another engine's write in progress, and a file that is no temporary is never touched."""
    import time

    key = _key()
    cache = TrajectoryCache(tmp_path)
    folder = cache.path_for(key).parent
    folder.mkdir(parents=True, exist_ok=True)
    killed, writing, other = (folder / ".x.safetensors.1.abc.tmp", folder / ".y.safetensors.2.def.tmp",
                              folder / "notes.tmp")
    for leftover in (killed, writing, other):
        leftover.write_bytes(b"half a file")
    old = time.time() - 120
    os.utime(killed, (old, old))
    os.utime(other, (old, old))
    cache.put(key, _trajectory())
    assert sorted(p.name for p in folder.iterdir()) == sorted([cache.path_for(key).name, writing.name, other.name])


def test_a_failed_write_leaves_nothing_and_raises_its_own_error(tmp_path, monkeypatch):
    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as out:
            out.write(b"half a file")
        raise OSError("no space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="^no space left on device$"):
        save_trajectory(tmp_path / "t.safetensors", _trajectory())
    assert list(tmp_path.iterdir()) == []


def test_a_file_for_other_inputs_or_other_levels_is_refused_by_name(tmp_path):
    path = save_trajectory(tmp_path / "t.safetensors", _trajectory(), _key())
    with pytest.raises(TrajectoryFileError) as refused:
        load_trajectory(path, _key(caption="a forest"))
    assert str(refused.value) == f"invalid trajectory file {path}: saved for different inputs"
    other_levels = _key(timesteps=(901, 400))  # the key says other levels than the file's tensor holds
    save_trajectory(path, _trajectory(), other_levels)
    with pytest.raises(TrajectoryFileError) as refused:
        load_trajectory(path, other_levels)
    assert str(refused.value) == f"invalid trajectory file {path}: saved for other levels of the schedule"


def _put(cache: TrajectoryCache, *names: str) -> dict[str, Trajectory]:
    kept = {name: _trajectory() for name in names}
    for name, trajectory in kept.items():
        cache.put(_key(name), trajectory)
    return kept


def test_the_cache_keeps_the_most_recently_used_in_memory_and_reads_the_rest_from_disk(tmp_path):
    cache = TrajectoryCache(tmp_path, memory_items=2)
    kept = _put(cache, "a", "b")
    assert cache.get(_key("a")) is kept["a"]  # now the most recent
    kept |= _put(cache, "c")
    assert cache.get(_key("a")) is kept["a"] and cache.get(_key("c")) is kept["c"]
    from_disk = cache.get(_key("b"))
    assert from_disk is not kept["b"] and torch.equal(from_disk.latents, kept["b"].latents)
    default = TrajectoryCache(tmp_path / "default")
    kept = _put(default, *"123456789")
    assert default.get(_key("2")) is kept["2"] and default.get(_key("1")) is not kept["1"]  # eight kept
    nothing = TrajectoryCache(tmp_path / "nothing", memory_items=0)
    kept = _put(nothing, "a")
    assert nothing.get(_key("a")) is not kept["a"]


def test_a_trajectory_read_from_disk_is_kept_in_memory(tmp_path):
    key = _key()
    TrajectoryCache(tmp_path).put(key, _trajectory())
    cache = TrajectoryCache(tmp_path)
    first = cache.get(key)
    cache.path_for(key).unlink()
    assert cache.get(key) is first


def test_the_cache_says_which_file_it_ignores_or_cannot_write(tmp_path, caplog):
    key = _key()
    cache = TrajectoryCache(tmp_path)
    cache.path_for(key).write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="stylealigned_desktop.engine.trajectory"):
        assert cache.get(key) is None
        blocked = TrajectoryCache(tmp_path / "t.safetensors" / "below-a-file")
        (tmp_path / "t.safetensors").write_bytes(b"")
        blocked.put(key, _trajectory())
    ignored, unwritten = (record.getMessage() for record in caplog.records)
    assert ignored.startswith("ignoring cached trajectory, it will be recomputed: "
                              f"cannot read trajectory file {cache.path_for(key)}: ")
    assert unwritten.startswith(f"could not write the trajectory cache file {blocked.path_for(key)}: [Errno ")
