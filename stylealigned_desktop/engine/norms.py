"""Shared GroupNorm (spec section 5).

A panel's GroupNorm statistics are pooled with its reference's: per group, over the union of
the panel's and the reference's elements. Both have the same number of elements, so the pooled
mean is the average of the two means and the pooled (biased) variance is the average of the two
variances plus the squared half-difference of the means. Only the reference's per-group mean
and variance are needed, never its activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SharingState, upcast


def group_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row, per-group (mean, biased variance), at least float32; x is (batch, C, ...).

    Two passes rather than ``torch.var_mean`` (much slower on CPU, docs/performance.md).
    """
    xg = upcast(x).reshape(x.shape[0], groups, -1)
    mean = xg.mean(dim=-1)
    return mean, (xg - mean.unsqueeze(-1)).square().mean(dim=-1)


def pooled_stats(mean_a, var_a, mean_b, var_b):
    """Statistics of the union of two equally sized sets of elements."""
    mean = (mean_a + mean_b) / 2
    var = (var_a + var_b) / 2 + ((mean_a - mean_b) / 2) ** 2
    return mean, var


def normalize_with(norm: nn.GroupNorm, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor):
    """GroupNorm of x with given per-row, per-group statistics, then the layer's affine.

    Folded into one per-channel scale and shift, applied in a single pass over x.
    """
    batch, channels = x.shape[:2]
    per_group = channels // norm.num_groups
    scale = torch.rsqrt(var + norm.eps).repeat_interleave(per_group, dim=1)
    shift = -mean.repeat_interleave(per_group, dim=1) * scale
    if norm.affine:
        weight, bias = upcast(norm.weight), upcast(norm.bias)
        shift, scale = shift * weight + bias, scale * weight
    shape = (batch, channels) + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.view(shape), upcast(x), scale.view(shape)).to(x.dtype)


class SharedGroupNorm:
    """Replaces ``forward`` of one ``nn.GroupNorm`` while installed; see :class:`SharingState`."""

    def __init__(self, norm: nn.GroupNorm, state: SharingState, name: str):
        self.norm = norm
        self.state = state
        self.name = name

    def _plain(self, x):
        n = self.norm
        return F.group_norm(x, n.num_groups, n.weight, n.bias, n.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        state, groups = self.state, self.norm.num_groups
        if state.mode == "record":
            halves = state.halves()
            mean, var = group_stats(x, groups)
            state.cache[self.name] = (mean.view(halves, 1, groups), var.view(halves, 1, groups))
            return self._plain(x)
        if state.mode == "replay":
            m = state.rows_per_half(x.shape[0])
            ref_mean, ref_var = state.reference_data(self.name)
            mean, var = group_stats(x, groups)
            mean, var = pooled_stats(mean.view(-1, m, groups), var.view(-1, m, groups), ref_mean, ref_var)
            return normalize_with(self.norm, x, mean.reshape(-1, groups), var.reshape(-1, groups))
        m = state.rows_per_half(x.shape[0])
        if m == 1:
            return self._plain(x)
        x5 = x.view(-1, m, *x.shape[1:])
        ref_out = self._plain(x5[:, 0])
        panels = x5[:, 1:].reshape(-1, *x.shape[1:])
        mean, var = group_stats(panels, groups)
        ref_mean, ref_var = group_stats(x5[:, 0], groups)
        mean, var = pooled_stats(
            mean.view(-1, m - 1, groups), var.view(-1, m - 1, groups),
            ref_mean.unsqueeze(1), ref_var.unsqueeze(1),
        )
        panel_out = normalize_with(self.norm, panels, mean.reshape(-1, groups), var.reshape(-1, groups))
        return torch.cat([ref_out.unsqueeze(1), panel_out.view(-1, m - 1, *x.shape[1:])], dim=1).view(x.shape)
