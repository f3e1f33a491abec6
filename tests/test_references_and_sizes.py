"""Several weighted references (spec section 11) and panels of their own size (spec section 12)
in the shared attention and GroupNorm layers, against naive implementations of the formulas."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylealigned_desktop.engine.attention import (
    SharedSelfAttnProcessor,
    SharingState,
    adain,
    mean_std,
)
from stylealigned_desktop.engine.norms import SharedGroupNorm, pooled_stats
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .naive import blended_attention_np, weighted_group_norm_np

SCALE = 0.125
HEADS, D = 2, 8
SETTINGS = [
    StyleAlignedSettings(),
    StyleAlignedSettings(shared_score_shift=math.log(2), shared_score_scale=0.7, adain_values=True),
    StyleAlignedSettings(shared_score_shift=-0.3, adain_queries=False),
    StyleAlignedSettings(share_attention=False),
]


def _rows(count, n, seed):
    """(q, k, v) of ``count`` rows of ``n`` tokens, (count, heads, n, d), float64."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(count, HEADS, n, D, generator=g, dtype=torch.float64) * 1.3 + 0.2 * (i + 1) for i in range(3)]


def _state(settings, weights, halves=2):
    return SharingState(settings, halves_provider=lambda: halves, reference_weights=tuple(weights))


def _record(proc, refs):
    """refs: (q, k, v) of (halves * R) rows laid out [half 0: R refs | half 1: R refs]."""
    proc.state.mode = "record"
    return proc.attend(*refs, SCALE)


def _replay(proc, panels):
    proc.state.mode = "replay"
    return proc.attend(*panels, SCALE)


def _expected(panels, refs, weights, settings, halves=2):
    """Naive per panel row (and head), each half against its own references."""
    m, r = panels[0].shape[0] // halves, refs[0].shape[0] // halves
    out = np.zeros(panels[0].shape)
    for row in range(panels[0].shape[0]):
        half = row // m
        for h in range(HEADS):
            ref_rows = [[x[half * r + j, h].numpy() for x in refs] for j in range(r)]
            out[row, h] = blended_attention_np(*(x[row, h].numpy() for x in panels), ref_rows, weights, settings, SCALE)
    return out


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: repr(s)[20:70])
def test_panels_of_any_size_against_several_weighted_references_match_the_formula(settings):
    weights = (0.5, 0.3, 0.2)
    refs = _rows(2 * 3, 12, seed=1)
    proc = SharedSelfAttnProcessor(_state(settings, weights), "layer")
    ref_out = _record(proc, refs)
    # every reference row is plain self-attention
    torch.testing.assert_close(ref_out, F.scaled_dot_product_attention(*refs, scale=SCALE), rtol=0, atol=1e-12)
    for n, seed in ((12, 2), (20, 3), (6, 4)):  # the references' size, larger, smaller
        panels = _rows(2 * 2, n, seed)
        out = _replay(proc, panels)
        np.testing.assert_allclose(out.numpy(), _expected(panels, refs, weights, settings), rtol=1e-9, atol=1e-11)


def test_micro_batches_stay_exact_with_several_references_and_mixed_sizes():
    settings = SETTINGS[1]
    weights = (0.6, 0.4)
    proc = SharedSelfAttnProcessor(_state(settings, weights), "layer")
    _record(proc, _rows(2 * 2, 10, seed=5))
    wide, tall = _rows(2 * 3, 15, seed=6), _rows(2 * 2, 6, seed=7)
    for panels in (wide, tall):
        whole = _replay(proc, panels)
        m = panels[0].shape[0] // 2
        for j in range(m):  # one panel at a time: rows j of each half
            alone = _replay(proc, [x[[j, m + j]] for x in panels])
            torch.testing.assert_close(alone, whole[[j, m + j]], rtol=1e-12, atol=1e-13)


def test_one_reference_is_exactly_the_single_reference_method():
    """R = 1 with weight 1 computes exactly what spec section 4 says, op for op."""
    settings = StyleAlignedSettings(shared_score_shift=0.4, shared_score_scale=0.8, adain_values=True)
    refs, panels = _rows(2, 9, seed=8), _rows(2 * 3, 9, seed=9)
    proc = SharedSelfAttnProcessor(_state(settings, (1.0,)), "layer")
    _record(proc, refs)
    out = _replay(proc, panels)
    # spec section 4 by hand, per half
    q, k, v = (x.view(2, 3, HEADS, 9, D) for x in panels)
    rq, rk, rv = (x.view(2, 1, HEADS, 9, D) for x in refs)
    q, k, v = adain(q, *mean_std(rq)), adain(k, *mean_std(rk)), adain(v, *mean_std(rv))
    keys = torch.cat([k, (rk * 0.8).expand(2, 3, HEADS, 9, D)], dim=-2)
    values = torch.cat([v, rv.expand(2, 3, HEADS, 9, D)], dim=-2)
    mask = torch.zeros(1, 1, 1, 18, dtype=torch.float64)
    mask[..., 9:] = 0.4
    expected = F.scaled_dot_product_attention(q.flatten(0, 1), keys.flatten(0, 1), values.flatten(0, 1),
                                              attn_mask=mask, scale=SCALE).view(6, HEADS, 9, D)
    assert torch.equal(out, expected)


def test_one_reference_listed_twice_at_half_weight_equals_it_once():
    settings = SETTINGS[1]
    refs, panels = _rows(2, 10, seed=10), _rows(2 * 2, 14, seed=11)
    once = SharedSelfAttnProcessor(_state(settings, (1.0,)), "layer")
    _record(once, refs)
    twice = SharedSelfAttnProcessor(_state(settings, (0.5, 0.5)), "layer")
    _record(twice, [x[[0, 0, 1, 1]] for x in refs])
    torch.testing.assert_close(_replay(twice, panels), _replay(once, panels), rtol=1e-12, atol=1e-13)


def test_a_weight_zero_reference_is_not_seen_by_the_formula():
    settings = SETTINGS[1]
    refs, panel = _rows(2, 10, seed=12), _rows(1, 10, seed=13)
    rows = [[x[j, 0].numpy() for x in refs] for j in range(2)]
    one = [x[0, 0].numpy() for x in panel]
    with_zero = blended_attention_np(*one, rows, (1.0, 0.0), settings, SCALE)
    np.testing.assert_allclose(with_zero, blended_attention_np(*one, rows[:1], (1.0,), settings, SCALE), rtol=1e-12)


def test_record_needs_one_weight_per_reference_row():
    proc = SharedSelfAttnProcessor(_state(StyleAlignedSettings(), (0.5, 0.5)), "layer")
    with pytest.raises(RuntimeError, match="weights"):
        _record(proc, _rows(2 * 3, 4, seed=0))


# --- shared GroupNorm ------------------------------------------------------------------------


def _norm(channels=12, groups=3):
    torch.manual_seed(0)
    norm = nn.GroupNorm(groups, channels, eps=1e-6).double().requires_grad_(False)
    norm.weight.normal_()
    norm.bias.normal_()
    return norm


def _maps(count, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 2.5, 12, dtype=torch.float64).view(1, 12, 1, 1)
    return torch.randn(count, 12, h, w, generator=g, dtype=torch.float64) * scale + seed * 0.1


def _shared_norm(weights, halves=2):
    norm = _norm()
    state = SharingState(StyleAlignedSettings(share_group_norm=True), lambda: halves, reference_weights=tuple(weights))
    return norm, state, SharedGroupNorm(norm, state, "gn")


def test_group_norm_pools_panels_of_any_size_with_weighted_references():
    weights = (0.7, 0.3)
    norm, state, shared = _shared_norm(weights)
    refs = _maps(2 * 2, 4, 6, seed=1)
    state.mode = "record"
    torch.testing.assert_close(shared(refs), norm(refs))  # the references are normalised alone
    state.mode = "replay"
    for h, w in ((4, 6), (8, 3), (2, 2)):
        panels = _maps(2 * 2, h, w, seed=h + w)
        out = shared(panels)
        for row in range(4):
            half = row // 2
            expected = weighted_group_norm_np(panels[row].numpy(), [refs[half * 2 + j].numpy() for j in range(2)],
                                              weights, 3, norm.weight.numpy(), norm.bias.numpy(),
                                              norm.eps)
            np.testing.assert_allclose(out[row].numpy(), expected, rtol=1e-9, atol=1e-10)


def test_group_norm_with_one_reference_of_the_panels_size_is_exactly_spec_section_5():
    a, b = _maps(1, 3, 5, seed=2).view(12, -1), _maps(1, 3, 5, seed=3).view(12, -1)
    ma, va, mb, vb = a.mean(-1), a.var(-1, correction=0), b.mean(-1), b.var(-1, correction=0)
    mean, var = pooled_stats(ma, va, mb, vb, 15, 15)
    assert torch.equal(mean, (ma + mb) / 2)
    assert torch.equal(var, (va + vb) / 2 + ((ma - mb) / 2) ** 2)


def test_group_norm_one_reference_twice_at_half_weight_equals_it_once():
    refs, panels = _maps(2, 4, 4, seed=4), _maps(2 * 2, 6, 2, seed=5)
    _, once_state, once = _shared_norm((1.0,))
    _, twice_state, twice = _shared_norm((0.5, 0.5))
    once_state.mode, twice_state.mode = "record", "record"
    once(refs), twice(refs[[0, 0, 1, 1]])
    once_state.mode, twice_state.mode = "replay", "replay"
    assert torch.equal(twice(panels), once(panels))
