"""A set with panoramas (spec section 14) sharded over replicas: each panorama's windows stay on
the replica that holds the panel, and the merged stream is the local run's, pixel for pixel."""

import json
from dataclasses import replace

import pytest

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.server.sharding import StreamMerger, plan_shards
from stylealigned_desktop.server.wire import (
    WireError,
    event_to_wire,
    request_from_wire,
    request_to_wire,
)


def _request(**kwargs):
    panels = (Panel("the bay, ink wash", 20, size=(384, 128)), Panel("the fleet, ink wash", 21, size=(384, 128)),
              Panel("a boat, ink wash", 22), Panel("a gull, ink wash", 23))
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3), panels=panels,
                      sampling=Sampling(steps=3, guidance=4.0, width=128, height=128, scheduler="euler",
                                        window_stride=6), micro_batch=2, **kwargs)


def _wire_run(engine, request):
    events = []
    engine.generate(request, lambda e: events.append(event_to_wire(e)))
    return [e for e in events if e["event"] != "Loading"]


def test_a_sharded_set_of_panoramas_is_the_local_run_pixel_for_pixel(tiny_pipe):
    engine = Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))  # as a replica
    full = _request()
    shards = plan_shards(full, 2)
    assert shards == [(0, 1), (2, 3)]
    local = _wire_run(engine, full)
    streams = [_wire_run(engine, _request(only=shard)) for shard in shards]
    merger = StreamMerger((0, 1, 2, 3), shards)
    merged = [e for stream in reversed(streams) for event in stream for e in merger.feed(streams.index(stream), event)]
    assert merger.ended
    # previews (the panoramas' averaged x0) and pictures, PNG for PNG, and every record
    assert merged[:-1] == local[:-1]
    windows = merged[-1]["metadata"]["windows"]
    assert windows == local[-1]["metadata"]["windows"] and sorted(windows) == ["1", "2"]
    assert windows["1"] == {"windows": 7, "window_width": 128, "window_height": 128, "window_stride": 6}


def test_a_panoramas_stride_and_threshold_travel_and_a_bad_stride_is_a_one_line_error():
    request = _request()
    request = replace(request, sampling=replace(request.sampling, panorama_above=1.5))
    data = json.loads(json.dumps(request_to_wire(request, {})))
    assert (data["sampling"]["window_stride"], data["sampling"]["panorama_above"]) == (6, 1.5)
    assert request_from_wire(data, lambda sha: sha) == request
    data["sampling"]["window_stride"] = 0
    with pytest.raises(WireError, match="^bad request: window stride must be a whole number from 1"):
        request_from_wire(data, lambda sha: sha)
