"""The shared self-attention processor against naive implementations written from the spec."""

import math

import numpy as np
import pytest
import torch

from stylealigned_desktop.engine import attention
from stylealigned_desktop.engine.attention import (
    SharedSelfAttnProcessor,
    SharingState,
    adain,
    mean_std,
    mixture_stats,
    reference_bias,
    unshared_layer_mask,
)
from stylealigned_desktop.engine.character_attention import CharacterState, MappedRow, dropout_keep
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .naive import adain_np, mixture_adain_np, shared_attention_np, softmax

SCALE = 0.125


def _qkv(batch, heads=2, n=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=g, dtype=torch.float64) * 1.5 + 0.3 for _ in range(3)]


def _processor(settings, halves):
    return SharedSelfAttnProcessor(SharingState(settings, halves_provider=lambda: halves), "layer")


def test_adain_statistics_unbiased_variance_eps_inside_root():
    x = torch.randn(3, 10, 4, dtype=torch.float64)
    mean, std = mean_std(x)
    expected_std = np.sqrt(x.numpy().var(axis=1, ddof=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(std.numpy(), expected_std, rtol=1e-6)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(axis=1, keepdims=True), rtol=1e-6)
    # eps inside the root: a constant channel gets std sqrt(1e-5), not 1e-5
    const = torch.ones(1, 5, 1)
    assert mean_std(const)[1].item() == pytest.approx(math.sqrt(1e-5), rel=1e-4)


def test_adain_matches_naive_and_is_identity_on_the_reference():
    x, ref = torch.randn(2, 16, 6, dtype=torch.float64), torch.randn(2, 16, 6, dtype=torch.float64) * 3 + 1
    out = adain(x, *mean_std(ref))
    for i in range(2):
        np.testing.assert_allclose(out[i].numpy(), adain_np(x[i].numpy(), ref[i].numpy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adain(ref, *mean_std(ref)).numpy(), ref.numpy(), atol=1e-5)


SETTINGS = [
    StyleAlignedSettings(),
    StyleAlignedSettings(shared_score_scale=0.6),
    StyleAlignedSettings(shared_score_shift=math.log(2)),
    StyleAlignedSettings(shared_score_shift=-0.4, shared_score_scale=1.3, adain_values=True),
    StyleAlignedSettings(adain_queries=False, adain_keys=False),
    StyleAlignedSettings(share_attention=False),
    StyleAlignedSettings(full_attention_share=True),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: repr(s)[20:80])
@pytest.mark.parametrize("halves, rows", [(2, 3), (1, 4)])
def test_batch_mode_matches_naive(settings, halves, rows):
    q, k, v = _qkv(halves * rows)
    out = _processor(settings, halves).attend(q, k, v, SCALE)
    expected = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), settings, halves, SCALE)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("settings", [s for s in SETTINGS if not s.full_attention_share], ids=lambda s: repr(s)[20:80])
def test_record_then_replay_in_any_grouping_matches_the_full_batch(settings):
    halves, rows = 2, 5
    q, k, v = _qkv(halves * rows, seed=3)
    expected = _processor(settings, halves).attend(q, k, v, SCALE)
    proc = _processor(settings, halves)
    proc.state.mode = "record"
    ref_rows = [0, rows]
    ref_out = proc.attend(q[ref_rows], k[ref_rows], v[ref_rows], SCALE)
    torch.testing.assert_close(ref_out, expected[ref_rows], rtol=0, atol=1e-12)
    proc.state.mode = "replay"
    for group in ([4, 1], [3], [2]):  # panels 1..4 of each half, shuffled into micro-batches
        idx = [g for g in group] + [rows + g for g in group]
        out = proc.attend(q[idx], k[idx], v[idx], SCALE)
        torch.testing.assert_close(out, expected[idx], rtol=1e-10, atol=1e-12)


def test_reference_row_is_plain_attention_for_any_shift_and_scale():
    q, k, v = _qkv(6)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=SCALE)
    for shift, scale in [(0.0, 1.0), (2.0, 0.3), (-1.0, 2.0)]:
        out = _processor(StyleAlignedSettings(shared_score_shift=shift, shared_score_scale=scale), 2).attend(q, k, v, SCALE)
        torch.testing.assert_close(out[[0, 3]], plain[[0, 3]])


def test_shift_ln2_equals_listing_the_reference_tokens_twice():
    q, k, v = _qkv(2, seed=5)  # one half: reference + one panel
    settings = StyleAlignedSettings(shared_score_shift=math.log(2), shared_score_scale=2.0,
                                    adain_queries=False, adain_keys=False)
    out = _processor(settings, 1).attend(q, k, v, SCALE)[1]
    ref_k, ref_v = 2.0 * k[0], v[0]
    keys = torch.cat([k[1], ref_k, ref_k], dim=-2)
    values = torch.cat([v[1], ref_v, ref_v], dim=-2)
    duplicated = torch.softmax(q[1] @ keys.transpose(-1, -2) * SCALE, dim=-1) @ values
    torch.testing.assert_close(out, duplicated)


def test_without_cfg_there_is_a_single_reference():
    """Guidance <= 1: one half, row B/2 is a panel like the others (not a second reference)."""
    q, k, v = _qkv(4, seed=7)
    out = _processor(StyleAlignedSettings(), 1).attend(q, k, v, SCALE)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=SCALE)
    assert not torch.allclose(out[2], plain[2])  # the authors' code would leave row 2 unshared
    expected = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), StyleAlignedSettings(), 1, SCALE)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-7, atol=1e-9)


def test_replay_without_record_explains_what_is_missing():
    proc = _processor(StyleAlignedSettings(), 2)
    proc.state.mode = "replay"
    q, k, v = _qkv(2)
    with pytest.raises(RuntimeError, match=r"^no reference recorded for layer 'layer': run the reference "
                                           r"branch \(mode 'record'\) before the panels \(mode 'replay'\) at every step$"):
        proc.attend(q, k, v, SCALE)


def test_half_precision_statistics_do_not_overflow():
    x = torch.full((1, 1, 4096, 8), 300.0, dtype=torch.float16) + torch.randn(1, 1, 4096, 8).half()
    mean, std = mean_std(x)
    assert torch.isfinite(std).all() and std.dtype == torch.float32


@pytest.mark.parametrize(
    "layers, level, expected_unshared",
    [
        (70, 0.0, []),
        (70, 1.0, list(range(70))),
        (10, 0.2, [0, 5]),  # k = 2 switched, period 5
        (10, 0.3, [0, 3, 6, 9]),  # k = 3, period 3
        (10, 0.8, [1, 2, 3, 4, 6, 7, 8, 9]),  # flip: l' = 0.2 -> [0, 5] switched, inverted
        (70, 0.01, []),  # k = 0: the authors divide by zero; no layer switched
        (70, 0.995, list(range(70))),  # flip, k = 0, inverted: all unshared
        # exactly 0.5 does not flip (spec: flip when l > 0.5): k = L/2, period 2, the even layers
        (70, 0.5, list(range(0, 70, 2))),
        (16, 0.5, list(range(0, 16, 2))),
    ],
)
def test_only_self_level_layer_choice(layers, level, expected_unshared):
    mask = unshared_layer_mask(layers, level)
    assert [i for i, off in enumerate(mask) if off] == expected_unshared


# -- the processor inside a diffusers attention layer -------------------------------------------

ATTENTION_LAYERS = {
    # a UNet transformer block's layer with diffusers' optional parts on: group norm, q/k norms,
    # a residual and a rescaled output
    "group norm, qk norm, residual": (dict(norm_num_groups=4, qk_norm="layer_norm", residual_connection=True,
                                           rescale_output_factor=2.0), 4),
    "spatial norm": (dict(spatial_norm_dim=3, out_bias=False), 4),  # a VAE mid-block layer
    # tokens in, three heads, an unscaled score (attn.scale 1, not 1/sqrt(d): diffusers' AttnProcessor)
    "tokens, unscaled scores": (dict(heads=3, scale_qk=False), 3),
}


@pytest.mark.parametrize("name", ATTENTION_LAYERS)
def test_the_processor_is_diffusers_attention_around_attend(name):
    """With one row per half, ``attend`` is plain attention: the processor must then give what
    the layer's own diffusers processor gives (AttnProcessor2_0, or AttnProcessor for an
    unscaled score), for 4-D (non-square) and token inputs."""
    from diffusers.models.attention_processor import Attention

    options, dims = ATTENTION_LAYERS[name]
    options = dict(options)
    heads = options.pop("heads", 2)
    torch.manual_seed(4)
    layer = Attention(query_dim=32, heads=heads, dim_head=5, **options).double().eval()
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(2, 32, 3, 5, generator=g, dtype=torch.float64)  # 3 x 5 tokens
    if dims == 3:
        hidden = hidden.flatten(2).transpose(1, 2)
    temb = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64) if "spatial_norm_dim" in options else None
    with torch.no_grad():
        expected = layer.processor(layer, hidden, temb=temb)
        out = _processor(StyleAlignedSettings(), 2)(layer, hidden, temb=temb)
    assert out.shape == hidden.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


def test_the_processor_takes_only_self_attention_without_a_mask():
    from diffusers.models.attention_processor import Attention

    layer = Attention(query_dim=8, heads=2, dim_head=4).eval()
    hidden = torch.randn(2, 6, 8)
    with pytest.raises(ValueError, match="^SharedSelfAttnProcessor is for self-attention layers only$"):
        _processor(StyleAlignedSettings(), 2)(layer, hidden, encoder_hidden_states=hidden)
    with pytest.raises(ValueError, match="^shared self-attention does not support an attention mask$"):
        _processor(StyleAlignedSettings(), 2)(layer, hidden, attention_mask=torch.zeros(2, 6, 6))


def test_adain_of_half_precision_comes_back_in_half_precision():
    """The statistics are taken in float32, the result is the input's dtype again (the next
    layer of a float16 UNet takes float16)."""
    g = torch.Generator().manual_seed(8)
    x, ref = torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randn(16, 6, generator=g, dtype=torch.float64)
    out = adain(x.half(), *mean_std(ref.half()))
    assert out.dtype == torch.float16
    np.testing.assert_allclose(out.double().numpy(), adain_np(x.half().double().numpy(), ref.half().double().numpy()),
                               rtol=2e-2, atol=2e-2)


def test_reference_bias_is_none_only_when_every_bias_is_zero():
    assert reference_bias((1.0,), 0.0) is None  # one reference, no shift: no mask at all
    assert reference_bias((0.5, 0.5), math.log(2)) is None  # ln 2 + ln 0.5 = 0 on both
    assert reference_bias((0.25, 0.75), 0.0) == pytest.approx([math.log(0.25), math.log(0.75)])


def test_score_bias_is_made_once_on_the_queries_device_and_dtype():
    state = SharingState(StyleAlignedSettings())
    like = torch.empty(0, dtype=torch.float64)
    row = state.score_bias(3, [0.5, -1.0], 2, like)
    assert row.shape == (1, 1, 1, 3 + 2 * 2)  # broadcast over rows, heads and queries
    assert row.flatten().tolist() == [0.0] * 3 + [0.5] * 2 + [-1.0] * 2
    assert state.score_bias(3, [0.5, -1.0], 2, like) is row
    # an accelerator's queries get an accelerator's bias (meta: a device without data)
    on_device = state.score_bias(3, [0.5, -1.0], 2, torch.empty(0, dtype=torch.float16, device="meta"))
    assert on_device.device.type == "meta" and on_device.dtype == torch.float16


def test_record_with_panels_riding_along_is_the_batch_and_keeps_copies():
    """Panels riding along with one reference give, reference rows included, what the authors'
    batch gives; the kept keys and values are not views into the step's whole batch (which
    would stay alive until the next step)."""
    q, k, v = _qkv(2 * 3, seed=9)
    expected = _processor(StyleAlignedSettings(), 2).attend(q, k, v, SCALE)
    proc = _processor(StyleAlignedSettings(), 2)
    proc.state.mode = "record"
    out = proc.attend(q, k, v, SCALE)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    kept = proc.state.reference_data("layer")
    for tensor, batch in ((kept.key, k), (kept.value, v)):
        assert tensor.untyped_storage().data_ptr() != batch.untyped_storage().data_ptr()
        torch.testing.assert_close(tensor[:, 0], batch.view(2, 3, *batch.shape[1:])[:, 0], rtol=0, atol=0)


def test_full_attention_share_runs_only_as_one_batch():
    proc = _processor(StyleAlignedSettings(full_attention_share=True), 2)
    proc.state.mode = "replay"
    with pytest.raises(RuntimeError, match="^full_attention_share couples all images: run the set as one batch$"):
        proc.attend(*_qkv(4), SCALE)


@pytest.mark.parametrize("devices, shift, value_width, folded", [
    (("cpu",), 0.4, 8, True),  # a listed device, a bias, values as wide as the keys: folded
    ((), 0.4, 8, False),  # a device not listed: the bias tensor
    (("cpu",), 0.0, 8, False),  # no bias at all (one reference, no shift): nothing to fold
    (("cpu",), 0.4, 6, False),  # values of another width than the keys: the bias tensor
])
def test_the_bias_rides_in_the_keys_only_on_the_listed_devices(monkeypatch, devices, shift, value_width, folded):
    calls, folding = [], attention.attention_with_bias_in_keys

    def counted(*args):
        calls.append(args)
        return folding(*args)

    monkeypatch.setattr(attention, "BIAS_IN_KEYS_DEVICES", devices)
    monkeypatch.setattr(attention, "attention_with_bias_in_keys", counted)
    settings = StyleAlignedSettings(shared_score_shift=shift, adain_queries=False, adain_keys=False)
    q, k, _ = _qkv(2 * 3, heads=3, seed=10)
    v = _qkv(2 * 3, heads=3, d=value_width, seed=11)[2]
    out = _processor(settings, 2).attend(q, k, v, SCALE)
    assert bool(calls) == folded
    expected = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), settings, 2, SCALE)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-7, atol=1e-9)


def test_mixture_statistics_are_the_spec_formula_for_one_head():
    """Three weighted references of one head (the reference axis is 1, not the heads'): the
    spec's mu = sum w_r mu_r, var = sum w_r (var_r + mu_r^2) - mu^2; on any device."""
    g = torch.Generator().manual_seed(12)
    weights = (0.5, 0.2, 0.3)
    mean = torch.randn(2, 3, 1, 1, 4, generator=g, dtype=torch.float64)
    std = torch.rand(2, 3, 1, 1, 4, generator=g, dtype=torch.float64) + 0.5
    mu, sigma = mixture_stats(mean, std, weights)
    w = np.array(weights).reshape(1, 3, 1, 1, 1)
    expected_mu = (w * mean.numpy()).sum(axis=1, keepdims=True)
    expected_var = (w * (std.numpy() ** 2 + mean.numpy() ** 2)).sum(axis=1, keepdims=True) - expected_mu**2
    np.testing.assert_allclose(mu.numpy(), expected_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.sqrt(expected_var), rtol=1e-10)
    on_device = mixture_stats(mean.to("meta"), std.to("meta"), weights)  # an accelerator's statistics
    assert all(x.device.type == "meta" and x.shape == (2, 1, 1, 1, 4) for x in on_device)


def test_the_engines_halves_override_the_pipelines_and_odd_batches_are_refused():
    state = SharingState(StyleAlignedSettings(), halves_provider=lambda: 2, halves_override=1)
    assert state.halves() == 1 and state.rows_per_half(3) == 3
    state.halves_override = None
    with pytest.raises(ValueError, match="^a batch of 3 rows cannot be split into 2 classifier-free-guidance halves$"):
        state.rows_per_half(3)


def test_each_layer_replays_what_it_recorded():
    """Two layers of one installation: each panel sees its own layer's reference, not the last
    recorded one."""
    state = SharingState(StyleAlignedSettings(), halves_provider=lambda: 2)
    layers = {name: SharedSelfAttnProcessor(state, name) for name in ("down", "up")}
    batches = {name: _qkv(2 * 2, seed=seed) for name, seed in (("down", 13), ("up", 14))}
    state.mode = "record"
    for name, (q, k, v) in batches.items():
        layers[name].attend(q[[0, 2]], k[[0, 2]], v[[0, 2]], SCALE)
    state.mode = "replay"
    for name, (q, k, v) in batches.items():
        out = layers[name].attend(q[[1, 3]], k[[1, 3]], v[[1, 3]], SCALE)
        expected = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), StyleAlignedSettings(), 2, SCALE)
        np.testing.assert_allclose(out.numpy(), expected[[1, 3]], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("share", [True, False])
def test_panels_riding_along_share_their_characters_anchors_in_a_character_layer(share):
    """A character layer in ``record`` with two weighted references and two panels riding along:
    the references' rows plain, a panel naming no character the section-4/11 attention, and the
    panel naming A also its anchors' tokens inside their masks (made at a coarser grid, 2 x 3 of
    a 4 x 6 layer) and kept by its dropout, with the characters' shift; written out by hand,
    gathering the allowed anchor tokens (spec section 13). Without shared attention a panel
    sees its own tokens and its anchors' only."""
    settings = StyleAlignedSettings(shared_score_scale=1.3, adain_values=True, share_attention=share)
    weights, halves, heads, n, d = (0.25, 0.75), 2, 2, 24, 8
    rows = {1: MappedRow(("A",), ((1,),), (8, 12), 0, 0), 2: MappedRow(("A",), ((1,),), (8, 12), 0, 1),
            3: MappedRow(("B",), ((1,),), (8, 12), 0, 2), 20: MappedRow(("A",), ((2,),), (8, 12), 77)}
    masks = {1: np.array([[1, 0, 1], [0, 1, 1]]), 2: np.array([[0, 1, 1], [1, 0, 0]]), 3: np.ones((2, 3))}
    characters = CharacterState(rows, [1, 2, 3], ["A", "A", "B"], {"up": 5}, 0.5, -0.3, step=2,
                                masks={row: {rows[row].names[0]: mask.astype(np.uint8)} for row, mask in masks.items()})
    g = torch.Generator().manual_seed(15)
    anchor_k, anchor_v = (torch.randn(halves, 3, heads, n, d, generator=g, dtype=torch.float64) for _ in range(2))
    characters.recorded["up"] = (anchor_k, anchor_v)
    characters.call_rows = [100, 101, 20, 99]  # the two references, a panel naming A, one naming no one
    state = SharingState(settings, halves_provider=lambda: halves, mode="record", reference_weights=weights,
                         characters=characters)
    q, k, v = _qkv(halves * 4, heads=heads, n=n, d=d, seed=16)
    out = SharedSelfAttnProcessor(state, "up").attend(q, k, v, SCALE).view(halves, 4, heads, n, d).numpy()
    q, k, v, anchor_k, anchor_v = (x.view(halves, -1, heads, n, d).numpy() if x.dim() == 4 else x.numpy()
                                   for x in (q, k, v, anchor_k, anchor_v))
    for half in range(halves):
        for h in range(heads):
            refs = [tuple(x[half, r, h] for x in (q, k, v)) for r in range(2)]
            for r in range(2):
                np.testing.assert_allclose(out[half, r, h], softmax(q[half, r, h] @ k[half, r, h].T * SCALE)
                                           @ v[half, r, h], rtol=1e-9, atol=1e-12)
            for j, row in ((2, 20), (3, 99)):
                qb, kb, vb = (mixture_adain_np(x[half, j, h], [ref[i] for ref in refs], weights)
                              for i, x in enumerate((q, k, v)))
                keys = [kb] + [1.3 * ref[1] for ref in refs if share]
                values = [vb] + [ref[2] for ref in refs if share]
                bias = [np.zeros(n)] + [np.full(n, math.log(w)) for w in weights if share]
                for a in range(2 if row == 20 else 0):  # A's anchors, each at the layer's grid
                    keep = np.repeat(np.repeat(masks[a + 1], 2, 0), 2, 1).ravel() > 0
                    keep &= dropout_keep(77, 2, 5, a, n, 0.5).numpy()
                    keys.append(anchor_k[half, a, h][keep])
                    values.append(anchor_v[half, a, h][keep])
                    bias.append(np.full(keep.sum(), -0.3))
                expected = softmax(qb @ np.concatenate(keys).T * SCALE + np.concatenate(bias)) @ np.concatenate(values)
                np.testing.assert_allclose(out[half, j, h], expected, rtol=1e-9, atol=1e-12)
