"""Several weighted references (spec section 11) and panels of their own size (spec section 12)
in the shared attention and GroupNorm layers, against naive implementations of the formulas."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylealigned_desktop.engine import attention
from stylealigned_desktop.engine.attention import (
    SharedSelfAttnProcessor,
    SharingState,
    adain,
    attention_with_bias_in_keys,
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


def test_record_needs_a_row_for_every_reference_weight():
    proc = SharedSelfAttnProcessor(_state(StyleAlignedSettings(), (0.5, 0.5)), "layer")
    with pytest.raises(RuntimeError, match="weights"):
        _record(proc, _rows(2 * 1, 4, seed=0))


def _halves_joined(refs, panels, r, m):
    """[half 0: R refs, m panels | half 1: R refs, m panels] from the two separate layouts."""
    return [torch.cat([a.view(2, r, *a.shape[1:]), b.view(2, m, *b.shape[1:])], dim=1).flatten(0, 1)
            for a, b in zip(refs, panels)]


@pytest.mark.parametrize("weights", [(1.0,), (0.5, 0.3, 0.2)])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: repr(s)[20:70])
def test_panels_riding_in_the_record_call_match_the_formula_and_replay(settings, weights):
    """The engine's first UNet call: references and panels of their size together ('record')."""
    r, m = len(weights), 2
    refs, panels = _rows(2 * r, 10, seed=20), _rows(2 * m, 10, seed=21)
    proc = SharedSelfAttnProcessor(_state(settings, weights), "layer")
    out = _record(proc, _halves_joined(refs, panels, r, m)).view(2, r + m, HEADS, 10, D)
    ref_out, panel_out = out[:, :r].flatten(0, 1), out[:, r:].flatten(0, 1)
    torch.testing.assert_close(ref_out, F.scaled_dot_product_attention(*refs, scale=SCALE), rtol=0, atol=1e-12)
    np.testing.assert_allclose(panel_out.numpy(), _expected(panels, refs, weights, settings), rtol=1e-9, atol=1e-11)
    # what the call recorded serves later panels of any size as recording the references alone does
    alone = SharedSelfAttnProcessor(_state(settings, weights), "layer")
    _record(alone, refs)
    later = _rows(2 * 3, 7, seed=22)
    torch.testing.assert_close(_replay(proc, later), _replay(alone, later), rtol=0, atol=0)
    torch.testing.assert_close(panel_out, _replay(alone, panels), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("d", [8, 5, 64])
def test_bias_in_keys_equals_the_bias_tensor(d):
    """One extra key channel instead of a float bias (what CUDA runs): the same logits, so the
    same attention, with a bias of its own on each of several references' columns."""
    g = torch.Generator().manual_seed(23)
    q, k, v = (torch.randn(3, 2, 12, d, generator=g, dtype=torch.float64) for _ in range(3))
    ref_k, ref_v = (torch.randn(1, 2, 14, d, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    weights, shift = (0.6, 0.4), math.log(2)
    column_bias = torch.tensor([shift + math.log(w) for w in weights], dtype=torch.float64).repeat_interleave(7)
    scale = 0.3
    folded = attention_with_bias_in_keys(q, k, v, ref_k.expand(3, -1, -1, -1), ref_v.expand(3, -1, -1, -1),
                                         column_bias, scale)
    bias = torch.cat([torch.zeros(12, dtype=torch.float64), column_bias]).view(1, 1, 1, 26)
    keys, values = (torch.cat([a, b.expand(3, -1, -1, -1)], dim=-2) for a, b in ((k, ref_k), (v, ref_v)))
    masked = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, scale=scale)
    by_hand = torch.softmax(q @ keys.transpose(-1, -2) * scale + bias, dim=-1) @ values
    assert folded.shape == q.shape
    torch.testing.assert_close(folded, masked, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(folded, by_hand, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("settings", SETTINGS[:3], ids=lambda s: repr(s)[20:70])
def test_the_bias_in_keys_path_matches_the_formula(settings, monkeypatch):
    """The processor's CUDA path (no bias tensor) run on the CPU: weighted references, panels of
    other sizes, riding along and replayed."""
    monkeypatch.setattr(attention, "BIAS_IN_KEYS_DEVICES", ("cpu",))
    weights = (0.7, 0.3)
    refs, riding = _rows(2 * 2, 9, seed=24), _rows(2 * 1, 9, seed=25)
    proc = SharedSelfAttnProcessor(_state(settings, weights), "layer")
    out = _record(proc, _halves_joined(refs, riding, 2, 1)).view(2, 3, HEADS, 9, D)[:, 2:].flatten(0, 1)
    np.testing.assert_allclose(out.numpy(), _expected(riding, refs, weights, settings), rtol=1e-9, atol=1e-11)
    for n, seed in ((9, 26), (15, 27)):
        panels = _rows(2 * 2, n, seed)
        np.testing.assert_allclose(_replay(proc, panels).numpy(), _expected(panels, refs, weights, settings),
                                   rtol=1e-9, atol=1e-11)


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


@pytest.mark.parametrize("grad", [False, True], ids=["fused", "autograd"])
def test_group_norm_pools_panels_of_any_size_with_weighted_references(grad):
    """Panels with fewer (2x2) and more (6x5) elements than the references' 4x6 are pooled by
    true counts. The engine runs without autograd, on the fused path: it must count too."""
    weights = (0.7, 0.3)
    norm, state, shared = _shared_norm(weights)
    refs = _maps(2 * 2, 4, 6, seed=1)
    state.mode = "record"
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(shared(refs), norm(refs))  # the references are normalised alone
    state.mode = "replay"
    for h, w in ((4, 6), (8, 3), (2, 2), (6, 5)):
        panels = _maps(2 * 2, h, w, seed=h + w)
        with torch.set_grad_enabled(grad):
            out = shared(panels)
        for row in range(4):
            half = row // 2
            expected = weighted_group_norm_np(panels[row].numpy(), [refs[half * 2 + j].numpy() for j in range(2)],
                                              weights, 3, norm.weight.numpy(), norm.bias.numpy(),
                                              norm.eps)
            np.testing.assert_allclose(out[row].numpy(), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("grad", [False, True], ids=["fused", "autograd"])
@pytest.mark.parametrize("weights", [(1.0,), (0.7, 0.3)])
def test_group_norm_with_panels_riding_in_the_record_call(weights, grad):
    """References and panels of their size in one call: the references normalised alone, the
    panels pooled with them; later panels of another size pooled with what was recorded. The
    engine runs without autograd (the fused, in-place path); with autograd the plain path runs."""
    norm, state, shared = _shared_norm(weights)
    norm.requires_grad_(grad)
    r, m = len(weights), 2
    refs, panels = _maps(2 * r, 4, 6, seed=30), _maps(2 * m, 4, 6, seed=31)
    joined = torch.cat([refs.view(2, r, 12, 4, 6), panels.view(2, m, 12, 4, 6)], dim=1).flatten(0, 1)
    state.mode = "record"
    with torch.set_grad_enabled(grad):
        out = shared(joined).view(2, r + m, 12, 4, 6)
        state.mode = "replay"
        later = _maps(2 * 3, 8, 3, seed=32)
        later_out = shared(later)
    torch.testing.assert_close(out[:, :r].flatten(0, 1), F.group_norm(refs, 3, norm.weight, norm.bias, norm.eps))
    for rows, result, count in ((panels, out[:, r:].flatten(0, 1), m), (later, later_out, 3)):
        for row in range(2 * count):
            half = row // count
            expected = weighted_group_norm_np(rows[row].numpy(), [refs[half * r + j].numpy() for j in range(r)],
                                              weights, 3, norm.weight.detach().numpy(), norm.bias.detach().numpy(),
                                              norm.eps)
            np.testing.assert_allclose(result[row].detach().numpy(), expected, rtol=1e-9, atol=1e-10)


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
