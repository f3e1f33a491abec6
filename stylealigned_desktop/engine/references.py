"""The rows the panels share, recorded before and during the denoising (spec sections 3, 7, 11).

The references are the first rows of a run (``rows.py``). A generated reference denoises like
any row; a picture reference is DDIM-inverted once (or taken from the trajectory cache) and
follows its trajectory, step by step, to end as the picture's VAE round trip. In every step the
references' UNet call records their shared layers (``denoise.recorded_eps``), blended by
:attr:`ReferenceRows.weights`. Character anchors (spec section 13) are recorded here next: rows
that record with the references, each with the panels that share it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from . import events as ev
from .errors import GenerationCancelled, GenerationError
from .models import model_identity
from .request import ReferencePicture, SetRequest
from .rows import RunRows


@dataclass
class ReferenceRows:
    """The rows the panels share (spec sections 3, 7, 11): a generated reference denoises like
    any row; a picture reference follows its inversion trajectory and ends as the picture's VAE
    round trip. Character anchors (spec section 13) are the next rows of this kind."""

    trajectories: dict[int, tuple[Any, int]]
    """Row number of a picture reference -> (its trajectory, its inversion offset)."""
    weights: tuple[float, ...]
    """The references' normalised weights, in row order (what the shared layers blend by)."""

    def place(self, latents: torch.Tensor, scheduler, i: int, t) -> None:
        """Put each picture reference (rows of the set-size ``latents``) on its trajectory for step i."""
        for row, (trajectory, offset) in self.trajectories.items():
            latents[row] = reference_sample(scheduler, trajectory, i, offset, t).to(latents.device, latents.dtype)

    def finish(self, latents: torch.Tensor) -> None:
        """After the last step: each picture reference is its picture's VAE round trip (z0)."""
        for row, (trajectory, _offset) in self.trajectories.items():
            latents[row] = trajectory.z0.to(latents.device, latents.dtype)


def reference_sample(scheduler, trajectory, i, offset, t):
    """A picture reference's sample at step i, in the scheduler's own scaling.

    The trajectory holds UNet inputs; ``scale_model_input`` is linear (identity for DDIM and
    DPM-Solver, 1/sqrt(sigma^2 + 1) for Euler), so dividing by its factor gives the sample.
    """
    from .inversion import reference_unet_input

    unet_input = reference_unet_input(trajectory, i, offset)
    factor = scheduler.scale_model_input(torch.ones(1, device=t.device), t).item()
    return unet_input / factor


def record_references(cache, pipe, request: SetRequest, rows: RunRows, timesteps,
                      sink: Callable[[ev.Event], None], cancel: threading.Event) -> ReferenceRows:
    """The references of a run before its first step: each picture reference's inversion
    trajectory (from ``cache`` or inverted now, with its offset checked) and the weights."""
    steps = request.sampling.steps
    trajectories = {}
    # the references and anchors are the first rows, those of the set-size latents
    pictures = {row: picture for row, picture in enumerate(map(row_picture, rows.rows)) if picture is not None}
    for place, (row, picture) in enumerate(pictures.items(), start=1):
        offset = picture.offset_for(steps)
        if not 0 <= offset < steps:
            raise GenerationError(f"inversion offset must be in 0..{steps - 1} for "
                                  f"{steps} steps, got {offset}")
        # which picture of how many, for progress
        trajectory = picture_trajectory(cache, pipe, request, timesteps, sink, cancel, picture, (place, len(pictures)))
        trajectories[row] = (trajectory, offset)
    return ReferenceRows(trajectories, tuple(request.weights[r.position] for r in rows.references))


def row_picture(row) -> ReferencePicture | None:
    """The picture a recording row follows: a picture reference's, or a picture anchor's (its
    character's design, inverted with the description as caption, spec section 13)."""
    if row.role == "reference":
        return row.source if isinstance(row.source, ReferencePicture) else None
    if row.role == "anchor" and row.source.picture is not None:
        return ReferencePicture(row.source.picture, caption=row.source.prompt)
    return None


def picture_trajectory(cache, pipe, request, timesteps, sink, cancel, style=None, place=(1, 1)):
    """A reference picture's DDIM trajectory (``style``; None: the request's first
    picture), from ``cache`` (an ``inversion.TrajectoryCache``) or inverted now; ``place``:
    (which, of how many) pictures this run reads, for the Inverting events."""
    from .inversion import InversionCancelled, encode_picture, invert

    style = style or first_picture(request)
    sampling = request.sampling
    key, picture = trajectory_key(request, timesteps, style)
    levels = list(key.timesteps)

    def compute():
        z0 = encode_picture(pipe, picture)
        return invert(pipe, z0, style.caption, sampling.steps, style.inversion_guidance,
                      sampling.width, sampling.height, scheduler=sampling.scheduler, timesteps=levels,
                      on_step=lambda done, total: sink(ev.Inverting(done, total, *place)), cancel=cancel)

    try:
        trajectory = cache.get_or_compute(key, compute)
    except InversionCancelled:
        raise GenerationCancelled() from None
    if [int(t) for t in trajectory.timesteps] != levels:
        raise GenerationError("the cached inversion does not match this scheduler's timesteps")
    return trajectory


def trajectory_key(request, timesteps, style=None):
    """The cache key of a reference picture's trajectory (``style``; None: the request's
    first picture), and the fitted picture. ``timesteps``: the generation schedule's levels
    (the inversion steps between them, spec 7.3)."""
    from .images import fit_picture, load_picture, picture_hash
    from .inversion import TrajectoryKey

    style, sampling = style or first_picture(request), request.sampling
    picture = fit_picture(load_picture(style.path), sampling.width, sampling.height)
    key = TrajectoryKey(
        picture_hash=picture_hash(picture), caption=style.caption,
        model=model_identity(request.model, request.vae, request.loras),
        width=sampling.width, height=sampling.height, scheduler=sampling.scheduler,
        steps=sampling.steps, guidance=float(style.inversion_guidance),
        timesteps=tuple(int(t) for t in timesteps),
    )
    return key, picture


def first_picture(request: SetRequest) -> ReferencePicture:
    """The request's first picture reference (the one ``Engine.reference_trajectory`` inverts)."""
    picture = next((r for r in request.references if isinstance(r, ReferencePicture)), None)
    if picture is None:
        raise GenerationError("the set has no reference picture to invert")
    return picture
