"""The wire forms of requests and events: what travels between the client and the server."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.server.wire import (
    WireError,
    event_from_wire,
    event_to_wire,
    file_sha256,
    iter_events,
    ndjson_line,
    picture_paths,
    request_from_wire,
    request_to_wire,
)


def _picture_request(tmp_path):
    mood, edges = tmp_path / "mood.png", tmp_path / "edges.png"
    Image.new("RGB", (40, 24), (200, 30, 30)).save(mood)
    Image.new("L", (40, 24), 90).save(edges)
    control = PanelControl(str(edges), mode="map", scale=0.6, guidance_end=0.8, map_kind="canny")
    return SetRequest(
        model="tiny", style=ReferencePicture(str(mood), "a red square", 3.0, 2),
        panels=(Panel("a cat, flat", 5), Panel("a dog, flat", 9, control), Panel("a cow", 2, control)),
        sampling=Sampling(steps=7, guidance=4.5, width=128, height=64, scheduler="dpmpp-2m", negative_prompt="blur"),
        settings=StyleAlignedSettings.for_reference_image(adain_values=True), micro_batch=2,
        device="cpu", dtype="float32", only=(2, 0), cache_dir=str(tmp_path / "cache"), controlnet_canny="tiny",
    )


def test_a_request_travels_with_picture_names_and_comes_back_equal_but_for_local_paths(tmp_path):
    request = _picture_request(tmp_path)
    assert picture_paths(request) == [request.style.path, request.panels[1].control.image]
    ids = {path: file_sha256(path) for path in picture_paths(request)}
    data = json.loads(json.dumps(request_to_wire(request, ids)))
    assert "cache_dir" not in data and data["version"] == 1
    assert str(tmp_path) not in json.dumps(data)  # no path of the client's travels

    server_copies = {sha: f"/srv/{sha}" for sha in ids.values()}
    back = request_from_wire(data, server_copies.__getitem__)
    assert back.style.path == server_copies[ids[request.style.path]]
    assert back.panels[2].control.image == server_copies[ids[request.panels[1].control.image]]
    expected = request.to_dict()
    got = back.to_dict()
    for d in (expected, got):
        d.pop("cache_dir")
        d["style"].pop("path")
        for panel in d["panels"]:
            if panel["control"]:
                panel["control"].pop("image")
    assert got == expected


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(version=2), "unsupported request version"),
    (lambda d: d.update(cache_dir="/home/someone"), "cannot name folders on the server"),
    (lambda d: d["style"].update(picture="../../etc/passwd"), "SHA-256"),
    (lambda d: d["sampling"].update(width=100), "multiple of 8"),
    (lambda d: d["settings"].update(warp=1), "unknown StyleAligned setting"),
    (lambda d: d["panels"][0].update(colour="red"), "bad request"),
    (lambda d: d.update(panels="a cat"), "'panels' must be a JSON list"),
    (lambda d: d["style"].update(kind="video"), "style kind"),
])
def test_bad_requests_are_one_line_errors(tmp_path, change, words):
    request = _picture_request(tmp_path)
    data = request_to_wire(request, {p: file_sha256(p) for p in picture_paths(request)})
    change(data)
    with pytest.raises(WireError) as error:
        request_from_wire(data, lambda sha: "/srv/" + sha)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_events_travel_as_json_lines_pictures_with_exact_pixels_previews_as_jpeg():
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    smooth = np.add.outer(np.arange(48), np.arange(80))[..., None] * np.array([1, 2, 0]) // 2
    preview = Image.fromarray(smooth.astype(np.uint8))  # a picture's preview: smooth, not noise
    meta = {"prompt": "a cat", "seed": 5, "role": "panel", "index": 2}
    sent = [ev.Loading(0.5, "loading tiny"), ev.Inverting(2, 7), ev.Step(1, 7), ev.Preview(None, 1, preview),
            ev.Preview(1, 1, preview), ev.Notice("out of memory: continuing with 1 panel(s) at a time"),
            ev.PanelDone(None, image, {"role": "reference"}), ev.PanelDone(1, image, meta),
            ev.Finished(ev.RunResult(image, {1: image}, {"device": "cpu"}))]
    wire = [event_to_wire(e) for e in sent]
    for data in wire[3:5]:  # a preview is a JPEG, not a PNG and not latents
        assert set(data) == {"event", "index", "step", "jpeg", "reference"}
        with Image.open(io.BytesIO(base64.b64decode(data["jpeg"]))) as picture:
            assert picture.format == "JPEG" and picture.size == (80, 48)
    lines = b"".join(ndjson_line(data) for data in wire).decode().splitlines()
    got = list(iter_events(lines))
    assert [type(e) for e in got] == [type(e) for e in sent]
    for a, b in zip(sent, got):
        if isinstance(a, ev.Preview):
            assert b.image.size == a.image.size and b.image.mode == "RGB"
            assert np.abs(np.asarray(a.image, int) - np.asarray(b.image, int)).mean() < 2  # JPEG's loss
            assert (a.index, a.step) == (b.index, b.step)
        elif isinstance(a, ev.PanelDone):
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image))  # lossless
            assert (a.index, a.metadata) == (b.index, b.metadata)
        elif not isinstance(a, ev.Finished):
            assert a == b
    run = got[-1].run  # rebuilt from the PanelDone events before it
    assert np.array_equal(np.asarray(run.reference), np.asarray(image)) and set(run.panels) == {1}
    assert run.metadata == {"device": "cpu"}
    assert event_from_wire({"event": "Cancelled"}) == ev.Cancelled()
    with pytest.raises(WireError):
        event_from_wire({"event": "Explode"})


def test_several_references_and_panel_sizes_travel(tmp_path):
    mood = tmp_path / "mood.png"
    Image.new("RGB", (40, 24), (20, 30, 200)).save(mood)
    request = SetRequest(
        model="tiny", style=(GeneratedReference("a castle, ink", 4, weight=2), ReferencePicture(str(mood), "blue", weight=1),
                             GeneratedReference("unused", 5, weight=0)),
        panels=(Panel("a cat, ink", 5, size=(192, 64)), Panel("a dog, ink", 9)),
        sampling=Sampling(steps=3, width=128, height=128),
    )
    assert picture_paths(request) == [str(mood)]
    data = json.loads(json.dumps(request_to_wire(request, {str(mood): file_sha256(mood)})))
    assert [r["kind"] for r in data["style"]] == ["generated", "picture", "generated"] and "path" not in data["style"][1]
    back = request_from_wire(data, lambda sha: "/srv/" + sha)
    assert back.references[1].path == "/srv/" + file_sha256(mood) and back.weights == request.weights
    assert back.references[0] == request.references[0] and back.panels == request.panels


def test_every_reference_picture_comes_back_in_the_run():
    first, second, panel = (Image.new("RGB", (8, 8), c) for c in ("red", "green", "blue"))
    sent = [ev.PanelDone(None, first, {"role": "reference"}), ev.PanelDone(None, second, {"role": "reference"}, 2),
            ev.Preview(None, 1, second, 2), ev.PanelDone(0, panel, {"role": "panel"}),
            ev.Finished(ev.RunResult(first, {0: panel}, {}, references={0: first, 2: second}))]
    got = list(iter_events(b"".join(ndjson_line(event_to_wire(e)) for e in sent).decode().splitlines()))
    assert got[1].reference == 2 and got[2].reference == 2
    run = got[-1].run
    assert sorted(run.references) == [0, 2] and np.asarray(run.references[2])[0, 0].tolist() == [0, 128, 0]
    assert np.asarray(run.reference)[0, 0].tolist() == [255, 0, 0] and set(run.panels) == {0}
