"""A trajectory file read back (engine/trajectory.py, spec 7.6): its version, the shapes of its
tensors and their types, each refusal in full. Written by ``save_trajectory`` and then edited
as another program or version would have written it."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from stylealigned_desktop.engine.inversion import (
    TRAJECTORY_VERSION,
    Trajectory,
    TrajectoryFileError,
    load_trajectory,
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
