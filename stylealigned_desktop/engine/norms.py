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

from .attention import HALF_DTYPES, SharingState, mixture_stats, upcast


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
    """Replaces ``forward`` of one ``nn.GroupNorm`` while installed; see :class:`SharingState`.

    In ``record`` mode the batch holds, per half, the R references and then any panels that ride
    along in the same UNet call; ``replay`` batches hold panels only. float32/float64 inputs
    without autograd take the fused path: one ``torch.native_group_norm`` over the whole
    batch (the kernel of a plain GroupNorm; it also returns every row's mean and 1/std), then one
    in-place pass over the panel rows that turns "normalised with its own statistics" into
    "normalised with the statistics pooled with the references'": per row and group an affine
    change, ``y_pooled = y_own * gain + offset``. Half-precision inputs keep the upcast path
    (statistics and the normalisation in float32), whose statistics the fused kernel would round.
    """

    def __init__(self, norm: nn.GroupNorm, state: SharingState, name: str):
        self.norm = norm
        self.state = state
        self.name = name

    def _plain(self, x):
        n = self.norm
        return F.group_norm(x, n.num_groups, n.weight, n.bias, n.eps)

    def _fused(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every row normalised with its own statistics, and those statistics: (mean, biased
        variance, 1/sqrt(variance + eps)), (batch, groups) each."""
        norm, batch, channels = self.norm, x.shape[0], x.shape[1]
        out, mean, rstd = torch.native_group_norm(x, norm.weight, norm.bias, batch, channels,
                                                  x[0, 0].numel(), norm.num_groups, norm.eps)
        return out, mean, rstd

    def _repooled(self, out, mean, rstd, ref_mean, ref_var, share: float) -> torch.Tensor:
        """Panel rows ``out`` (..., C, ...) normalised with their own statistics -> normalised
        with those pooled with the references' (``pooled_stats``; ``share``: the references'
        fraction of the union's elements), in place. mean, rstd: (..., groups); ref_*: the same
        or broadcastable to it.

        As few small ops as possible: at micro-batch 1 they, not the one pass over ``out``, are
        what this costs on a CPU.
        """
        norm, groups = self.norm, self.norm.num_groups
        delta = ref_mean - mean
        var = rstd.pow(-2).sub_(norm.eps)
        pooled_var = torch.addcmul(torch.lerp(var, ref_var, share), delta, delta, value=share * (1 - share))
        pooled_rstd = pooled_var.add_(norm.eps).rsqrt_()
        gain = (pooled_rstd / rstd).unsqueeze(-1)  # y_pooled = y_own * gain + offset, per group
        offset = delta.mul_(pooled_rstd).mul_(-share).unsqueeze(-1)  # (mean - pooled mean) * pooled_rstd
        if norm.affine:  # out = y * w + b, so out_pooled = out * gain + (b - b * gain + offset * w)
            weight, bias = norm.weight.view(groups, -1), norm.bias.view(groups, -1)
            offset = torch.addcmul(bias, offset, weight).addcmul_(bias, gain, value=-1.0)
        view = out.view(*mean.shape, weight.shape[-1] if norm.affine else out.shape[mean.dim() - 1] // groups, -1)
        return torch.addcmul(offset.unsqueeze(-1), view, gain.unsqueeze(-1), out=view).view(out.shape)

    def _reference_statistics(self, mean, var, count: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The references' rows' (halves * R, groups) statistics -> their weighted mixture,
        (halves, 1, groups), and its element count per group."""
        state, groups = self.state, self.norm.num_groups
        weights = state.reference_weights
        # the references share one size: weights w_r * n_r / sum(w n) are the w_r themselves
        mean, var = mixture_stats(mean.view(state.halves(), len(weights), groups),
                                  var.view(state.halves(), len(weights), groups), weights, square=False)
        return mean, var, count

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        state, groups = self.state, self.norm.num_groups
        if state.mode == "batch":
            return self._batch(x)
        halves = state.halves()
        rows = state.rows_per_half(x.shape[0])
        refs = len(state.reference_weights) if state.mode == "record" else 0
        if refs > rows:
            raise RuntimeError(f"{rows} rows per half but {refs} references to record")
        # in place, so not while autograd records (only when differentiating through the UNet)
        fused = x.dtype not in HALF_DTYPES and not torch.is_grad_enabled()
        if fused:
            out, mean, rstd = self._fused(x)
            var = rstd.pow(-2).sub_(self.norm.eps) if refs else None
        else:
            mean, var = group_stats(x, groups)
        count = elements_per_group(x, groups)
        if refs:
            ref_rows = [h * rows + r for h in range(halves) for r in range(refs)]
            state.cache[self.name] = self._reference_statistics(mean[ref_rows], var[ref_rows], count)
        ref_mean, ref_var, ref_count = state.reference_data(self.name)
        m = rows - refs
        if m == 0:
            return out if fused else self._plain(x)
        if fused:
            share = ref_count / (ref_count + count)
            mean, rstd = mean.view(halves, rows, groups), rstd.view(halves, rows, groups)
            out5 = out.view(halves, rows, *x.shape[1:])
            if not refs:
                self._repooled(out5, mean, rstd, ref_mean, ref_var, share)
            for h in range(halves if refs else 0):  # with references in the batch, panel rows are not contiguous
                self._repooled(out5[h, refs:], mean[h, refs:], rstd[h, refs:], ref_mean[h], ref_var[h], share)
            return out
        mean, var = mean.view(halves, rows, groups)[:, refs:], var.view(halves, rows, groups)[:, refs:]
        pooled_mean, pooled_var = pooled_stats(mean, var, ref_mean, ref_var, count, ref_count)
        x5 = x.view(halves, rows, *x.shape[1:])
        panels = normalize_with(self.norm, x5[:, refs:].reshape(-1, *x.shape[1:]),
                                pooled_mean.reshape(-1, groups), pooled_var.reshape(-1, groups))
        if not refs:
            return panels
        references = self._plain(x5[:, :refs].reshape(-1, *x.shape[1:]))
        return torch.cat([references.view(halves, refs, *x.shape[1:]), panels.view(halves, m, *x.shape[1:])],
                         dim=1).view(x.shape)

    def _batch(self, x):
        """The authors' layout: row 0 of each half is its reference, as one UNet batch."""
        groups = self.norm.num_groups
        m = self.state.rows_per_half(x.shape[0])
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
