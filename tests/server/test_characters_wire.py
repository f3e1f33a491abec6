"""Characters (spec section 13) over the wire: the request, the anchor events and masks, and a
sharded set's merged stream, against real tiny engine runs."""

import dataclasses
import json

import numpy as np
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.server.sharding import StreamMerger, plan_shards
from stylealigned_desktop.server.wire import (
    event_from_wire,
    event_to_wire,
    file_sha256,
    iter_events,
    picture_paths,
    request_from_wire,
    request_to_wire,
)

MIRA = Character("Mira", "a red-haired girl in a yellow raincoat", ("girl",), anchor_seeds=(5, 6, 7),
                 anchor_text=", ink wash")


def _request(**kwargs):
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3),
                      panels=tuple(Panel(f"[Mira] thing {i}, ink wash" if i % 2 else f"thing {i}", 20 + i)
                                   for i in range(4)),
                      sampling=Sampling(steps=2, guidance=4.0, width=192, height=128, scheduler="euler"),
                      characters=(MIRA,), micro_batch=2, **kwargs)


def test_a_request_with_characters_and_an_anchor_picture_travels_by_upload(tmp_path):
    design = tmp_path / "mira.png"
    design.write_bytes(b"picture bytes")
    mira = Character("Mira", MIRA.description, anchor_seeds=(5, 6), anchor_pictures=(None, str(design)))
    request = dataclasses.replace(_request(), characters=(mira,))
    assert picture_paths(request) == [str(design)]
    sha = file_sha256(design)
    data = json.loads(json.dumps(request_to_wire(request, {str(design): sha})))
    assert data["characters"][0]["anchor_pictures"] == [None, sha]
    back = request_from_wire(data, lambda name: f"/server/{name}.png")
    assert back.characters == (Character("Mira", MIRA.description, anchor_seeds=(5, 6),
                                         anchor_pictures=(None, f"/server/{sha}.png")),)


def test_anchor_events_and_masks_round_trip():
    mask = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.uint8)
    picture = Image.new("RGB", (6, 4), (10, 20, 30))
    done = event_from_wire(json.loads(json.dumps(event_to_wire(ev.AnchorDone("Mira", 1, picture, {"a": 1}, mask)))))
    assert (done.character, done.number, done.metadata) == ("Mira", 1, {"a": 1})
    assert np.array_equal(done.mask, mask) and done.image.tobytes() == picture.tobytes()
    panel = event_from_wire(json.loads(json.dumps(event_to_wire(ev.PanelDone(2, picture, {}, masks={"Mira": mask})))))
    assert np.array_equal(panel.masks["Mira"], mask)
    lines = [json.dumps(event_to_wire(e)) for e in (ev.AnchorDone("Mira", 0, picture), ev.PanelDone(0, picture),
                                                     ev.Finished(ev.RunResult(None, {}, {})))]
    finished = list(iter_events(lines))[-1]
    assert set(finished.run.anchors) == {("anchor", "Mira", 0)} and set(finished.run.panels) == {0}


def test_a_sharded_set_with_characters_merges_into_the_local_stream(tiny_pipe):
    # every preview (as a replica): a throttled run's previews depend on the machine's speed
    engine = Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))

    def wire_run(request):
        events = []
        engine.generate(request, lambda e: events.append(json.loads(json.dumps(event_to_wire(e)))))
        return [e for e in events if e["event"] != "Loading"]

    local = wire_run(_request())
    shards = plan_shards(_request(), 2)
    streams = [wire_run(_request(only=shard)) for shard in shards]
    merger = StreamMerger((0, 1, 2, 3), shards, (0,), [("Mira", k) for k in range(2)])
    merged = [out for shard, stream in enumerate(streams) for event in stream for out in merger.feed(shard, event)]
    assert merger.ended
    assert merged[:-1] == local[:-1]  # every event, anchors' and masks included, pixel for pixel
    assert sum(e["event"] == "AnchorDone" for e in merged) == 2


def test_the_client_names_an_anchor_picture_where_the_artist_has_it_and_keeps_the_masks():
    from stylealigned_desktop.server.client import _in_artists_terms, _masks_of

    mira = Character("Mira", MIRA.description, anchor_seeds=(5, 6), anchor_pictures=(None, "/home/me/mira.png"))
    request = dataclasses.replace(_request(), characters=(mira,))
    mask = np.ones((2, 3), np.uint8)
    event = ev.AnchorDone("Mira", 1, Image.new("RGB", (4, 4)), {"picture": "/server/abc.png"}, mask)
    local = _in_artists_terms(event, request)
    assert local.metadata["picture"] == "/home/me/mira.png" and local.metadata["characters"][0]["name"] == "Mira"
    assert _masks_of(local) == {("anchor", "Mira", 1): {"Mira": mask}}
    panel = ev.PanelDone(3, Image.new("RGB", (4, 4)), {}, masks={"Mira": mask})
    assert _masks_of(panel) == {3: {"Mira": mask}} and _masks_of(ev.PanelDone(1, panel.image)) == {}
