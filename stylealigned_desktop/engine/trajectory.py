"""An inverted reference picture's trajectory, how the generator indexes it, and its cache
(spec section 7): :class:`Trajectory`, :class:`TrajectoryKey`, the safetensors files
(:func:`save_trajectory` / :func:`load_trajectory`) and :class:`TrajectoryCache`.
``inversion.py`` computes trajectories; this module only holds, reads and stores them.

Indexing convention (shared with the generator). The generation runs all T = ``steps``
denoising steps over ``traj.timesteps`` (noisiest first); "step i" (0-based) is the UNet
evaluation at ``traj.timesteps[i]``, the ``i`` of diffusers' ``callback_on_step_end``.
``traj.latents[k]`` is the inverted latent at noise level ``traj.timesteps[k]`` for k < T, and
``traj.latents[T]`` is z0. Following the authors, the reference row:

- enters step 0 as ``traj[offset]``;
- after step i is overwritten with ``traj[max(offset + 1, i + 1)]``
  (:func:`reference_latent_after_step`), so it enters step i >= 1 as
  ``traj[max(offset + 1, i)]`` (:func:`reference_unet_input`) and ends, after step T - 1,
  as ``traj[T] = z0``: its final image is the VAE round trip of the picture.

For i >= offset + 1 the reference therefore sits exactly at the level the UNet is told
(``traj[i]`` at ``timesteps[i]``); before that it is deliberately a little cleaner (the
authors' ``offset``). The latents are variance-preserving (DDPM/DDIM form): they are what the
UNet takes as input. With DDIM the scheduler sample is the same thing; with a scheduler whose
samples are scaled (Euler: sample = latent * sqrt(1 + sigma^2)), feed the reference's UNet
input directly instead of passing it through ``scale_model_input``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import temporaries

log = logging.getLogger(__name__)

TRAJECTORY_FORMAT = "stylealigned-trajectory"
TRAJECTORY_VERSION = 2  # 2: steps between the schedule's own neighbouring levels (spec 7.3)


@dataclass(frozen=True)
class Trajectory:
    """An inverted picture: ``steps + 1`` latents, noisiest first (treat as read-only).

    ``latents``: float32 CPU tensor (T+1, C, height/8, width/8); ``latents[T]`` is z0.
    ``timesteps``: int64 CPU tensor (T,), descending; ``latents[k]`` is at level ``timesteps[k]``.
    """

    latents: torch.Tensor
    timesteps: torch.Tensor
    caption: str
    guidance: float
    width: int
    height: int
    scheduler: str = "ddim"

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    @property
    def z0(self) -> torch.Tensor:
        """The clean latent (1, C, h, w)."""
        return self.latents[-1:]

    def __getitem__(self, index: int) -> torch.Tensor:
        """``traj[k]``: latent k as a (1, C, h, w) batch of one."""
        if not -len(self.latents) <= index < len(self.latents):
            raise IndexError(f"trajectory index {index} out of range 0..{len(self.latents) - 1}")
        return self.latents[index].unsqueeze(0)

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def _check_offset(traj: Trajectory, i: int, offset: int) -> None:
    steps = traj.steps
    if not 0 <= offset < steps:
        raise ValueError(f"inversion offset must be in 0..{steps - 1} for {steps} steps, got {offset}")
    if not 0 <= i < steps:
        raise ValueError(f"denoising step must be in 0..{steps - 1}, got {i}")


def reference_latent_after_step(traj: Trajectory, i: int, offset: int) -> torch.Tensor:
    """The reference latent after denoising step i (0-based): ``traj[max(offset + 1, i + 1)]``.

    After the last step (i = T - 1) this is z0.
    """
    _check_offset(traj, i, offset)
    return traj[max(offset + 1, i + 1)]


def reference_unet_input(traj: Trajectory, i: int, offset: int) -> torch.Tensor:
    """The reference latent the UNet sees at step i: ``traj[offset]`` for i = 0, else the
    latent written after step i - 1, ``traj[max(offset + 1, i)]``."""
    _check_offset(traj, i, offset)
    return traj[offset] if i == 0 else reference_latent_after_step(traj, i - 1, offset)


@dataclass(frozen=True)
class TrajectoryKey:
    """Everything a trajectory depends on (spec 7.6). ``picture_hash``: the picture's content
    hash; ``model``: a string identifying the weights (hub id + revision, folder, file...);
    ``timesteps``: the generation schedule's levels, noisiest first (the inversion steps between
    them, so two schedules with the same name and steps but other levels never share an entry)."""

    picture_hash: str
    caption: str
    model: str
    width: int
    height: int
    scheduler: str
    steps: int
    guidance: float
    timesteps: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        if len(self.timesteps) != self.steps:
            raise ValueError(f"a trajectory key needs the {self.steps} levels of the schedule, "
                             f"got {len(self.timesteps)}")

    def digest(self) -> str:
        """sha256 (hex) of the fields, stable across runs and platforms."""
        fields = asdict(self)
        fields["guidance"] = float(fields["guidance"])
        fields["format_version"] = TRAJECTORY_VERSION
        text = json.dumps(fields, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_trajectory(path: str | Path, traj: Trajectory, key: TrajectoryKey | None = None) -> Path:
    """Write a trajectory as safetensors (tensors ``latents``, ``timesteps``; the fields as
    metadata) atomically: a temporary file in the same folder, then ``os.replace``."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {
        "format": TRAJECTORY_FORMAT,
        "version": str(TRAJECTORY_VERSION),
        "caption": traj.caption,
        "guidance": repr(float(traj.guidance)),
        "width": str(traj.width),
        "height": str(traj.height),
        "scheduler": traj.scheduler,
        "steps": str(traj.steps),
    }
    if key is not None:
        metadata["key"] = json.dumps(asdict(key), sort_keys=True)
        metadata["picture_hash"] = key.picture_hash
        metadata["model"] = key.model
    tensors = {"latents": traj.latents.contiguous(), "timesteps": traj.timesteps.contiguous()}
    temporaries.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


class TrajectoryFileError(ValueError):
    """A trajectory file that cannot be read or is not a valid trajectory."""


def load_trajectory(path: str | Path, key: TrajectoryKey | None = None) -> Trajectory:
    """Read a file written by :func:`save_trajectory`. With ``key``, the file must have been
    saved for that key. Raises :class:`TrajectoryFileError` naming the file if it is not valid."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            latents = handle.get_tensor("latents")
            timesteps = handle.get_tensor("timesteps")
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise TrajectoryFileError(f"cannot read trajectory file {path}: {error}") from error
    try:
        if metadata.get("format") != TRAJECTORY_FORMAT:
            raise ValueError(f"not a {TRAJECTORY_FORMAT} file")
        if int(metadata.get("version", "0")) > TRAJECTORY_VERSION:
            raise ValueError(f"written by a newer version ({metadata['version']})")
        steps = int(metadata["steps"])
        width, height = int(metadata["width"]), int(metadata["height"])
        if timesteps.shape != (steps,) or latents.dim() != 4 or latents.shape[0] != steps + 1:
            raise ValueError(
                f"shapes {tuple(latents.shape)} / {tuple(timesteps.shape)} do not match {steps} steps"
            )
        if not torch.isfinite(latents).all():
            raise ValueError("latents are not finite")
        if key is not None and metadata.get("key") != json.dumps(asdict(key), sort_keys=True):
            raise ValueError("saved for different inputs")
        if key is not None and tuple(timesteps.tolist()) != key.timesteps:
            raise ValueError("saved for other levels of the schedule")
        return Trajectory(
            latents=latents.to(torch.float32),
            timesteps=timesteps.to(torch.int64),
            caption=metadata["caption"],
            guidance=float(metadata["guidance"]),
            width=width,
            height=height,
            scheduler=metadata["scheduler"],
        )
    except (KeyError, ValueError) as error:
        raise TrajectoryFileError(f"invalid trajectory file {path}: {error}") from error


class TrajectoryCache:
    """Trajectories kept in memory (the most recent ``memory_items``) and as safetensors files
    in ``folder`` (a session's ``cache/``, or :func:`stylealigned_desktop.paths.cache_dir`).

    A damaged or unreadable file is recomputed and overwritten; a file that cannot be written
    only costs the disk copy. Neither stops a run.
    """

    def __init__(self, folder: str | Path, memory_items: int = 8):
        self.folder = Path(folder)
        self.memory_items = max(0, memory_items)
        self._memory: OrderedDict[str, Trajectory] = OrderedDict()
        self._lock = threading.Lock()

    def path_for(self, key: TrajectoryKey) -> Path:
        return self.folder / f"trajectory-{key.digest()}.safetensors"

    def _remember(self, digest: str, traj: Trajectory) -> None:
        with self._lock:
            self._memory[digest] = traj
            self._memory.move_to_end(digest)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def get(self, key: TrajectoryKey) -> Trajectory | None:
        """The cached trajectory (memory, then disk), or None."""
        digest = key.digest()
        with self._lock:
            traj = self._memory.get(digest)
            if traj is not None:
                self._memory.move_to_end(digest)
                return traj
        path = self.path_for(key)
        if not path.exists():
            return None
        try:
            traj = load_trajectory(path, key)
        except TrajectoryFileError as error:
            log.warning("ignoring cached trajectory, it will be recomputed: %s", error)
            return None
        self._remember(digest, traj)
        return traj

    def put(self, key: TrajectoryKey, traj: Trajectory) -> None:
        """Keep ``traj`` in memory and write it to disk (a failed write is logged, not raised)."""
        self._remember(key.digest(), traj)
        # what a write killed a minute ago or more left (a fresh one may be another engine's)
        temporaries.remove_stale_temporaries(self.path_for(key).parent, ".*.tmp")
        try:
            save_trajectory(self.path_for(key), traj, key)
        except OSError as error:
            log.warning("could not write the trajectory cache file %s: %s", self.path_for(key), error)

    def get_or_compute(self, key: TrajectoryKey, compute: Callable[[], Trajectory]) -> Trajectory:
        """The cached trajectory for ``key``, or ``compute()``'s, which is then cached.
        Exceptions of ``compute`` (e.g. ``InversionCancelled``) propagate; nothing is cached."""
        traj = self.get(key)
        if traj is None:
            traj = compute()
            self.put(key, traj)
        return traj

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
