"""Subject masks (spec section 13, steps 1-2) against naive code written from the spec's text,
scikit-image's Otsu and PIL's nearest-neighbour resize, on synthetic maps."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.filters import threshold_otsu

from stylealigned_desktop.engine.subject_masks import (
    SubjectMapProcessor,
    deepest_cross_attention_names,
    grid_of,
    layer_subject_map,
    otsu_threshold,
    resize_nearest,
    subject_mask,
)


def _maps():
    rng = np.random.default_rng(7)
    blob = np.zeros((6, 10))
    blob[1:4, 2:7] = 1.0
    yield rng.random((5, 9))  # uniform
    yield blob + 0.05 * rng.random((6, 10))  # a subject on a quiet ground
    yield np.concatenate([rng.normal(0.2, 0.05, 40), rng.normal(0.7, 0.1, 23)]).reshape(7, 9)
    yield np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 1.0, 0.25]])  # few values: ties between thresholds
    yield rng.integers(0, 3, (4, 12)).astype(float)  # three levels
    yield np.array([[0.0, 1 / 512, 1.0, 1.0], [0.0, 1 / 512, 1.0, 0.0]])  # a value on the threshold: not in the mask
    yield np.array([[0.495, 0.0, 0.475, 0.528, 1.0]])  # a class of one value (the minimum) against the best one
    # float32, as the maps come from the UNet, with a value that float32 scaling would put on the threshold
    yield np.array([[1.3820345401763916, 0.9013522267341614, 0.5818105936050415],
                    [1.0053495168685913, 0.9761750102043152, 1.8803250789642334]], dtype=np.float32)


@pytest.mark.parametrize("subject_map", list(_maps()))
def test_otsu_is_scikit_images(subject_map):
    scaled = (subject_map - subject_map.min()) / (subject_map.max() - subject_map.min())
    assert otsu_threshold(scaled) == pytest.approx(threshold_otsu(scaled, nbins=256), abs=1e-12)


def test_otsu_of_float32_values_is_that_of_their_float64_values():
    """The bins' edges and centres are computed in float64 whatever the values' type (the maps
    come from the UNet in float32, unscaled here)."""
    values = list(_maps())[-1]
    assert values.dtype == np.float32
    assert otsu_threshold(values) == pytest.approx(threshold_otsu(values.astype(np.float64), nbins=256), abs=1e-12)


def _naive_mask(subject_map, bins=256):
    """Steps 2 of the spec, written out: scale by min and max, try every threshold between the
    256 bins, keep the first largest between-class variance; the mask is above its bin's centre."""
    flat = [float(x) for x in subject_map.ravel()]
    low, high = min(flat), max(flat)
    scaled = [(x - low) / (high - low) for x in flat]
    width = 1.0 / bins
    index = [min(int(x / width), bins - 1) for x in scaled]
    best, best_k = -1.0, 0
    for k in range(bins - 1):
        lower = [x for x, i in zip(scaled, index) if i <= k]
        upper = [x for x, i in zip(scaled, index) if i > k]
        if not lower or not upper:
            continue
        # the classes' means of their bins' centres
        m0 = sum((i + 0.5) * width for i in index if i <= k) / len(lower)
        m1 = sum((i + 0.5) * width for i in index if i > k) / len(upper)
        variance = len(lower) * len(upper) * (m0 - m1) ** 2
        if variance > best + 1e-15:
            best, best_k = variance, k
    centre = (best_k + 0.5) * width
    return np.array([x > centre for x in scaled]).reshape(subject_map.shape)


@pytest.mark.parametrize("subject_map", list(_maps()))
def test_masks_are_the_naive_ones(subject_map):
    assert np.array_equal(subject_mask(subject_map), _naive_mask(subject_map))


def test_a_flat_map_gives_an_empty_mask():
    mask = subject_mask(np.full((3, 5), 0.25))
    assert mask.dtype == bool and mask.shape == (3, 5) and not mask.any()


@pytest.mark.parametrize("subject_map", list(_maps())[1:3])
def test_a_mask_does_not_change_when_its_map_is_shifted_or_scaled(subject_map):
    """Scaling by the minimum and maximum takes out any shift and positive scale, also of a map
    that goes below zero."""
    mask = _naive_mask(subject_map)
    for shifted in (subject_map * 3.0 - 2.5, subject_map * 0.2 - 1.0, subject_map + 4.0):
        assert np.array_equal(subject_mask(shifted), mask)


@pytest.mark.parametrize("shape, target", [((4, 6), (8, 12)), ((3, 5), (7, 4)), ((6, 4), (6, 4)), ((5, 7), (2, 3))])
def test_nearest_resize_is_pils(shape, target):
    mask = np.random.default_rng(3).random(shape) > 0.5
    pil = Image.fromarray(mask.astype(np.uint8) * 255).resize((target[1], target[0]), Image.NEAREST)
    assert np.array_equal(resize_nearest(mask, *target), np.asarray(pil) > 0)


def test_layer_maps_average_probabilities_over_heads_and_subject_tokens():
    generator = torch.Generator().manual_seed(5)
    heads, n, t, d = 3, 6, 9, 4
    q, k = torch.randn(heads, n, d, generator=generator), torch.randn(heads, t, d, generator=generator)
    tokens = [(2, 3), (7,), ()]
    got = layer_subject_map(q, k, 1 / math.sqrt(d), tokens)
    for c, chosen in enumerate(tokens):
        for i in range(n):
            total = 0.0
            for h in range(heads):
                scores = [sum(q[h, i, x] * k[h, j, x] for x in range(d)).item() / math.sqrt(d) for j in range(t)]
                exps = [math.exp(s - max(scores)) for s in scores]
                total += sum(exps[j] for j in chosen) / sum(exps) / max(len(chosen), 1)
            assert got[c, i].item() == pytest.approx(total / heads, abs=1e-6)


def test_grids_of_non_square_latents():
    assert grid_of(24, 16, 24) == (4, 6)
    assert grid_of(96, 16, 24) == (8, 12)
    assert grid_of(24, 15, 23) == (4, 6)  # latent sides that the UNet's downsampling rounds up
    with pytest.raises(ValueError, match="^25 tokens are no grid of a 16x24 latent$"):
        grid_of(25, 16, 24)


def test_the_deepest_cross_attention_layers_are_those_with_the_fewest_tokens(tiny_pipe):
    """Independent of the block arithmetic: run the UNet and count each cross-attention's tokens."""
    unet = tiny_pipe.unet
    counts = {}
    hooks = [module.register_forward_pre_hook(
        lambda mod, args, kwargs, name=name: counts.__setitem__(name, kwargs.get("hidden_states", args[0] if args else None).shape[1]),
        with_kwargs=True)
        for name, module in unet.named_modules() if getattr(module, "is_cross_attention", False)]
    try:
        with torch.no_grad():
            unet(torch.zeros(1, 4, 16, 24), 10, encoder_hidden_states=torch.zeros(1, 77, 64),
                 added_cond_kwargs={"text_embeds": torch.zeros(1, 32), "time_ids": torch.zeros(1, 6)})
    finally:
        for hook in hooks:
            hook.remove()
    fewest = min(counts.values())
    expected = sorted(f"{name}.processor" for name, count in counts.items() if count == fewest)
    assert sorted(deepest_cross_attention_names(unet)) == expected and fewest == 4 * 6


def _layer_norm(x, norm):
    """A LayerNorm over the last axis, from its formula and the module's weights."""
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + norm.eps) * norm.weight.detach().numpy() + norm.bias.detach().numpy()


def _cross_attention(seed):
    """A transformer's cross-attention layer with diffusers' optional norms on (of the context,
    of queries and keys), random weights throughout."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(seed)
    layer = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=4, cross_attention_norm="layer_norm",
                      qk_norm="layer_norm").double().eval()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_()
    return layer


def _subject_maps_np(layer, hidden, context, tokens):
    """Step 1 of the spec for one image and one layer, in numpy: softmax(QK^T / sqrt(d)) over
    the text tokens, averaged over heads and over each character's subject tokens."""
    weight = {name: getattr(layer, name).weight.detach().numpy() for name in ("to_q", "to_k")}
    n, t, heads = hidden.shape[0], context.shape[0], layer.heads
    query = (hidden @ weight["to_q"].T).reshape(n, heads, -1).transpose(1, 0, 2)
    key = (_layer_norm(context, layer.norm_cross) @ weight["to_k"].T).reshape(t, heads, -1).transpose(1, 0, 2)
    query, key = _layer_norm(query, layer.norm_q), _layer_norm(key, layer.norm_k)
    scores = query @ key.transpose(0, 2, 1) / math.sqrt(query.shape[-1])
    probabilities = np.exp(scores - scores.max(-1, keepdims=True))
    probabilities = (probabilities / probabilities.sum(-1, keepdims=True)).mean(0)
    return np.stack([probabilities[:, list(t)].mean(-1) if t else np.zeros(n) for t in tokens])


def test_the_deepest_layers_map_the_conditional_rows_of_a_call_into_non_square_masks():
    """Two wrapped cross-attention layers in one CFG call of four rows (a panel naming two
    characters, a row naming none, a panorama's panel, an anchor), a 4 x 6 grid: the layers'
    outputs are their own processors', and at the end of the step each mapped row of the
    conditional half has, per name, the Otsu mask (scikit-image's) of its maps averaged over the
    two layers; a call retried starts its rows' maps again."""
    from stylealigned_desktop.engine.character_attention import CharacterState, MappedRow

    rows = {20: MappedRow(("A", "B"), ((2, 3), (5,)), (16, 24), 77),
            21: MappedRow(("A",), ((2,),), (16, 24), 78, mapped=False),
            22: MappedRow(("B", "A"), ((6,), ()), (32, 48), 0, anchor=0)}
    state = CharacterState(rows, [22], ["B"], {"up": 3}, 0.5, 0.0)
    layers = [_cross_attention(seed) for seed in (1, 2)]
    wrapped = [SubjectMapProcessor(layer.processor, state, f"layer{i}") for i, layer in enumerate(layers)]
    g = torch.Generator().manual_seed(9)
    hidden = torch.randn(8, 24, 16, generator=g, dtype=torch.float64)  # 2 halves x 4 rows, 4 x 6 tokens
    context = torch.randn(8, 7, 12, generator=g, dtype=torch.float64)
    state.begin_step(1)
    # the first call fails after the layers ran (another batch's states): retried
    for attempt in (hidden.flip(1), hidden):
        state.begin_call([20, 99, 21, 22])
        for layer, processor in zip(layers, wrapped):
            with torch.no_grad():
                out = processor(layer, attempt, encoder_hidden_states=context)
                torch.testing.assert_close(out, layer.processor(layer, attempt, encoder_hidden_states=context),
                                           rtol=0, atol=0)
    state.end_step()
    assert sorted(state.masks) == [20, 22] and not state._maps
    for position, row in ((4, 20), (7, 22)):
        maps = sum(_subject_maps_np(layer, hidden[position].numpy(), context[position].numpy(), rows[row].tokens)
                   for layer in layers) / 2
        assert list(state.masks[row]) == list(rows[row].names)
        for name, subject_map in zip(rows[row].names, maps):
            mask = state.masks[row][name]
            assert mask.dtype == np.uint8 and mask.shape == (4, 6)
            if np.ptp(subject_map) == 0:  # a name whose words CLIP did not read: a flat map
                assert not mask.any()
                continue
            scaled = (subject_map - subject_map.min()) / np.ptp(subject_map)
            expected = scaled > threshold_otsu(scaled, nbins=256)
            assert 0 < expected.sum() < 24 and np.array_equal(mask, expected.reshape(4, 6)), (row, name)


def test_subject_maps_need_a_conditional_half_and_a_transformers_cross_attention():
    """A batch that is no whole number of the call's rows, or self-attention, adds no map; a
    layer with a group norm or 4-D input is refused with its reason."""
    from diffusers.models.attention_processor import Attention

    from stylealigned_desktop.engine.character_attention import CharacterState, MappedRow

    state = CharacterState({20: MappedRow(("A",), ((1,),), (4, 6), 7)}, [], [], {}, 0.5, 0.0)
    layer = _cross_attention(3)
    processor = SubjectMapProcessor(layer.processor, state, "layer")
    hidden, context = torch.randn(3, 24, 16, dtype=torch.float64), torch.randn(3, 7, 12, dtype=torch.float64)
    assert state.wanted_rows(3) == []  # no call under way
    state.begin_call([20, 99])
    assert state.wanted_rows(3) == [] and state.wanted_rows(2) == [(0, 20, ((1,),))]
    with torch.no_grad():
        processor(layer, hidden, encoder_hidden_states=context)
        own = Attention(query_dim=16, heads=2, dim_head=4)
        SubjectMapProcessor(own.processor, state, "own")(own, hidden[:2].float())  # self-attention: no context
    assert not state._maps
    grouped = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=4, norm_num_groups=4)
    for attn, states in ((grouped, hidden[:2].float()), (layer, hidden[:2].view(2, 16, 4, 6))):
        with pytest.raises(ValueError, match=r"^subject maps need a transformer's cross-attention "
                                             r"\(no spatial or group norm\)$"):
            SubjectMapProcessor(attn.processor, state, "layer")(attn, states, encoder_hidden_states=context[:2])


def test_a_unet_without_cross_attention_has_no_layers_to_map():
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                                mid_block_type="UNetMidBlock2D", cross_attention_dim=8)
    assert deepest_cross_attention_names(unet) == []


def test_the_wrapped_layer_hands_everything_on_to_its_own_processor():
    """An attention mask, a spatial norm's ``temb`` and diffusers' deprecated ``scale`` (in
    ``args`` or ``kwargs``: its processor warns) reach the wrapped processor."""
    from diffusers.models.attention_processor import Attention

    from stylealigned_desktop.engine.character_attention import CharacterState, MappedRow

    state = CharacterState({20: MappedRow(("A",), ((1, 2),), (16, 24), 7)}, [], [], {}, 0.5, 0.0)
    state.begin_call([20, 99])
    layer = _cross_attention(4)
    processor = SubjectMapProcessor(layer.processor, state, "down_blocks.2.attn2.processor")
    assert processor.name == "down_blocks.2.attn2.processor" and processor.inner is layer.processor
    g = torch.Generator().manual_seed(6)
    hidden, context = torch.randn(2, 24, 16, generator=g, dtype=torch.float64), torch.randn(2, 7, 12, generator=g,
                                                                                          dtype=torch.float64)
    mask = torch.zeros(2, 1, 7, dtype=torch.float64)
    mask[:, :, 3:] = -10.0  # the last text tokens masked out
    with torch.no_grad():
        masked = processor(layer, hidden, context, mask)
        expected = layer.processor(layer, hidden, context, mask)
        assert (expected - layer.processor(layer, hidden, context)).abs().max() > 1e-3
        torch.testing.assert_close(masked, expected, rtol=0, atol=0)
        assert 20 in state._maps  # the maps do not see the mask (the spec's softmax over all tokens)
        norm = Attention(query_dim=32, heads=2, dim_head=4, spatial_norm_dim=3).double().eval()
        states, temb = torch.randn(2, 32, 4, 6, generator=g, dtype=torch.float64), torch.randn(2, 3, 2, 3, generator=g,
                                                                                             dtype=torch.float64)
        state.begin_call([])  # no row to map: a spatial norm passes
        torch.testing.assert_close(SubjectMapProcessor(norm.processor, state, "n")(norm, states, temb=temb),
                                   norm.processor(norm, states, temb=temb), rtol=0, atol=0)
        for args, kwargs in (((1.0,), {}), ((), {"scale": 1.0})):
            with pytest.warns(FutureWarning, match="The `scale` argument is deprecated"):
                processor(layer, hidden, context, None, None, *args, **kwargs)
