"""Sharding a set over replicas and merging their streams back, against real engine runs."""

import hashlib
import itertools
import json
import os
from pathlib import Path

import pytest

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.server.sharding import RESTART, StreamMerger, plan_shards
from stylealigned_desktop.server.wire import event_to_wire


def _request(n=4, steps=3, **kwargs):
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3),
                      panels=tuple(Panel(f"thing {i}, ink wash", 20 + i) for i in range(n)),
                      sampling=Sampling(steps=steps, guidance=4.0, width=128, height=64, scheduler="euler"),
                      **kwargs)


def _local_batches(request):
    """The UNet batches of panels a local run makes: selected panels in micro-batch chunks."""
    m = request.micro_batch
    selected = list(request.selected)
    return [tuple(selected[i : i + m]) for i in range(0, len(selected), m)]


@pytest.mark.parametrize("n, micro_batch, only, replicas", [
    (5, 2, None, 2), (7, 3, None, 2), (9, 2, (8, 1, 3, 4, 6), 3), (4, 1, None, 8), (2, 1, None, 8),
    (6, 4, None, 3), (1, 1, None, 4),
])
def test_shards_are_whole_local_micro_batches_balanced_and_never_more_than_panels(n, micro_batch, only, replicas):
    request = _request(n, micro_batch=micro_batch, only=only)
    shards = plan_shards(request, replicas)
    assert [i for shard in shards for i in shard] == list(request.selected)
    assert all(shards) and len(shards) <= min(replicas, len(request.selected))
    chunks = _local_batches(request)
    assert len(shards) == min(replicas, len(chunks))  # every free replica that can get work gets some
    shard_batches = [b for shard in shards for b in _local_batches(_request(n, micro_batch=micro_batch, only=shard))]
    assert shard_batches == chunks
    sizes = [len(_local_batches(_request(n, micro_batch=micro_batch, only=s))) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_coupled_sets_and_single_replicas_stay_whole():
    coupled = _request(4, micro_batch=1, settings=StyleAlignedSettings(full_attention_share=True))
    assert plan_shards(coupled, 4) == [(0, 1, 2, 3)]
    assert plan_shards(_request(4, micro_batch=1), 1) == [(0, 1, 2, 3)]
    assert plan_shards(_request(3), 2) == [(0, 1), (2,)]  # automatic micro-batch: panels split
    assert plan_shards(_request(4), 4) == [(0,), (1,), (2,), (3,)]  # one panel each


ENGINE_EVENTS = "STYLEALIGNED_TEST_ENGINE_EVENTS"
"""A folder that keeps the engine's wire events of these runs, set by ``scripts/mutation.py`` for
the sharding target only: there only sharding.py is mutated, never the engine, so the runs are
made once and not again for every mutant. Unset (as in the suite), the engine runs every time."""


def _wire_run(engine, request):
    folder = os.environ.get(ENGINE_EVENTS)
    text = json.dumps(request.to_dict(), sort_keys=True)
    kept = Path(folder) / f"{hashlib.sha256(text.encode()).hexdigest()}.json" if folder else None
    if kept is not None and kept.exists():
        return json.loads(kept.read_text(encoding="utf-8"))
    events = []
    engine.generate(request, lambda e: events.append(event_to_wire(e)))
    events = [e for e in events if e["event"] != "Loading"]
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(events), encoding="utf-8")
        events = json.loads(kept.read_text(encoding="utf-8"))  # the same form as when read back
    return events


@pytest.fixture(scope="module")
def runs(request):
    # the tiny model is built only when an engine run is not kept (ENGINE_EVENTS)
    # an unlimited preview budget: every row's preview every step, so runs compare event for event
    engine = Engine(loader=lambda *args, **kwargs: request.getfixturevalue("tiny_pipe"), preview_budget=float("inf"))
    return _sharded_runs(engine, previews="factors")


def _sharded_runs(engine, **kwargs):
    full = _request(4, micro_batch=2, **kwargs)
    shards = plan_shards(full, 2)
    assert shards == [(0, 1), (2, 3)]
    return shards, _wire_run(engine, full), [_wire_run(engine, _request(4, micro_batch=2, only=s, **kwargs))
                                             for s in shards]


def _merge(shards, feed):
    merger = StreamMerger((0, 1, 2, 3), shards)
    out = [e for shard, event in feed for e in merger.feed(shard, event)]
    assert merger.ended
    return out


def _interleavings(streams):
    tagged = [[(s, e) for e in stream] for s, stream in enumerate(streams)]
    yield tagged[1] + tagged[0]  # one shard entirely before the other
    yield [pair for pairs in itertools.zip_longest(*tagged) for pair in pairs if pair]  # in lockstep
    yield tagged[0][:5] + tagged[1] + tagged[0][5:]


def test_merged_shard_streams_are_the_local_run_event_for_event(runs):
    shards, local, streams = runs
    for feed in _interleavings(streams):
        merged = _merge(shards, feed)
        # Same events in the same order, previews and pictures pixel for pixel (PNG base64).
        assert merged[:-1] == local[:-1]
        finished = merged[-1]["metadata"]
        assert finished["micro_batch"] == 2 and [s["panels"] for s in finished["shards"]] == [[1, 2], [3, 4]]
        assert "request" not in finished  # server paths stay on the server


def test_a_shard_run_again_after_its_replica_died_changes_nothing_but_a_notice(runs):
    shards, local, streams = runs
    first, second = streams
    died_after = next(i for i, e in enumerate(second) if e["event"] == "Step" and e["step"] == 2) + 2
    feed = ([(0, e) for e in first[:9]] + [(1, e) for e in second[:died_after]] + [(1, {"event": RESTART})]
            + [(0, e) for e in first[9:]] + [(1, e) for e in second])
    merged = _merge(shards, feed)
    notices = [e for e in merged if e["event"] == "Notice" and not e["message"].startswith(("memory mode", "previews"))]
    assert len(notices) == 1 and "panels 3, 4" in notices[0]["message"]
    assert [e for e in merged if e["event"] != "Notice"][:-1] == [e for e in local if e["event"] != "Notice"][:-1]


@pytest.mark.parametrize("final", [{"event": "Failed", "message": "out of memory"}, {"event": "Cancelled"}])
def test_a_failed_or_cancelled_shard_ends_the_set_at_once(runs, final):
    shards, _local, streams = runs
    merger = StreamMerger((0, 1, 2, 3), shards)
    for event in streams[0][:4]:
        merger.feed(0, event)
    assert merger.feed(1, final) == [final]
    assert merger.ended and merger.feed(0, streams[0][4]) == []


def test_loading_is_shown_from_one_shard_only():
    merger = StreamMerger((0, 1), [(0,), (1,)])
    loading = [{"event": "Loading", "progress": p, "message": "loading tiny"} for p in (0.0, 0.5)]
    assert merger.feed(1, loading[0]) == [loading[0]]
    assert merger.feed(0, loading[0]) == []
    assert merger.feed(1, loading[1]) == [loading[1]]
    assert merger.feed(0, {"event": "Notice", "message": "hi"}) == [{"event": "Notice", "message": "hi"}]


def test_events_of_a_local_run_have_the_documented_order(runs):
    """What the merger relies on: the memory mode said, per step a Step, then one preview per
    row, reference first; then every picture decoded, then the pictures."""
    _shards, local, _streams = runs
    kinds = [(e["event"], e.get("index"), e.get("step"), e.get("done")) for e in local]
    rows = [None, 0, 1, 2, 3]
    expected = [("Notice", None, None, None)] * 2  # the memory mode, the preview decoder
    expected += [x for i in (1, 2, 3) for x in [("Step", None, i, None)] + [("Preview", r, i, None) for r in rows]]
    expected += [("Decoding", None, None, done) for done in range(1, 6)]
    expected += [("PanelDone", r, None, None) for r in rows] + [("Finished", None, None, None)]
    assert kinds == expected


def test_what_every_shard_says_is_said_once():
    merger = StreamMerger((0, 1), [(0,), (1,)])
    said = {"event": "Notice", "message": "memory mode fast (auto): no GPU on this computer"}
    assert merger.feed(0, said) == [said]
    assert merger.feed(1, dict(said)) == []


def _one_step_stream(panels, metadata, references=(0,), anchors=()):
    """A shard's wire events of a one-step run, as the engine orders them (pictures as text);
    ``references``: the positions of the references that run; ``anchors``: the characters'
    anchors, (name, number), which run after the references."""
    rows = [(None, r) for r in references] + [(i, None) for i in panels]
    previews = [{"event": "Preview", "index": i, "step": 1, "png": f"p{i}{r}", "reference": r} for i, r in rows]
    done = [{"event": "PanelDone", "index": i, "png": f"d{i}{r}", "metadata": {}, "reference": r} for i, r in rows]
    at = len(references)
    previews[at:at] = [{"event": "AnchorPreview", "character": c, "number": k, "step": 1, "png": f"a{c}{k}"}
                       for c, k in anchors]
    done[at:at] = [{"event": "AnchorDone", "character": c, "number": k, "png": f"ad{c}{k}", "metadata": {}, "mask": None}
                   for c, k in anchors]
    events = [{"event": "Step", "step": 1, "total": 1}, *previews]
    events += [{"event": "Decoding", "done": k, "total": len(done)} for k in range(1, len(done) + 1)]
    return events + done + [{"event": "Finished", "metadata": metadata}]


def test_decoding_counts_only_what_every_shard_has_decoded():
    """The reference counts once every shard has decoded it, a panel once its shard has: no
    count runs ahead of the pictures."""
    merger = StreamMerger((0, 1), [(0,), (1,)])
    first, second = _one_step_stream((0,), {}), _one_step_stream((1,), {})
    for shard, stream in ((0, first), (1, second)):
        for event in stream[:3]:  # Step and both previews
            merger.feed(shard, event)
    assert merger.feed(0, first[3]) == []  # shard 0 decoded the reference, shard 1 nothing yet
    assert merger.feed(0, first[4]) == [{"event": "Decoding", "done": 1, "total": 3}]  # panel 1
    assert merger.feed(1, second[3]) == [{"event": "Decoding", "done": 2, "total": 3}]  # the reference
    assert merger.feed(1, second[4]) == [{"event": "Decoding", "done": 3, "total": 3}]


def test_merged_metadata_takes_the_slowest_timing_the_largest_micro_batch_and_the_first_device():
    metas = [{"micro_batch": None, "device": "cuda:0", "dtype": "float16", "timings": {"load_s": 2.0, "denoise_s": 5.0},
              "windows": {"1": [{"x": 0}, {"x": 512}]}},
             {"micro_batch": 3, "device": "cuda:1", "dtype": "float16",
              "timings": {"load_s": 4.0, "denoise_s": 1.0, "decode_s": 0.5}, "windows": {"2": [{"x": 0}]}}]
    merger = StreamMerger((0, 1), [(0,), (1,)])
    out = [e for shard in (0, 1) for event in _one_step_stream((shard,), metas[shard]) for e in merger.feed(shard, event)]
    assert out[-1] == {"event": "Finished", "metadata": {
        "micro_batch": 3, "device": "cuda:0", "dtype": "float16",
        "timings": {"load_s": 4.0, "denoise_s": 5.0, "decode_s": 0.5},
        "shards": [{"panels": [1], "device": "cuda:0", "micro_batch": None},
                   {"panels": [2], "device": "cuda:1", "micro_batch": 3}],
        "windows": {"1": [{"x": 0}, {"x": 512}], "2": [{"x": 0}]}}}  # each panorama's, from its shard
    unsaid = StreamMerger((0,), [(0,)])
    final = [e for event in _one_step_stream((0,), {}) for e in unsaid.feed(0, event)][-1]
    assert final["metadata"]["micro_batch"] == 0 and final["metadata"]["timings"] == {}
    assert "windows" not in final["metadata"]


def test_a_shard_run_again_after_it_finished_reports_its_new_replica():
    """A shard restarted after its Finished (its replica lost before the set ended) is waited
    for again: the set ends with the re-run's metadata, not the lost replica's."""
    merger = StreamMerger((0, 1), [(0,), (1,)])
    for event in _one_step_stream((0,), {"device": "cuda:0"}):
        merger.feed(0, event)
    notice = merger.feed(0, {"event": RESTART})
    assert notice == [{"event": "Notice", "message": "a server engine stopped; panels 1 are being made again on "
                                                     "another one (same pictures)"}]
    second = [e for event in _one_step_stream((1,), {"device": "cuda:1"}) for e in merger.feed(1, event)]
    assert not merger.ended and all(e["event"] != "Finished" for e in second)
    again = [e for event in _one_step_stream((0,), {"device": "cuda:2"}) for e in merger.feed(0, event)]
    assert merger.ended and again[-1]["metadata"]["device"] == "cuda:2"


def test_a_restarted_shard_has_decoded_nothing():
    merger = StreamMerger((0, 1), [(0,), (1,)])
    first, second = _one_step_stream((0,), {}), _one_step_stream((1,), {})
    for shard, stream in ((0, first), (1, second)):
        for event in stream[:3]:
            merger.feed(shard, event)
    assert merger.feed(0, first[3]) + merger.feed(0, first[4]) == [{"event": "Decoding", "done": 1, "total": 3}]
    merger.feed(1, {"event": RESTART})
    assert merger.feed(0, first[5]) == []  # the reference is not decoded by every shard yet


def test_several_references_are_each_their_own_row():
    """Two references (positions 0 and 2; 1 is weighted 0): each shard reports both, and the
    merged stream shows each once, in position order, before the panels."""
    merger = StreamMerger((0, 1), [(0,), (1,)], references=(0, 2))
    streams = [_one_step_stream((panel,), {}, references=(0, 2)) for panel in (0, 1)]
    out = [e for shard in (0, 1) for event in streams[shard] for e in merger.feed(shard, event)]
    previews = [(e["index"], e["reference"]) for e in out if e["event"] == "Preview"]
    assert previews == [(None, 0), (None, 2), (0, None), (1, None)]
    done = [(e["index"], e["reference"], e["png"]) for e in out if e["event"] == "PanelDone"]
    assert done == [(None, 0, "dNone0"), (None, 2, "dNone2"), (0, None, "d0None"), (1, None, "d1None")]
    assert [e["done"] for e in out if e["event"] == "Decoding"] == [1, 2, 3, 4]


@pytest.mark.parametrize("previews, steps", [("off", 3), ("vae", 5)])
def test_shards_without_a_preview_every_step_merge_into_the_local_run(request, previews, steps):
    """Previews off, or only every fifth step (the full VAE): the merger must not wait for
    previews that never come; a shard's next Step or its decoding says it is through a step."""
    # as a replica; the tiny model is built only when the runs are not kept (ENGINE_EVENTS)
    engine = Engine(loader=lambda *args, **kwargs: request.getfixturevalue("tiny_pipe"), preview_budget=float("inf"))
    shards, local, streams = _sharded_runs(engine, previews=previews, steps=steps)
    assert sum(e["event"] == "Preview" for e in local) == (0 if previews == "off" else 5)
    for feed in _interleavings(streams):
        assert _merge(shards, feed)[:-1] == local[:-1]
    # and as it goes: once both shards have reported step 2, step 1 is shown (not at the end)
    merger, out = StreamMerger((0, 1, 2, 3), shards), []
    for shard, stream in enumerate(streams):
        upto = next(i for i, e in enumerate(stream) if e["event"] == "Step" and e["step"] == 2)
        out += [e for event in stream[: upto + 1] for e in merger.feed(shard, event)]
    assert [e["step"] for e in out if e["event"] == "Step"] == [1]


def test_throttled_shards_merge_with_the_previews_they_sent(runs):
    """A throttled replica sends some rows' previews and not others (panels take turns): each
    step still goes out once every shard is through it, with the previews that came."""
    shards, local, streams = runs

    def throttled(stream, shard):
        # shard 0 leaves out panel 1 at step 1 and everything at step 2; shard 1 its reference at step 3
        gone = {(1, 1), (2, None), (2, 0), (2, 1)} if shard == 0 else {(3, None)}
        return [e for e in stream if e["event"] != "Preview" or (e["step"], e["index"]) not in gone]

    thinned = [throttled(stream, shard) for shard, stream in enumerate(streams)]
    for feed in _interleavings(thinned):
        merged = _merge(shards, feed)
        expected = [e for e in local if e["event"] != "Preview" or (e["step"], e["index"]) not in {(1, 1), (2, 0), (2, 1)}]
        assert merged[:-1] == expected[:-1]  # step 2's reference came from shard 1, step 3's from shard 0


def test_every_shards_anchors_are_shown_once_in_the_local_runs_order():
    """Characters' anchors (spec section 13) run on every shard, after the references: the
    merged stream shows each anchor's preview and picture once, between the reference and the
    panels, counts its decoding once, and a step goes out as soon as the last shard has sent
    its previews of it (reference, anchors and panels: five rows a shard)."""
    anchors = (("Mira", 0), ("Mira", 1), ("Bo", 0))
    merger = StreamMerger((0, 1, 2), [(0,), (1, 2)], anchors=anchors)
    first, second = _one_step_stream((0,), {}, anchors=anchors), _one_step_stream((1, 2), {}, anchors=anchors)
    out = [e for event in first for e in merger.feed(0, event)]
    assert out == []  # shard 1 has not reached step 1
    through = [e for event in second[:6] for e in merger.feed(1, event)]  # its Step and its previews but one
    assert through == []
    shown = merger.feed(1, second[6])
    previews = [e.get("index", e.get("character")) for e in shown if e["event"] in ("Preview", "AnchorPreview")]
    assert shown[0] == {"event": "Step", "step": 1, "total": 1}
    assert previews == [None, "Mira", "Mira", "Bo", 0, 1, 2]
    assert [e.get("number") for e in shown[1:5]] == [None, 0, 1, 0]
    assert shown[8:] == [{"event": "Decoding", "done": 1, "total": 7}]  # shard 0's panel, decoded
    rest = [e for event in second[7:] for e in merger.feed(1, event)]
    assert [e["done"] for e in rest if e["event"] == "Decoding"] == list(range(2, 8))
    assert all(e["total"] == 7 for e in rest if e["event"] == "Decoding")
    done = [(e["event"], e["png"]) for e in rest if e["event"] in ("PanelDone", "AnchorDone")]
    assert done == [("PanelDone", "dNone0"), ("AnchorDone", "adMira0"), ("AnchorDone", "adMira1"),
                    ("AnchorDone", "adBo0"), ("PanelDone", "d0None"), ("PanelDone", "d1None"), ("PanelDone", "d2None")]
    assert rest[-1]["event"] == "Finished" and merger.ended
