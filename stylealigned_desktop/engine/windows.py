"""Wide panels as MultiDiffusion windows (spec section 14).

A panel at least ``Sampling.panorama_above`` times the model's native width or height is not drawn
in one piece: its latent is tiled with windows of the native latent size (never larger than the
panel), ``Sampling.window_stride`` latent pixels apart, the last window on each axis aligned to the
edge (:func:`window_starts`); the native size is the base's (``bases.Base.native_size``, the
UNet's ``sample_size``). Every window is a UNet row that replays the references exactly as a
panel does (its AdaIN and GroupNorm statistics are its own) and never sees another window. At each
step the windows' CFG-combined model outputs are averaged per latent pixel over the windows that
cover it (:func:`windows_eps`), and the group's scheduler then steps the whole panel latent
(``denoise.advance``), whose predicted x0 is the averaged one the previews show.

A panel's windows fill micro-batches of their own (never shared with another panel's windows),
so a panel's pixels depend on nothing but itself and the micro-batch size: a re-roll, or a server
shard holding the panel, computes exactly the UNet batches a whole-set run computes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .denoise import Denoising, PreparedControl, RunContext, panel_eps, recorded_eps
from .errors import GenerationError
from .rows import RunRows, Size


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Where the windows of one axis start: every ``stride`` latent pixels while a window fits,
    and the last one aligned to the edge (``length - window``) when the stride does not land there."""
    if window >= length:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class Window:
    """One window of a panel's latent: top, left, height and width in latent pixels."""

    top: int
    left: int
    height: int
    width: int

    @property
    def region(self) -> tuple[slice, slice]:
        """The window's part of a latent (..., H, W)."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Tiling:
    """The windows of one panel size."""

    latent: tuple[int, int]
    """The panel's latent (height, width)."""
    window: tuple[int, int]
    """A window's latent (height, width): the native size, at most the panel's."""
    stride: int
    windows: tuple[Window, ...]

    @classmethod
    def of(cls, latent: tuple[int, int], native: tuple[int, int], stride: int) -> Tiling:
        height, width = min(native[0], latent[0]), min(native[1], latent[1])
        if stride > max(height, width):
            raise GenerationError(f"window stride {stride} is larger than the model's windows "
                                  f"({width}x{height} latent pixels): parts of the panel would be left out")
        windows = tuple(Window(top, left, height, width)
                        for top in window_starts(latent[0], height, stride)
                        for left in window_starts(latent[1], width, stride))
        return cls(latent, (height, width), stride, windows)

    def coverage(self, device=None) -> torch.Tensor:
        """How many windows cover each latent pixel, (1, 1, H, W) float32."""
        counts = torch.zeros(1, 1, *self.latent, dtype=torch.float32, device=device)
        for window in self.windows:
            counts[(..., *window.region)] += 1
        return counts

    def window_size(self, scale_factor: int) -> Size:
        """A window's (width, height) in pixels."""
        return self.window[1] * scale_factor, self.window[0] * scale_factor

    def record(self, scale_factor: int) -> dict[str, Any]:
        """What a picture's record says of its windows."""
        width, height = self.window_size(scale_factor)
        return {"windows": len(self.windows), "window_width": width, "window_height": height,
                "window_stride": self.stride}


def is_panorama(size: Size, native: tuple[int, int], scale_factor: int, above: float) -> bool:
    """Whether a panel of ``size`` (width, height) pixels is drawn as windows: at least ``above``
    times the native width or height (``native``: latent height, width)."""
    width, height = size[0] / scale_factor, size[1] / scale_factor
    return width >= above * native[1] or height >= above * native[0]


def plan_tilings(rows: RunRows, request, native_side: int, scale_factor: int) -> dict[Size, Tiling]:
    """The tiling of every size group whose panels are panoramas (the others: none);
    ``native_side``: the model's native latent side (``bases.Base.native_size`` / scale factor)."""
    native, sampling = (native_side, native_side), request.sampling
    tilings = {size: Tiling.of((size[1] // scale_factor, size[0] // scale_factor), native, sampling.window_stride)
               for size in rows.groups
               if rows.panel_rows(size) and is_panorama(size, native, scale_factor, sampling.panorama_above)}
    if tilings and request.settings.full_attention_share:
        raise GenerationError("full_attention_share runs the set as one batch: it cannot draw a wide panel "
                              "as MultiDiffusion windows (lower the size, or raise panorama_above)")
    return tilings


@dataclass
class WindowedGroup:
    """A size group of panoramas in a run: its tiling, and the context its windows' UNet calls
    run in (the group's scheduler; SDXL time ids of the window's size, crop (0, 0))."""

    tiling: Tiling
    run: RunContext
    scale_factor: int
    coverage: torch.Tensor | None = None

    def group_eps(self, state: Denoising, size: Size, t, panel_rows: list[int],
                  controls: list[PreparedControl | None]) -> torch.Tensor:
        """The model outputs of the group's rows: the references' (when the group is the set's
        size, they lead it and record) and each panel's averaged over its windows."""
        latents = state.latents[size]
        n_anchors = len(state.rows.anchors) if size == state.rows.set_size else 0  # spec section 13
        n_refs = len(latents) - len(panel_rows) - n_anchors
        parts = []
        if n_refs:
            parts.append(recorded_eps(state.runs[size], latents[:n_refs + n_anchors], t, n_refs, [], [],
                                      state.batching, n_anchors))
        eps, state.batching.micro_batch = windows_eps(self, latents[n_refs + n_anchors:], t, panel_rows, controls,
                                                      state.batching.micro_batch)
        parts.append(eps)
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def windows_eps(group: WindowedGroup, latents, t, rows: list[int], controls, micro_batch: int):
    """The panels' model outputs (m, C, H, W), each the per-pixel average of its windows'; every
    panel's windows in micro-batches of their own (``panel_eps``: halved on out-of-memory)."""
    tiling = group.tiling
    if group.coverage is None or group.coverage.device != latents.device:
        group.coverage = tiling.coverage(latents.device)
    total = torch.zeros(latents.shape, dtype=torch.float32, device=latents.device)
    for k, (row, control) in enumerate(zip(rows, controls)):
        start = 0
        while start < len(tiling.windows):
            chunk = tiling.windows[start : start + micro_batch]
            crops = torch.stack([latents[(k, ..., *window.region)] for window in chunk])
            window_controls = [_cropped(control, window, group.scale_factor) for window in chunk]
            out, micro_batch = panel_eps(group.run, crops, t, [row] * len(chunk), window_controls, micro_batch)
            for window, eps in zip(chunk, out):
                total[(k, ..., *window.region)] += eps.float()
            start += len(chunk)
    return (total / group.coverage).to(latents.dtype), micro_batch


def _cropped(control: PreparedControl | None, window: Window, scale_factor: int) -> PreparedControl | None:
    """A panel's control map cut to one window (the map is at the panel's pixel size)."""
    if control is None:
        return None
    f = scale_factor
    image = control.image[..., window.top * f : (window.top + window.height) * f,
                          window.left * f : (window.left + window.width) * f]
    return dataclasses.replace(control, image=image)


def unet_rows(rows: RunRows, tilings: dict[Size, Tiling]) -> int:
    """The panel rows a step runs: a plain panel is one, a panorama one per window (the memory
    model plans micro-batches of these)."""
    return sum(len(tilings[size].windows) if size in tilings else 1
               for size in rows.groups for _ in rows.panel_rows(size))
