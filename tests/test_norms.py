"""Shared GroupNorm against GroupNorm on the concatenation of panel and reference (spec section 5)."""

import copy

import pytest
import torch
from torch import nn

from stylealigned_desktop.engine.attention import SharingState
from stylealigned_desktop.engine.norms import SharedGroupNorm, group_stats, pooled_stats
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .naive import shared_group_norm_by_concatenation


def _norm(channels=16, groups=4):
    torch.manual_seed(0)
    norm = nn.GroupNorm(groups, channels, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    return norm


@pytest.mark.parametrize("rows", [1, 2, 3], ids=["reference alone", "one panel", "two panels"])
@pytest.mark.parametrize("halves", [1, 2])
def test_batch_mode_matches_concatenation(halves, rows):
    norm = _norm()
    x = torch.randn(halves * rows, 16, 5, 6, dtype=torch.float64) * torch.linspace(0.5, 3, 16).view(1, 16, 1, 1).double()
    x[:, :8] += 2.0
    shared = SharedGroupNorm(norm, SharingState(StyleAlignedSettings(share_group_norm=True), lambda: halves), "gn")
    torch.testing.assert_close(shared(x), shared_group_norm_by_concatenation(norm, x, halves))


@pytest.mark.parametrize("grad", [False, True], ids=["fused", "autograd"])
def test_a_group_norm_without_affine_is_pooled_too(grad):
    """A GroupNorm with no weight and bias (none in SDXL's UNet, but nn.GroupNorm allows it)."""
    norm = nn.GroupNorm(4, 16, eps=1e-6, affine=False).double()
    x = torch.randn(2 * 3, 16, 5, 3, dtype=torch.float64) + torch.arange(6.0).double().view(6, 1, 1, 1)
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 2)
    shared = SharedGroupNorm(norm, state, "gn")
    expected = shared_group_norm_by_concatenation(norm, x, 2)
    with torch.set_grad_enabled(grad):
        state.mode = "record"
        torch.testing.assert_close(shared(x[[0, 3]]), expected[[0, 3]])
        torch.testing.assert_close(shared(x[[0, 1, 3, 4]]), expected[[0, 1, 3, 4]])  # a panel rides along
        state.mode = "replay"
        torch.testing.assert_close(shared(x[[1, 2, 4, 5]]), expected[[1, 2, 4, 5]])


@pytest.mark.parametrize("grad", [False, True], ids=["fused", "autograd"])
def test_without_cfg_one_row_at_a_time(grad):
    """Guidance <= 1: one half, so the reference is recorded alone in a batch of one row and each
    panel can run alone too."""
    norm = _norm()
    x = torch.randn(3, 16, 4, 2, dtype=torch.float64) * 2 + torch.arange(3.0).double().view(3, 1, 1, 1)
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 1)
    shared = SharedGroupNorm(norm, state, "gn")
    expected = shared_group_norm_by_concatenation(norm, x, 1).detach()
    with torch.set_grad_enabled(grad):
        state.mode = "record"
        torch.testing.assert_close(shared(x[:1]), expected[:1])
        state.mode = "replay"
        for row in (1, 2):
            torch.testing.assert_close(shared(x[row:row + 1]), expected[row:row + 1])


@pytest.mark.parametrize("grad", [False, True], ids=["fused", "autograd"])
def test_record_replay_matches_batch_for_any_grouping(grad):
    """The engine's layouts (without autograd: the fused, in-place path) against the authors'
    batch: references alone or with panels riding along, then panels in any grouping."""
    norm = _norm()
    x = torch.randn(2 * 4, 16, 3, 3, dtype=torch.float64) + torch.arange(8.0).double().view(8, 1, 1, 1)
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 2)
    shared = SharedGroupNorm(norm, state, "gn")
    expected = shared_group_norm_by_concatenation(norm, x, 2).detach()
    with torch.set_grad_enabled(grad):
        state.mode = "record"
        torch.testing.assert_close(shared(x[[0, 4]]), expected[[0, 4]])
        torch.testing.assert_close(shared(x[[0, 2, 4, 6]]), expected[[0, 2, 4, 6]])
        state.mode = "replay"
        for group in ([3], [2, 1]):
            idx = group + [4 + g for g in group]
            torch.testing.assert_close(shared(x[idx]), expected[idx])


def test_pooled_statistics_are_those_of_the_union():
    a, b = torch.randn(100, dtype=torch.float64) * 2 + 1, torch.randn(100, dtype=torch.float64) - 3
    mean, var = pooled_stats(a.mean(), a.var(correction=0), b.mean(), b.var(correction=0))
    union = torch.cat([a, b])
    assert mean.item() == pytest.approx(union.mean().item())
    assert var.item() == pytest.approx(union.var(correction=0).item())


def test_group_stats_in_float32_for_half_inputs():
    x = torch.randn(2, 8, 4, 4).half()
    mean, var = group_stats(x, 4)
    assert mean.dtype == torch.float32 and mean.shape == (2, 4) and var.shape == (2, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_panels_are_pooled_in_float32_and_come_back_in_their_dtype(dtype):
    """A half-precision UNet's activations (spec section 12 runs in float16 on accelerators): the
    statistics and the normalisation in float32, the result in the input's dtype and as close to
    the float64 formula as that dtype can hold. A large mean over a small spread is what rounded
    statistics would get wrong (torch's fused kernel keeps half-precision statistics)."""
    half_norm = _norm().to(dtype)
    x = (torch.randn(2 * 3, 16, 5, 3) * 0.5 + 40.0 + torch.arange(6.0).view(6, 1, 1, 1)).to(dtype)
    # the formula in float64 on the rounded inputs and weights: what the upcast path computes
    expected = shared_group_norm_by_concatenation(copy.deepcopy(half_norm).double(), x.double(), 2)
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 2)
    shared = SharedGroupNorm(half_norm, state, "gn")
    tolerance = {"rtol": 2 * torch.finfo(dtype).eps, "atol": 2 * torch.finfo(dtype).eps}
    with torch.no_grad():
        state.mode = "record"
        recorded = shared(x[[0, 1, 3, 4]])  # a panel rides along
        state.mode = "replay"
        replayed = shared(x[[2, 5]])
    assert recorded.dtype == dtype and replayed.dtype == dtype
    torch.testing.assert_close(recorded.double(), expected[[0, 1, 3, 4]], **tolerance)
    torch.testing.assert_close(replayed.double(), expected[[2, 5]], **tolerance)


def test_each_layer_replays_its_own_recorded_statistics():
    """Two GroupNorm layers of one installation record different references: each panel is pooled
    with its own layer's."""
    first, second = _norm(), _norm(channels=8, groups=2)
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 1)
    layers = SharedGroupNorm(first, state, "down.0"), SharedGroupNorm(second, state, "up.1")
    x_first = torch.randn(2, 16, 4, 3, dtype=torch.float64) + torch.tensor([3.0, 0.0]).double().view(2, 1, 1, 1)
    x_second = torch.randn(2, 8, 4, 3, dtype=torch.float64) * 3 - torch.tensor([5.0, 0.0]).double().view(2, 1, 1, 1)
    with torch.no_grad():
        state.mode = "record"
        for layer, x in zip(layers, (x_first, x_second)):
            layer(x[:1])
        state.mode = "replay"
        for layer, x in zip(layers, (x_first, x_second)):
            torch.testing.assert_close(layer(x[1:]), shared_group_norm_by_concatenation(layer.norm, x, 1)[1:])


def test_record_refuses_more_references_than_rows():
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: 2, reference_weights=(0.5, 0.5))
    state.mode = "record"
    shared = SharedGroupNorm(_norm(), state, "gn")
    with pytest.raises(RuntimeError, match=r"^1 rows per half but 2 references to record$"):
        shared(torch.randn(2, 16, 2, 2, dtype=torch.float64))
