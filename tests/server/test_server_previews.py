"""Server previews: each replica decodes its rows' previews, the wire carries them as JPEG,
and the client gets every panel's preview at the panel's own size, every step."""

import base64
import dataclasses
import io
import json

import pytest
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.server.sharding import StreamMerger, plan_shards
from stylealigned_desktop.server.wire import (
    event_to_wire,
    iter_events,
    ndjson_line,
    request_from_wire,
    request_to_wire,
)

STEPS = 3
SIZES = {None: (128, 64), 0: (128, 64), 1: (64, 128), 2: (192, 64), 3: (128, 64)}
"""Each row's picture size: the reference at the set's size, panels 1 and 2 their own."""


def _request(**kwargs):
    panels = tuple(Panel(f"thing {i}, ink wash", 20 + i, size=None if SIZES[i] == (128, 64) else SIZES[i])
                   for i in range(4))
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3), panels=panels,
                      sampling=Sampling(steps=STEPS, guidance=4.0, width=128, height=64, scheduler="dpmpp-2m"),
                      micro_batch=1, previews="tiny", **kwargs)


@pytest.fixture(scope="module")
def served(tiny_pipe):
    """The set as a two-replica server makes it: the request through the wire, each shard on an
    engine as a replica runs it, each event as JSON, the streams merged; and what the client reads."""
    replica = Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))  # as EngineReplica
    request = request_from_wire(json.loads(json.dumps(request_to_wire(_request(), {}))), str)
    shards = plan_shards(request, 2)
    assert len(shards) == 2
    streams = []
    for shard in shards:
        events = []
        replica.generate(dataclasses.replace(request, only=shard), events.append)
        streams.append([event_to_wire(e) for e in events if not isinstance(e, ev.Loading)])
    merger = StreamMerger(request.selected, shards)
    feed = [(s, e) for pair in zip(*streams) for s, e in enumerate(pair)]
    feed += [(s, e) for s, stream in enumerate(streams) for e in stream[min(map(len, streams)):]]
    merged = [out for shard, event in feed for out in merger.feed(shard, event)]
    assert merger.ended
    lines = b"".join(ndjson_line(e) for e in merged).decode().splitlines()
    return merged, list(iter_events(lines))


def test_previews_cross_the_wire_as_jpeg_not_png_nor_latents(served):
    merged, _events = served
    previews = [e for e in merged if e["event"] == "Preview"]
    assert previews and all("png" not in e and "latents" not in e for e in previews)
    for data in previews:
        with Image.open(io.BytesIO(base64.b64decode(data["jpeg"]))) as picture:
            assert picture.format == "JPEG" and picture.mode == "RGB"
    finished = [e for e in merged if e["event"] == "PanelDone"]
    assert all(Image.open(io.BytesIO(base64.b64decode(e["png"]))).format == "PNG" for e in finished)


def test_every_panel_has_a_preview_every_step_at_its_own_size(served):
    _merged, events = served
    previews = [e for e in events if isinstance(e, ev.Preview)]
    by_step = {}
    for preview in previews:
        by_step.setdefault(preview.step, []).append(preview)
        assert preview.image.size == SIZES[preview.index]  # full size: the tiny decoder's, not 1/8
    assert sorted(by_step) == list(range(1, STEPS + 1))
    for shown in by_step.values():
        assert [p.index for p in shown] == [None, 0, 1, 2, 3]  # the reference, then every panel in order
