"""Shared GroupNorm (spec sections 5, 11 and 12).

A panel's GroupNorm statistics are pooled with its references': per group, over the weighted
union of the panel's elements (each counting 1) and every reference's (reference r's counting
w_r). ``record`` pools the references into one mixture (mean, biased variance, total weight
sum w_r n_r); ``replay`` pools each panel with it by true counts, so a panel of another size
than the references is pooled correctly. With one reference of the panel's size this is
exactly spec section 5: the average of the two means, the average of the two variances plus
the squared half-difference of the means. Only per-group statistics are kept, never the
references' activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SharingState, mixture_stats, upcast


def group_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row, per-group (mean, biased variance), at least float32; x is (batch, C, ...).

    Two passes rather than ``torch.var_mean`` (much slower on CPU, docs/performance.md).
    """
    xg = upcast(x).reshape(x.shape[0], groups, -1)
    mean = xg.mean(dim=-1)
    return mean, (xg - mean.unsqueeze(-1)).square().mean(dim=-1)


def pooled_stats(mean_a, var_a, mean_b, var_b, count_a: float = 1.0, count_b: float = 1.0):
    """Statistics (mean, biased variance) of the union of two sets of elements weighing
    ``count_a`` and ``count_b`` in all (equal counts by default)."""
    share_a = count_a / (count_a + count_b)
    share_b = count_b / (count_a + count_b)
    mean = share_a * mean_a + share_b * mean_b
    var = share_a * var_a + share_b * var_b + (share_a * share_b) * (mean_a - mean_b).square()
    return mean, var


def elements_per_group(x: torch.Tensor, groups: int) -> int:
    """How many elements one group of one row of x (batch, C, ...) holds."""
    return x[0].numel() // groups


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
            weights = state.reference_weights
            mean, var = group_stats(x, groups)
            # the references share one size: weights w_r * n_r / sum(w n) are the w_r themselves
            mean, var = mixture_stats(mean.view(state.halves(), len(weights), groups),
                                      var.view(state.halves(), len(weights), groups), weights, square=False)
            state.cache[self.name] = (mean, var, elements_per_group(x, groups))
            return self._plain(x)
        if state.mode == "replay":
            m = state.rows_per_half(x.shape[0])
            ref_mean, ref_var, ref_count = state.reference_data(self.name)
            mean, var = group_stats(x, groups)
            mean, var = pooled_stats(mean.view(-1, m, groups), var.view(-1, m, groups), ref_mean, ref_var,
                                     elements_per_group(x, groups), ref_count)
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
