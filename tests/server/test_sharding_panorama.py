"""A set with panoramas (spec section 14) sharded over replicas: each panorama's windows stay on
the replica that holds the panel, and the merged stream is the local run's, pixel for pixel."""

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.server.sharding import StreamMerger, plan_shards
from stylealigned_desktop.server.wire import event_to_wire


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
    engine = Engine(loader=lambda *args, **kwargs: tiny_pipe)
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
