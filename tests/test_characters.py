"""Characters across panels (spec section 13) on the tiny model: every property of the spec.

The sets are non-square (192x128, one panel 128x192), use Euler, two characters with two and
three anchors, and a panel that names both.
"""

import copy
import hashlib
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.attention import ReferenceAttention
from stylealigned_desktop.engine.character_attention import (
    CharacterState,
    MappedRow,
    character_layers,
    dropout_keep,
    dropout_seed,
)
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.images import fit_picture, load_picture
from stylealigned_desktop.engine.inversion import encode_picture
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.server.sharding import plan_shards

TOL = 1e-4  # micro-batches and re-rolls round alike up to this (tests/test_generator.py)
MIRA = Character("Mira", "a red-haired girl in a yellow raincoat", anchor_seeds=(5, 6), anchor_text=", ink wash")
BO = Character("Bo", "an old man with a blue hat", ("man", "hat"), anchor_seeds=(7, 8, 9), anchor_text=", ink wash")
PANELS = (Panel("[Mira] runs in the rain, ink wash", 20), Panel("a house by the sea, ink wash", 21),
          Panel("[Mira] meets [Bo], ink wash", 22), Panel("[Bo] sleeps, ink wash", 23, size=(128, 192)),
          Panel("[Mira] waves, ink wash", 24))


def _request(panels=PANELS, characters=(MIRA, BO), settings=None, **kwargs):
    kwargs.setdefault("micro_batch", len(panels))
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3), panels=panels,
                      sampling=Sampling(steps=4, guidance=4.0, width=192, height=128, scheduler="euler"),
                      settings=settings or StyleAlignedSettings(anchors_per_character=2), characters=characters,
                      **kwargs)


def _spelled_out(panels=PANELS):
    """The panels with the descriptions written in place of the names."""
    return tuple(Panel(p.prompt.replace("[Mira]", MIRA.description).replace("[Bo]", BO.description), p.seed,
                       size=p.size) for p in panels)


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    # an unlimited preview budget: every row's preview every step, whatever the machine's speed
    return Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))


@pytest.fixture(scope="module")
def full(engine):
    events = []
    return engine.generate(_request(), events.append), events


@pytest.fixture(scope="module")
def plain(engine):
    return engine.generate(_request(_spelled_out(), characters=()))


def test_named_panels_share_their_characters_and_others_are_the_set_without_characters(full, plain):
    result, _events = full
    for i in (0, 2, 3, 4):  # the anchors change every panel that names a character
        assert (result.latents[i] - plain.latents[i]).abs().max() > 1e-3, i
    assert torch.equal(result.latents[1], plain.latents[1])  # names none: exactly section 4


def test_with_dropout_1_a_panel_is_itself_without_its_characters(engine, plain):
    settings = StyleAlignedSettings(anchors_per_character=2, character_dropout=1.0)
    dropped = engine.generate(_request(settings=settings))
    for i in range(len(PANELS)):
        assert torch.equal(dropped.latents[i], plain.latents[i]), i


def test_anchors_do_not_depend_on_the_panels_of_the_set(engine, full):
    result, _events = full
    others = (Panel("[Bo] reads, ink wash", 40), Panel("a cat, ink wash", 41, size=(64, 128)))
    for request in (_request(others), _request(only=(1,)), _request(micro_batch=1)):
        alone = engine.generate(request)
        assert set(alone.anchors) == set(result.anchors) == {("anchor", "Mira", 0), ("anchor", "Mira", 1),
                                                             ("anchor", "Bo", 0), ("anchor", "Bo", 1)}
        for key in result.anchors:
            assert torch.equal(alone.latents[key], result.latents[key]), key
            assert np.array_equal(alone.masks[key]["Bo" if "Bo" in key else "Mira"],
                                  result.masks[key]["Bo" if "Bo" in key else "Mira"])


@pytest.mark.parametrize("micro_batch", [1, 2, 3])
def test_every_micro_batch_size_gives_the_one_batch_panels(engine, full, micro_batch):
    result, _events = full
    batched = engine.generate(_request(micro_batch=micro_batch))
    for i in range(len(PANELS)):
        torch.testing.assert_close(batched.latents[i], result.latents[i], rtol=0, atol=TOL)


def test_a_reroll_gives_the_panels_of_the_whole_set(engine, full):
    result, _events = full
    again = engine.generate(_request(only=(4, 2), micro_batch=2))
    assert set(again.panels) == {2, 4}
    for i in (2, 4):
        torch.testing.assert_close(again.latents[i], result.latents[i], rtol=0, atol=TOL)


def test_a_sharded_set_gives_the_local_pixels(engine):
    panels = PANELS[:3] + PANELS[4:]  # one size: shards are whole local micro-batches (server/sharding.py)
    local = engine.generate(_request(panels, micro_batch=2))
    shards = plan_shards(_request(panels, micro_batch=2), 2)
    assert len(shards) == 2
    for shard in shards:
        part = engine.generate(_request(panels, micro_batch=2, only=shard))
        for i in shard:
            assert torch.equal(part.latents[i], local.latents[i]), i
            assert part.panels[i].tobytes() == local.panels[i].tobytes()


def test_results_carry_the_last_steps_masks_at_the_deepest_grid(full):
    result, events = full
    done = {e.index: e for e in events if isinstance(e, ev.PanelDone)}
    assert set(done[0].masks) == {"Mira"} and set(done[2].masks) == {"Mira", "Bo"} and done[1].masks == {}
    assert done[2].masks["Bo"].shape == (4, 6) and done[3].masks["Bo"].shape == (6, 4)  # latent / 4
    for mask in [m for e in done.values() for m in e.masks.values()]:
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    anchors = [e for e in events if isinstance(e, ev.AnchorDone)]
    assert [(e.character, e.number) for e in anchors] == [("Mira", 0), ("Mira", 1), ("Bo", 0), ("Bo", 1)]
    assert all(e.mask.shape == (4, 6) and e.mask.any() for e in anchors)
    assert result.masks[2]["Bo"] is done[2].masks["Bo"] and set(result.anchors) == {
        ev.anchor_key(e.character, e.number) for e in anchors}
    previews = [e for e in events if isinstance(e, ev.AnchorPreview)]
    assert sorted({e.step for e in previews}) == [1, 2, 3, 4] and len(previews) == 4 * 4


def test_a_picture_anchor_follows_its_inversion_and_ends_as_the_pictures_round_trip(engine, tiny_pipe, tmp_path):
    picture = tmp_path / "mira.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (128, 192, 3), dtype=np.uint8)).save(picture)
    designed = Character("Mira", MIRA.description, anchor_seeds=(5, 6), anchor_pictures=(str(picture),),
                         anchor_text=", ink wash")
    request = _request(PANELS[:1], characters=(designed,), cache_dir=str(tmp_path / "cache"))
    first, second = [], []
    result = engine.generate(request, first.append)
    engine.generate(request, second.append)
    z0 = encode_picture(tiny_pipe, fit_picture(load_picture(str(picture)), 192, 128))
    assert torch.equal(result.latents[("anchor", "Mira", 0)], z0[0].float())
    assert not torch.equal(result.latents[("anchor", "Mira", 1)], z0[0].float())  # anchor 2 is generated
    assert sum(isinstance(e, ev.Inverting) for e in first) == 4  # inverted once, then from the cache
    assert not any(isinstance(e, ev.Inverting) for e in second)
    done = next(e for e in first if isinstance(e, ev.AnchorDone))
    assert done.metadata["picture"] == str(picture) and done.metadata["prompt"] == MIRA.description


# -- the bias form equals the gather form ----------------------------------------------------------
def _state(shift):
    """Two characters: anchors 0, 1 of A and 2 of B; row 10 an anchor of A, rows 20 and 21 panels."""
    rows = {1: MappedRow(("A",), ((1,),), (4, 6), 0, 0), 2: MappedRow(("A",), ((1,),), (4, 6), 0, 1),
            3: MappedRow(("B",), ((1,),), (4, 6), 0, 2),
            20: MappedRow(("A", "B"), ((1,), (2,)), (4, 6), 77, None), 21: MappedRow(("B",), ((1,),), (4, 6), 78, None)}
    rng = np.random.default_rng(2)
    masks = {row: {rows[row].names[0]: (rng.random((4, 6)) > 0.4).astype(np.uint8)} for row in (1, 2, 3)}
    state = CharacterState(rows, [1, 2, 3], ["A", "A", "B"], {"up": 5}, 0.5, shift, step=2, masks=masks)
    return state, masks


@pytest.mark.parametrize("shift", [0.0, -0.7])
def test_the_bias_form_equals_the_gather_form(shift):
    torch.manual_seed(0)
    state, masks = _state(shift)
    halves, heads, n, d = 2, 2, 24, 4
    anchor_k, anchor_v = torch.randn(halves, 3, heads, n, d), torch.randn(halves, 3, heads, n, d)
    state.recorded["up"] = (anchor_k, anchor_v)
    ref = ReferenceAttention(key=torch.randn(halves, 1, heads, 2 * n, d), value=torch.randn(halves, 1, heads, 2 * n, d),
                             query_stats=None, key_stats=None, value_stats=None, bias=[math.log(0.25), math.log(0.75)])
    q, k, v = (torch.randn(halves, 3, heads, n, d) for _ in range(3))
    state.call_rows = [20, 99, 21]  # row 99 names no character
    scale = 0.5

    def plain(q, k, v):
        bias = torch.cat([torch.zeros(n), torch.tensor(ref.bias).repeat_interleave(n)])
        return torch.softmax(torch.cat([q @ k.transpose(-1, -2), q @ ref.key.expand(*q.shape[:2], -1, -1, -1)
                                        .transpose(-1, -2)], -1) * scale + bias, -1) @ torch.cat(
            [v, ref.value.expand(*q.shape[:2], -1, -1, -1)], -2)

    got = state.attend("up", q, k, v, ref, scale, "replay", 1, plain)
    for j, row in enumerate(state.call_rows):
        names = state.rows[row].names if row in state.rows else ()
        keys, values, bias = [k[:, j], ref.key[:, 0]], [v[:, j], ref.value[:, 0]], [torch.zeros(n),
                                                                                    torch.tensor(ref.bias).repeat_interleave(n)]
        for a, name in enumerate(["A", "A", "B"]):
            if name in names:  # gather the kept tokens of the anchor's mask
                keep = torch.from_numpy(masks[a + 1][name].ravel() > 0) & dropout_keep(
                    state.rows[row].seed, 2, 5, a, n, 0.5)
                keys.append(anchor_k[:, a][:, :, keep])
                values.append(anchor_v[:, a][:, :, keep])
                bias.append(torch.full((int(keep.sum()),), shift))
        scores = q[:, j] @ torch.cat(keys, -2).transpose(-1, -2) * scale + torch.cat(bias)
        expected = torch.softmax(scores, -1) @ torch.cat(values, -2)
        torch.testing.assert_close(got[:, j], expected, rtol=0, atol=1e-5)


def test_anchors_see_the_other_anchors_of_their_character_without_dropout():
    state, masks = _state(0.0)
    allowed = state._allowed("up", [1, 2, 3], 24, "cpu")
    assert not allowed[0, 0].any() and torch.equal(allowed[0, 1], torch.from_numpy(masks[2]["A"].ravel() > 0))
    assert not allowed[0, 2].any() and not allowed[2, :2].any() and not allowed[2, 2].any()


def test_dropout_keeps_about_one_minus_p_and_depends_on_its_four_numbers_only():
    """Seeded by 64 bits (little-endian) of the SHA-256 of "panel seed/step/layer/anchor"
    (docs/characters.md); p = 0 keeps every token, even one drawn at exactly 0 (panel seed 5259:
    its 1015th draw), and p = 1 none."""
    assert dropout_seed(20, 3, 7, 1) == int.from_bytes(hashlib.sha256(b"20/3/7/1").digest()[:8], "little")
    assert dropout_keep(5259, 1, 5, 0, 1024, 0.0).all() and not dropout_keep(5259, 1, 5, 0, 1024, 1.0).any()
    keep = dropout_keep(20, 3, 7, 1, 20000, 0.3)
    assert abs(keep.float().mean().item() - 0.7) < 0.02
    assert torch.equal(keep, dropout_keep(20, 3, 7, 1, 20000, 0.3))
    for other in [(21, 3, 7, 1), (20, 4, 7, 1), (20, 3, 8, 1), (20, 3, 7, 2)]:
        assert not torch.equal(keep, dropout_keep(*other, 20000, 0.3))


def test_panoramas_share_their_characters_and_anchors_lead_a_windowed_set(engine):
    """A set at twice the tiny model's native width is drawn as MultiDiffusion windows (spec
    section 14): its anchors run whole after the references, its panels share them window by
    window and carry no masks (each window sees a part); a panel of its own native size does."""
    panels = (Panel("[Mira] runs along the shore, ink wash", 30), Panel("[Mira] waves, ink wash", 31, size=(128, 128)),
              Panel("a quiet street, ink wash", 32))

    def run(characters, panels, events=None):
        return engine.generate(SetRequest(
            model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3), panels=panels, characters=characters,
            sampling=Sampling(steps=3, guidance=4.0, width=256, height=128, scheduler="euler", window_stride=8)),
            None if events is None else events.append)

    events = []
    shared, plain = run((MIRA,), panels, events), run((), _spelled_out(panels))
    done = {e.index: e for e in events if isinstance(e, ev.PanelDone)}
    assert done[0].metadata["windows"] == 3 and "windows" not in done[1].metadata  # 16-wide windows, stride 8
    for i in (0, 1):
        assert (shared.latents[i] - plain.latents[i]).abs().max() > 1e-3, i
    assert torch.equal(shared.latents[2], plain.latents[2])  # names no one: the set without characters
    assert set(shared.masks) == {1, ("anchor", "Mira", 0), ("anchor", "Mira", 1)}
    assert shared.masks[("anchor", "Mira", 0)]["Mira"].shape == (4, 8) and shared.masks[1]["Mira"].shape == (4, 4)


def test_what_the_characters_keep_does_not_grow_with_the_panels(engine, tiny_pipe):
    """Memory stays flat in the number of panels (issue 25): at every step the anchors' recorded
    keys and values are the same bytes for 2 panels and for 6, and a panel adds only its masks
    (one byte per cell of the deepest grid, per character it names); no map outlives its step."""
    from stylealigned_desktop.engine.subject_masks import SubjectMapProcessor

    def held(panels):
        seen = []

        def on_event(event):
            if isinstance(event, ev.Step):
                state = next(p.maps for p in tiny_pipe.unet.attn_processors.values()
                             if isinstance(p, SubjectMapProcessor))
                recorded = sum(t.numel() * t.element_size() for pair in state.recorded.values() for t in pair)
                masks = sum(m.nbytes for row in state.masks.values() for m in row.values())
                seen.append((recorded, masks, len(state._maps)))

        engine.generate(_request(panels, micro_batch=2), on_event)
        return seen

    few = held(tuple(Panel(f"[Mira] and [Bo] at the pier {i}, ink wash", 60 + i) for i in range(2)))
    many = held(tuple(Panel(f"[Mira] and [Bo] at the pier {i}, ink wash", 60 + i) for i in range(6)))
    grid = 4 * 6  # 128 x 192 at the deepest grid (latent / 4)
    assert len(few) == len(many) == 4
    for (recorded, masks, maps), (recorded_6, masks_6, maps_6) in zip(few, many):
        assert recorded == recorded_6 and maps == maps_6 == 0
        assert masks_6 - masks == 4 * 2 * grid  # 4 more panels, 2 characters each
    assert few[-1][0] > 0  # the anchors' keys and values are held (the comparison is not of nothing)


def test_micro_batches_a_reroll_and_shards_agree_with_a_picture_reference_in_the_set(engine, tmp_path):
    """Issue 25: micro-batch 1, 2 and all, an --only re-roll and each shard of a two-replica
    plan give the one-batch panels with characters and a picture reference (inverted, spec
    section 7) beside a generated one in the set."""
    from stylealigned_desktop.engine.request import ReferencePicture

    picture = tmp_path / "harbour.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(picture)
    style = (ReferencePicture(str(picture), "a harbour, ink wash", weight=0.6),
             GeneratedReference("a lighthouse, ink wash", 3, weight=0.4))
    panels = PANELS[:3] + PANELS[4:]  # one size: shards are whole local micro-batches (server/sharding.py)

    def run(**kwargs):
        kwargs.setdefault("micro_batch", len(panels))
        return engine.generate(SetRequest(
            model="tiny", style=style, panels=panels, characters=(MIRA, BO), cache_dir=str(tmp_path / "cache"),
            sampling=Sampling(steps=4, guidance=4.0, width=192, height=128, scheduler="euler"),
            settings=StyleAlignedSettings(anchors_per_character=2), **kwargs))

    whole = run()
    for micro_batch in (1, 2):
        batched = run(micro_batch=micro_batch)
        for i in range(len(panels)):
            torch.testing.assert_close(batched.latents[i], whole.latents[i], rtol=0, atol=TOL)
    again = run(only=(3, 0), micro_batch=2)
    for i in (0, 3):
        torch.testing.assert_close(again.latents[i], whole.latents[i], rtol=0, atol=TOL)
    local = run(micro_batch=2)
    shards = plan_shards(SetRequest(model="tiny", style=style, panels=panels, characters=(MIRA, BO),
                                    sampling=Sampling(steps=4, width=192, height=128), micro_batch=2), 2)
    assert len(shards) == 2
    for shard in shards:
        part = run(micro_batch=2, only=shard)
        for i in shard:
            assert torch.equal(part.latents[i], local.latents[i]), i
    assert (whole.latents[0] - engine.generate(SetRequest(
        model="tiny", style=style[1:], panels=panels, characters=(MIRA, BO),
        sampling=Sampling(steps=4, guidance=4.0, width=192, height=128, scheduler="euler"),
        settings=StyleAlignedSettings(anchors_per_character=2), micro_batch=len(panels))).latents[0]).abs().max() > 1e-3


# -- the character state step by step, engine-free (spec section 13; the mutation target) --------
def _attention_np(q, keys, values, bias, scale):
    """softmax(q K^T * scale + bias) V of one head, numpy."""
    scores = q @ np.concatenate(keys).T * scale + np.concatenate(bias)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ np.concatenate(values)


def test_sharing_starts_at_step_1_in_character_layers_once_an_anchor_has_a_mask():
    state, masks = _state(0.0)
    assert state.applies("up") and not state.applies("down")
    state.begin_step(0)
    assert not state.applies("up")
    state.begin_step(1)
    state.masks = {20: {"A": masks[1]["A"]}}  # a panel's mask alone: no anchor to see yet
    assert not state.applies("up")
    state.masks[3] = masks[3]
    assert state.applies("up")


def test_the_anchors_call_records_them_and_each_sees_its_characters_other_anchors():
    """The anchors in ``record`` behind one reference row: their keys and values are kept
    (copies), anchor 0 of A sees anchor 1's tokens inside its 2 x 3 mask at a 4 x 6 layer
    (no dropout, the characters' shift), B's only anchor sees none (section 4); an anchor
    without a mask yet is seen by nobody. Written out by hand, gathering the allowed tokens."""
    state, _ = _state(-0.4)
    state.masks = {1: {"A": np.array([[1, 1, 0], [0, 1, 0]], np.uint8)},
                   3: {"B": np.ones((2, 3), np.uint8)}}  # anchor 1 of A has no mask yet
    for row in (1, 2, 3):
        state.rows[row] = MappedRow(("A",) if row < 3 else ("B",), ((1,),), (8, 12), 0, row - 1)
    halves, heads, n, d, scale = 2, 3, 24, 4, 0.4
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(halves, 3, heads, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    ref = ReferenceAttention(key=torch.randn(halves, 1, heads, n, d, generator=g, dtype=torch.float64),
                             value=torch.randn(halves, 1, heads, n, d, generator=g, dtype=torch.float64),
                             query_stats=None, key_stats=None, value_stats=None, bias=None)

    def plain(q, k, v):
        return torch.softmax(q @ torch.cat([k, ref.key.expand_as(k)], -2).transpose(-1, -2) * scale, -1) @ torch.cat(
            [v, ref.value.expand_as(v)], -2)

    state.call_rows = [100, 1, 3]  # one anchor of A missing from the anchors' call
    with pytest.raises(RuntimeError, match="^the anchors run in one UNet call of their own$"):
        state.attend("up", q[:, :2], k[:, :2], v[:, :2], ref, scale, "record", 1, plain)
    state.call_rows = [100, 1, 2, 3]
    got = state.attend("up", q, k, v, ref, scale, "record", 1, plain).numpy()
    recorded = state.recorded["up"]
    assert torch.equal(recorded[0], k) and torch.equal(recorded[1], v)
    k.zero_()
    assert recorded[0].abs().sum() > 0  # a copy, not a view of the call's keys
    k = recorded[0].numpy()
    q, v, ref_k, ref_v = q.numpy(), v.numpy(), ref.key.numpy(), ref.value.numpy()
    mask = np.repeat(np.repeat(np.array([[1, 1, 0], [0, 1, 0]]), 2, 0), 2, 1).ravel() > 0
    for half in range(halves):
        for h in range(heads):
            for j in range(3):
                keys, values = [k[half, j, h], ref_k[half, 0, h]], [v[half, j, h], ref_v[half, 0, h]]
                bias = [np.zeros(n), np.zeros(n)]
                if j == 1:  # anchor 1 of A sees anchor 0 inside its mask
                    keys, values = keys + [k[half, 0, h][mask]], values + [v[half, 0, h][mask]]
                    bias.append(np.full(mask.sum(), -0.4))
                np.testing.assert_allclose(got[half, j, h], _attention_np(q[half, j, h], keys, values, bias, scale),
                                           rtol=1e-9, atol=1e-12)


def test_a_call_where_no_row_sees_an_anchor_token_is_the_plain_attention_whole():
    state, _ = _state(0.0)
    state.dropout = 1.0  # the panels keep no anchor token
    state.recorded["up"] = (torch.randn(2, 3, 2, 24, 4), torch.randn(2, 3, 2, 24, 4))
    state.call_rows = [20, 99, 21]
    q = torch.randn(2, 3, 2, 24, 4)
    calls = []

    def plain(*qkv):
        calls.append(qkv)
        return qkv[0] * 2

    k, v = q + 1, q + 2
    out = state.attend("up", q, k, v, None, 0.5, "replay", 0, plain)
    assert len(calls) == 1 and len(calls[0]) == 3 and all(x is y for x, y in zip(calls[0], (q, k, v)))
    assert torch.equal(out, q * 2)


@pytest.mark.parametrize("bias", [None, [math.log(0.25), math.log(0.75)]])
def test_the_panels_attention_and_its_masks_stay_on_the_queries_device(bias):
    """An accelerator's queries (``meta``: a device without data) get the anchors' allowed
    tokens, the biases and the attention on that device, in the queries' dtype."""
    state, _ = _state(0.0)
    assert state._allowed("up", [20, 21], 24, "meta").device.type == "meta"
    q = torch.empty(2, 2, 2, 24, 4, dtype=torch.float16, device="meta")
    ref = ReferenceAttention(key=torch.empty(2, 1, 2, 48, 4, dtype=torch.float16, device="meta"),
                             value=torch.empty(2, 1, 2, 48, 4, dtype=torch.float16, device="meta"),
                             query_stats=None, key_stats=None, value_stats=None, bias=bias)
    anchors = torch.empty(2, 3, 2, 24, 4, dtype=torch.float16, device="meta")
    allowed = torch.ones(2, 3, 24, dtype=torch.bool, device="meta")
    out = state._shared(q, q, q, ref, anchors, anchors, allowed, 0.5)
    assert out.device.type == "meta" and out.dtype == torch.float16 and out.shape == q.shape


def test_anchor_masks_are_resized_to_each_layers_grid_within_a_step():
    """Each anchor's mask (2 x 3) at a 4 x 6 and an 8 x 12 layer of one step, nearest by pixel
    centres (a plain repeat here); an anchor without a mask is all out; a new step's masks
    are read again."""
    state, _ = _state(0.0)
    first = np.array([[1, 0, 1], [0, 1, 1]], np.uint8)
    state.masks = {1: {"A": first}, 3: {"B": np.array([[0, 0, 1], [1, 0, 0]], np.uint8)}}
    for row in (1, 2, 3):
        state.rows[row] = MappedRow(state.rows[row].names, ((1,),), (16, 24), 0, row - 1)

    def repeated(mask, times):
        return torch.from_numpy(np.repeat(np.repeat(mask, times, 0), times, 1).ravel() > 0)

    for tokens, times in ((24, 2), (96, 4), (24, 2)):
        got = state._anchor_masks(tokens)
        assert got.dtype == torch.bool and got.shape == (3, tokens)
        assert torch.equal(got[0], repeated(first, times)) and not got[1].any()
        assert torch.equal(got[2], repeated(state.masks[3]["B"], times))
    state.end_step()
    state.masks[1] = {"A": 1 - first}
    assert torch.equal(state._anchor_masks(24)[0], repeated(1 - first, 2))


def test_character_layers_are_the_up_blocks_or_all_shared_layers_by_their_self_attention_index():
    names = ["down_blocks.1.a.attn1.processor", "down_blocks.1.b.attn1.processor", "mid_block.a.attn1.processor",
             "up_blocks.0.a.attn1.processor", "up_blocks.1.a.attn1.processor"]
    shared = [names[0], names[2], names[4]]  # the second down layer and the first up layer unshared
    assert character_layers(shared, "up", names) == {names[4]: 4}
    assert character_layers(shared, "all", names) == {names[0]: 0, names[2]: 2, names[4]: 4}


def test_installing_characters_maps_anchors_and_naming_panels_and_wraps_the_deepest_cross_attention(tiny_pipe):
    """A set of 192 x 128 with a 128 x 192 panel drawn in windows, character layers ``all``:
    the mapped rows (names, subject tokens read back from the tokenizer, latent size, seed,
    anchor index, whether mapped), the state's anchors and settings, and the deepest
    cross-attention layers wrapped around their own processors until the installation is removed."""
    from stylealigned_desktop.engine.character_attention import install_characters
    from stylealigned_desktop.engine.install import Installation
    from stylealigned_desktop.engine.rows import RunRows
    from stylealigned_desktop.engine.subject_masks import (
        SubjectMapProcessor,
        deepest_cross_attention_names,
    )

    settings = StyleAlignedSettings(anchors_per_character=2, character_layers="all", character_dropout=0.3,
                                    character_shift=-0.2)
    request, unet, tokenizer = _request(settings=settings), tiny_pipe.unet, tiny_pipe.tokenizer
    rows, before = RunRows.of(request), dict(unet.attn_processors)
    installation = Installation(unet, settings)
    try:
        state = install_characters(installation, tiny_pipe, request, rows, {(128, 192)})
        wrapped = dict(unet.attn_processors)
    finally:
        installation.remove()
    assert state is installation.state.characters and unet.attn_processors == before
    named = {"Mira": "red-hairedgirlyellowraincoat", "Bo": "manhat"}
    expected = {1: ("Mira", 0, 5), 2: ("Mira", 1, 6), 3: ("Bo", 2, 7), 4: ("Bo", 3, 8)}  # after the reference
    expected.update({5: ("Mira", None, 20), 7: (("Mira", "Bo"), None, 22), 8: ("Bo", None, 23), 9: ("Mira", None, 24)})
    assert sorted(state.rows) == sorted(expected)
    for number, (names, anchor, seed) in expected.items():
        mapped, names = state.rows[number], (names,) if isinstance(names, str) else names
        text = rows.rows[number].prompt if anchor is not None else _spelled_out()[number - 5].prompt
        ids = tokenizer(text).input_ids
        assert [tokenizer.decode([ids[p] for p in t]).replace(" ", "") for t in mapped.tokens] == [
            named[name] for name in names]
        latent = (24, 16) if number == 8 else (16, 24)  # (height, width) / 8
        assert (mapped.names, mapped.latent, mapped.seed, mapped.anchor, mapped.mapped) == (
            names, latent, seed, anchor, number != 8)
        assert all(type(side) is int for side in mapped.latent)
    assert state.anchors == [1, 2, 3, 4] and state.anchor_names == ["Mira", "Mira", "Bo", "Bo"]
    assert (state.dropout, state.shift) == (0.3, -0.2)
    self_attention = [name for name in before if not unet.get_submodule(name.removesuffix(".processor")).is_cross_attention]
    assert state.layers == {name: self_attention.index(name) for name in installation.shared_layers}
    deepest = deepest_cross_attention_names(unet)
    for name, processor in wrapped.items():
        if name in deepest:
            assert isinstance(processor, SubjectMapProcessor) and processor.inner is before[name]
            assert processor.maps is state and processor.name == name
        else:
            assert not isinstance(processor, SubjectMapProcessor)
    without = _request(characters=(), panels=_spelled_out())
    installation = Installation(unet, settings)
    try:
        shared = dict(unet.attn_processors)
        assert install_characters(installation, tiny_pipe, without, RunRows.of(without)) is None
        assert unet.attn_processors == shared and installation.state.characters is None
    finally:
        installation.remove()


def test_anchors_are_mapped_whole_in_a_windowed_set_and_one_tokenizer_pipes_read_the_same_tokens(tiny_pipe):
    """The set's own size drawn in windows: its panels carry no maps, its anchors do (they run
    whole). A base with one tokenizer (SD 1.5) or only its second (SDXL's refiner form) finds the
    same subject tokens."""
    from stylealigned_desktop.engine.character_attention import mapped_rows
    from stylealigned_desktop.engine.rows import RunRows
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    request = _request()
    rows = RunRows.of(request)
    mapped = mapped_rows(tiny_pipe, request, rows, {(192, 128)})
    assert [number for number, row in mapped.items() if row.mapped] == [1, 2, 3, 4, 8]  # the anchors, the tall panel
    sd15 = build_tiny_pipeline("tiny-sd15")
    assert not hasattr(sd15, "tokenizer_2") and sd15.vae_scale_factor == tiny_pipe.vae_scale_factor
    refiner = copy.copy(tiny_pipe)
    refiner.tokenizer = None
    assert tiny_pipe.tokenizer is not None
    for pipe in (sd15, refiner):
        assert mapped_rows(pipe, request, rows, {(192, 128)}) == mapped
