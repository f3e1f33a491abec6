"""The server end to end on CPU: Ray started once for this module (2 CPUs, no dashboard),
two CPU replicas of the tiny model, the client talking HTTP to it as the desktop app and the
CLI do.

On CPU a picture's last bits depend on torch's thread count (the order of parallel sums): each
replica has one CPU, so the local runs compared against run with one thread too.
"""

import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from dataclasses import replace

import httpx2 as httpx
import numpy as np
import pytest
import ray
import torch
from PIL import Image, ImageDraw
from PySide6.QtWidgets import QDialog
from ray import serve

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.lora import LoraError
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Lora,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.server.client import ServerEngine, ServerError
from stylealigned_desktop.server.launch import ServerOptions, start
from stylealigned_desktop.server.wire import event_from_wire, event_to_wire
from stylealigned_desktop.ui.dialogs.where_dialog import SERVER, WhereDialog, access_token_path
from stylealigned_desktop.ui.threads import JobState
from tests.loras import tiny_lora_state, write_diffusers_lora, write_sd15_lora
from tests.ui.conftest import make_window, tiny_engine  # noqa: F401 (the window fixtures)
from tests.ui.uifakes import run_and_wait, storyboard

pytestmark = pytest.mark.server

UPLOAD_LIMIT_MB = 0.2
STORE_LIMIT_MB = 0.4
LORA_LIMIT_MB = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    try:
        started = start(ServerOptions(models=("tiny",), replicas=2, port=_free_port(),
                                      token_file=str(folder / "token"), upload_dir=str(folder / "uploads"),
                                      max_upload_mb=UPLOAD_LIMIT_MB, max_store_mb=STORE_LIMIT_MB,
                                      max_lora_mb=LORA_LIMIT_MB, replica_wait_s=120))
        yield started
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def client(server):
    engine = ServerEngine(server.url, server.token)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def local(tiny_pipe):
    """The embedded engine with the replicas' thread count."""
    engine = Engine(loader=lambda *args, **kwargs: tiny_pipe, preview_budget=float("inf"))  # as a replica

    def run(request, events=None):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return engine.generate(request, (events if events is not None else []).append)
        finally:
            torch.set_num_threads(threads)

    return run


def _request(n=4, steps=3, **kwargs):
    kwargs.setdefault("style", GeneratedReference("a lighthouse, ink wash", 3))
    kwargs.setdefault("sampling", Sampling(steps=steps, guidance=4.0, width=128, height=64, scheduler="euler"))
    return SetRequest(model="tiny", panels=tuple(Panel(f"thing {i}, ink wash", 20 + i) for i in range(n)), **kwargs)


def _same_pixels(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def _engines(client):
    """Each replica's state, once none is busy (a cancelled shard stops within one step)."""
    for _ in range(300):
        health = client.health()
        engines = health["engines"]
        if health["engines_fresh"] and len(engines) == 2 and not any(e["busy"] for e in engines):
            return engines
        time.sleep(0.5)
    raise AssertionError(f"the replicas did not settle: {health}")


def _totals(client, key):
    return sum(e[key] for e in _engines(client))


def _sequence(events):
    return [(type(e).__name__, getattr(e, "index", None), getattr(e, "step", None))
            for e in events if not isinstance(e, (ev.Loading, ev.Finished))]


def test_a_sharded_set_over_http_is_the_local_run(client, local):
    request = _request(4, micro_batch=2)
    before = {e["pid"]: e["sets"] for e in _engines(client)}
    events = []
    result = client.generate(request, events.append)
    after = {e["pid"]: e["sets"] for e in _engines(client)}
    assert all(after[pid] == before[pid] + 1 for pid in before)  # both replicas made a shard

    local_events = []
    expected = local(request, local_events)
    assert _same_pixels(result.reference, expected.reference)
    assert set(result.panels) == {0, 1, 2, 3}
    assert all(_same_pixels(result.panels[i], expected.panels[i]) for i in range(4))
    # The same events in the same order: previews in step order, the reference's first.
    assert _sequence(events) == _sequence(local_events)
    previews = [e for e in events if isinstance(e, ev.Preview)]
    local_previews = [e for e in local_events if isinstance(e, ev.Preview)]
    # previews travel as JPEG: the local previews through the same encoding, pixel for pixel
    assert all(_same_pixels(a.image, event_from_wire(event_to_wire(b)).image) for a, b in zip(previews, local_previews))
    done = [e for e in events if isinstance(e, ev.PanelDone)]
    assert [e.metadata for e in done] == [e.metadata for e in local_events if isinstance(e, ev.PanelDone)]
    assert [s["panels"] for s in result.metadata["shards"]] == [[1, 2], [3, 4]]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "mood.png"
    image = Image.new("RGB", (150, 90), (230, 210, 170))
    ImageDraw.Draw(image).ellipse((20, 10, 100, 80), fill=(30, 70, 150))
    image.save(path)
    return path


def test_a_reference_picture_is_inverted_once_for_a_sharded_set(client, local, picture):
    style = ReferencePicture(str(picture), "a blue ball", inversion_guidance=2.0)
    request = _request(2, steps=4, style=style, micro_batch=1, settings=StyleAlignedSettings.for_reference_image())
    inversions, received = _totals(client, "inversions"), _totals(client, "trajectories_received")
    events = []
    result = client.generate(request, events.append)
    assert _totals(client, "inversions") == inversions + 1
    assert _totals(client, "trajectories_received") == received + 2  # both shards got it from the store
    assert [e.step for e in events if isinstance(e, ev.Inverting)] == [1, 2, 3, 4]
    local_events = []
    expected = local(request, local_events)
    # the pictures' metadata names the reference picture where the artist has it, as locally
    assert [e.metadata for e in events if isinstance(e, ev.PanelDone)] == [
        e.metadata for e in local_events if isinstance(e, ev.PanelDone)]
    assert _same_pixels(result.reference, expected.reference)
    assert all(_same_pixels(result.panels[i], expected.panels[i]) for i in range(2))


def _raw(server, method, path, token="right", **kwargs):
    headers = {} if token is None else {"Authorization": f"Bearer {server.token if token == 'right' else token}"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        return http.request(method, path, headers=headers, **kwargs)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_no_token_or_a_wrong_one_is_401_and_nothing_runs(server, client, tmp_path):
    sets = _totals(client, "sets")
    body = _png(Image.new("RGB", (16, 8), (1, 2, 3)))
    sha = hashlib.sha256(body).hexdigest()
    wire = {"version": 1, "model": "tiny"}
    for token in (None, "not-the-token", server.token + "x"):
        for method, path, kwargs in (("POST", "/v1/sets", {"json": wire}), ("PUT", f"/v1/pictures/{sha}", {"content": body}),
                                     ("GET", "/v1/health", {}), ("GET", "/v1/models", {})):
            response = _raw(server, method, path, token=token, **kwargs)
            assert response.status_code == 401, (token, path)
            assert "\n" not in response.json()["error"]
    assert _raw(server, "HEAD", f"/v1/pictures/{sha}").status_code == 404  # the upload was not kept
    assert _totals(client, "sets") == sets
    with pytest.raises(ServerError, match="refused the token"):
        ServerEngine(server.url, "wrong").generate(_request(1))


def test_malformed_json_oversized_and_corrupt_uploads_are_400_with_one_line(server, client, tmp_path):
    sets = _totals(client, "sets")
    rng = np.random.default_rng(0)
    big = _png(Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)))
    assert len(big) > UPLOAD_LIMIT_MB * 1e6
    good = _png(Image.new("RGB", (40, 30), (200, 10, 10)))
    corrupt = good[: len(good) // 2]
    cases = [
        ("POST", "/v1/sets", {"content": b'{"version": 1, "model": '}, "not valid JSON"),
        ("PUT", f"/v1/pictures/{hashlib.sha256(big).hexdigest()}", {"content": big}, "larger than"),
        ("PUT", f"/v1/pictures/{hashlib.sha256(corrupt).hexdigest()}", {"content": corrupt}, "damaged"),
        ("PUT", f"/v1/pictures/{'0' * 64}", {"content": good}, "do not match"),
        ("POST", "/v1/sets", {"json": {**_wire(_request(1)), "model": "/home/me/sdxl"}}, "has no model"),
        ("POST", "/v1/sets", {"json": {**_wire(_request(1)), "cache_dir": "/tmp"}}, "cannot name folders"),
        ("POST", "/v1/sets", {"json": {**_wire(_request(1)), "depth_model": "/opt/dpt"}}, "cannot name files"),
        ("POST", "/v1/sets", {"json": _wire(_request(1, style=ReferencePicture("x.png")), "f" * 64)}, "was not uploaded"),
    ]
    for method, path, kwargs, words in cases:
        response = _raw(server, method, path, **kwargs)
        assert response.status_code == 400, (path, response.text)
        message = response.json()["error"]
        assert words in message and "\n" not in message, message
        assert "uploads" not in message  # no server path in the message
    assert _raw(server, "HEAD", f"/v1/pictures/{hashlib.sha256(corrupt).hexdigest()}").status_code == 404
    assert _totals(client, "sets") == sets


def test_the_uploaded_pictures_stay_within_the_store_limit_least_recently_used_first(server):
    rng = np.random.default_rng(1)
    pictures = [_png(Image.fromarray(rng.integers(0, 256, (64, 720, 3), dtype=np.uint8))) for _ in range(3)]
    assert all(0.3 * STORE_LIMIT_MB * 1e6 < len(p) < UPLOAD_LIMIT_MB * 1e6 for p in pictures)
    a, b, c = (hashlib.sha256(p).hexdigest() for p in pictures)
    for sha, data in ((a, pictures[0]), (b, pictures[1])):
        assert _raw(server, "PUT", f"/v1/pictures/{sha}", content=data).status_code == 201
    assert _raw(server, "HEAD", f"/v1/pictures/{a}").status_code == 200  # a client about to use a
    assert _raw(server, "PUT", f"/v1/pictures/{c}", content=pictures[2]).status_code == 201
    # Three do not fit: the least recently used one (b) is forgotten, the one just used (a) stays.
    assert [_raw(server, "HEAD", f"/v1/pictures/{sha}").status_code for sha in (a, b, c)] == [200, 404, 200]


def _wire(request, sha=None):
    from stylealigned_desktop.server.wire import picture_paths, request_to_wire

    return request_to_wire(request, {path: sha for path in picture_paths(request)})


def test_cancel_or_disconnect_stops_every_shard(client):
    """The client cancels by leaving the stream; the server sees it go and cancels both shards.
    Many steps (tiny ones are quick): a shard the cancel did not reach would run to its end."""
    steps = 200
    cancelled = _totals(client, "cancelled")
    cancel = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, ev.Step):
            cancel.set()

    assert client.generate(_request(2, steps=steps, micro_batch=1), on_event, cancel) is None
    assert isinstance(events[-1], ev.Cancelled)
    engines = _engines(client)
    stopped = [(e["cancelled"], e["last_steps"]) for e in engines]
    assert sum(e["cancelled"] for e in engines) == cancelled + 2, stopped
    assert all(e["last_steps"] < steps for e in engines), stopped


def test_generate_with_server_writes_the_files_of_a_local_generate(server, client, tmp_path, picture):
    """``stylealigned generate --server URL --token-file F`` against this server: the same files,
    PNGs byte for byte, as ``stylealigned generate`` of the same command line on this computer. The
    set blends a generated reference with two reference pictures (each written as its own
    reference-NN.png), has panels of their own sizes, runs euler at micro-batch 1 in two shards (the
    local run with the replicas' one thread); run.json also names the server and the shards."""
    from stylealigned_desktop.cli import main

    token = tmp_path / "token"
    token.write_text(server.token + "\n")
    second = tmp_path / "second.png"
    Image.new("RGB", (96, 128), (40, 120, 60)).save(second)
    command = ["generate", "--model", "tiny", "--reference-prompt", "a lighthouse, ink wash:1",
               "--reference-image", f"{picture}:0.6", "--reference-image", f"{second}:0.3",
               "--reference-caption", "a picture", "--style", "ink wash",
               "--prompt", "a fox", "--prompt", "a crow", "--prompt", "a boat", "--seed", "7", "--steps", "3",
               "--panel-sizes", "64x128,set,128x128",
               "--scheduler", "euler", "--guidance", "4.5", "--width", "128", "--height", "64",
               "--micro-batch", "1", "--quiet"]
    sets = _totals(client, "sets")
    assert main([*command, "--out", str(tmp_path / "server"), "--server", server.url,
                 "--token-file", str(token)]) == 0
    assert _totals(client, "sets") == sets + 2  # made there, in two shards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*command, "--out", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").glob("*.png")}
    remote = {p.name: p.read_bytes() for p in (tmp_path / "server").glob("*.png")}
    assert {"reference.png", "reference-02.png", "reference-03.png", "panel-01.png", "panel-02.png",
            "panel-03.png", "contact-sheet.png"} <= set(local)
    assert sorted(remote) == sorted(local)
    assert all(remote[name] == local[name] for name in local), [n for n in local if remote[n] != local[n]]
    local_run, remote_run = (json.loads((tmp_path / where / "run.json").read_text()) for where in ("local", "server"))
    assert remote_run["references"] == local_run["references"]
    assert [r.get("file") for r in remote_run["references"]] == ["reference.png", "reference-02.png",
                                                                 "reference-03.png"]
    assert "server" not in local_run
    assert remote_run["server"]["url"] == server.url
    assert sorted(i for shard in remote_run["server"]["shards"] for i in shard["panels"]) == [1, 2, 3]
    assert len(remote_run["server"]["shards"]) == 2


def test_generate_with_server_and_a_wrong_token_is_one_line_and_exit_2(server, tmp_path, capsys):
    from stylealigned_desktop.cli import main

    token = tmp_path / "token"
    token.write_text("not-the-token\n")
    code = main(["generate", "--model", "tiny", "--reference-prompt", "a lighthouse", "--prompt", "a fox",
                 "--steps", "2", "--width", "64", "--height", "64", "--out", str(tmp_path / "out"),
                 "--server", server.url, "--token-file", str(token)])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith(f"stylealigned: error: server {server.url}: the server refused the token"), error
    assert "\n" not in error
    assert not list((tmp_path / "out").glob("*.png"))


# -- LoRAs: uploaded once, by their content --------------------------------------------------------

@pytest.fixture(scope="module")
def lora_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return {"ink": write_diffusers_lora(folder / "ink.safetensors", tiny_lora_state(seed=3)),
            "sd15": write_sd15_lora(folder / "sd15-style.safetensors")}


@pytest.fixture
def calls(monkeypatch):
    """The HTTP calls the client makes (method, path), its own calls unchanged."""
    made = []
    original = ServerEngine._call

    def call(self, method, path, **kwargs):
        made.append((method, path))
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(ServerEngine, "_call", call)
    return made


def test_generate_with_server_and_a_lora_writes_the_pictures_of_a_local_generate(server, client, tmp_path,
                                                                                picture, lora_files, calls):
    """``generate --server --lora ink.safetensors:0.8`` with a reference picture, two shards: the
    same PNG files as a local ``generate``; the picture is inverted once (the replicas' copies of
    the LoRA key the inversion as the artist's file does); a second set sends the LoRA no more."""
    from stylealigned_desktop.cli import main

    token = tmp_path / "token"
    token.write_text(server.token + "\n")
    plain = ["generate", "--model", "tiny", "--reference-image", str(picture), "--reference-caption", "a blue ball",
             "--prompt", "a fox", "--prompt", "a crow", "--seed", "5", "--steps", "3", "--scheduler", "euler",
             "--guidance", "4.0", "--width", "128", "--height", "64", "--micro-batch", "1", "--quiet"]
    command = [*plain, "--lora", f"{lora_files['ink']}:0.8"]
    remote = [*command, "--server", server.url, "--token-file", str(token)]
    sha = hashlib.sha256(lora_files["ink"].read_bytes()).hexdigest()
    sets, inversions = _totals(client, "sets"), _totals(client, "inversions")
    assert main([*remote, "--out", str(tmp_path / "server")]) == 0
    assert _totals(client, "sets") == sets + 2 and _totals(client, "inversions") == inversions + 1
    assert ("PUT", f"/v1/loras/{sha}") in calls
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*command, "--out", str(tmp_path / "local")]) == 0
        assert main([*plain, "--out", str(tmp_path / "plain")]) == 0  # without the LoRA
    finally:
        torch.set_num_threads(threads)
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").glob("*.png")}
    served = {p.name: p.read_bytes() for p in (tmp_path / "server").glob("*.png")}
    assert {"reference.png", "panel-01.png", "panel-02.png"} <= set(local) and sorted(served) == sorted(local)
    assert all(served[name] == local[name] for name in local), [n for n in local if served[n] != local[n]]
    without = Image.open(tmp_path / "plain" / "panel-01.png")
    assert not _same_pixels(without, Image.open(tmp_path / "server" / "panel-01.png"))  # the LoRA took part
    recorded = read_parameters(tmp_path / "server" / "panel-02.png")["loras"]
    assert [(r["file"], r["path"], r["weight"]) for r in recorded] == [("ink.safetensors", str(lora_files["ink"]), 0.8)]

    calls.clear()
    assert main([*remote, "--out", str(tmp_path / "again")]) == 0
    assert ("HEAD", f"/v1/loras/{sha}") in calls and not [c for c in calls if c[0] == "PUT"]  # kept there
    assert all((tmp_path / "again" / name).read_bytes() == local[name] for name in local)


def test_a_lora_named_as_the_artist_knows_it_and_an_sd15_lora_refused_before_any_step(client, lora_files):
    """The pictures' metadata from the server names the LoRA by its file name, as a local run's
    does; a LoRA for SD 1.5 is refused on the server with the local message, before any step."""
    ink = replace(_request(2, steps=2, micro_batch=1), loras=(Lora(str(lora_files["ink"]), 0.8),))
    events = []
    client.generate(ink, events.append)
    done = [e.metadata for e in events if isinstance(e, ev.PanelDone)]
    local_events = []
    Engine().generate(ink, local_events.append)
    assert done == [e.metadata for e in local_events if isinstance(e, ev.PanelDone)]
    assert all(m["loras"] == [{"file": "ink.safetensors", "path": str(lora_files["ink"]), "weight": 0.8}]
               for m in done) and len(done) == 3
    assert "stylealigned-replica" not in json.dumps(done)  # no server copy named

    sd15 = replace(ink, loras=(Lora(str(lora_files["sd15"]), 1.0),))
    with pytest.raises(LoraError) as local_refusal:
        Engine().generate(sd15)
    events.clear()
    with pytest.raises(ServerError) as refusal:
        client.generate(sd15, events.append)
    # the client checks the file's header before sending it (the base it names is SDXL's, as the
    # server's models are; the local engine names tiny's own text width)
    for message in (str(refusal.value), str(local_refusal.value)):
        assert message.startswith("sd15-style.safetensors is a LoRA for SD 1.5; this model is"), message
    assert not [e for e in events if isinstance(e, (ev.Step, ev.Preview, ev.PanelDone))]
    assert isinstance(events[-1], ev.Failed) and events[-1].message == str(refusal.value)


def test_lora_uploads_that_are_not_safetensors_loras_are_400_with_one_line(server, lora_files):
    pickle_bytes = b"\x80\x04\x95" + b"\x00" * 64  # what a .ckpt starts with: never read
    empty = _safetensors({})
    big = _safetensors({"lora_unet_x.lora_down.weight": np.zeros((int(LORA_LIMIT_MB * 1e6) // 4 + 1,), np.float32)})
    ink = lora_files["ink"].read_bytes()
    for data, words in ((pickle_bytes, "cannot be read as .safetensors"), (empty, "holds no weights"),
                        (big, "larger than"), (ink[:-10], "cannot be read as .safetensors")):
        response = _raw(server, "PUT", f"/v1/loras/{hashlib.sha256(data).hexdigest()}", content=data)
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert words in message and "\n" not in message and "uploads" not in message and ".part" not in message
        assert _raw(server, "HEAD", f"/v1/loras/{hashlib.sha256(data).hexdigest()}").status_code == 404
    response = _raw(server, "PUT", f"/v1/loras/{'0' * 64}", content=ink)
    assert response.status_code == 400 and "do not match" in response.json()["error"]
    body = {**_wire(_request(1)), "loras": [{"lora": "e" * 64, "file": "ink.safetensors", "weight": 1.0}]}
    response = _raw(server, "POST", "/v1/sets", json=body)
    assert response.status_code == 400 and "ink.safetensors" in response.json()["error"]
    assert "was not uploaded" in response.json()["error"]


def _safetensors(tensors) -> bytes:
    from safetensors.numpy import save

    return save(tensors)


# -- the desktop app as the server's client (the window fixtures of tests/ui) --------------------



def test_the_desktop_app_makes_its_sets_on_the_server(qtbot, make_window, server, client, monkeypatch):  # noqa: F811
    window, _ = make_window()  # starts on this computer (the tiny engine)
    shown = []

    def answer(dialog):
        """The artist: a server, its URL and token, Test connection, OK."""
        dialog.server_button.click()
        dialog.url_edit.setText(server.url)
        dialog.token_edit.setText(server.token)
        dialog.test_button.click()
        qtbot.waitUntil(lambda: dialog.status.text().startswith("Connected"), timeout=60000)
        shown.append((dialog.status.text(), dialog.model_box.currentText()))
        dialog.accept()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(WhereDialog, "exec", answer)
    window.where_action.trigger()
    assert shown == [("Connected. Models: tiny. GPUs: 2 CPU replica(s), no GPU. Replicas: 2.", "tiny")]
    assert window.config.picture_maker == SERVER and window.config.server_url == server.url
    assert (access_token_path().stat().st_mode & 0o777) == 0o600

    session = storyboard(window, prompts=("a fox", "a crow"), steps=3, width=128, height=64, micro_batch=1)
    previews = []
    original = window.grid.show_preview

    def record(index, image, step, total):
        previews.append((index, step))
        original(index, image, step, total)

    window.grid.show_preview = record
    sets = _totals(client, "sets")
    job = run_and_wait(qtbot, window, window.runs.generate, timeout=120000)
    assert job.state is JobState.finished, job.error
    assert _totals(client, "sets") == sets + 2  # made on the server, in two shards
    assert {index for index, _ in previews} == {None, 0, 1}
    assert len(session.history) == 1 and window.history.list.count() == 1
    for index in (None, 0, 1):
        tile = window.grid.tiles[index]
        assert tile.final and tile.path.is_file() and tile.image().size().width() == 128

    cancelled = _totals(client, "cancelled")
    session.update_settings(steps=60)
    window.runs.generate()
    qtbot.waitUntil(lambda: "Step" in window.run_bar.progress.format(), timeout=120000)
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        window.run_bar.cancel_button.click()
    assert ended.args[0].state is JobState.cancelled
    assert len(session.history) == 1  # nothing filed for the cancelled run
    assert _totals(client, "cancelled") == cancelled + 2


def test_server_memory_after_20_sets_is_within_5_percent_of_after_5(client):
    request = _request(2, micro_batch=1, sampling=Sampling(steps=2, guidance=3.0, width=64, height=64))
    memory = {}
    for done in range(1, 21):
        client.generate(request)
        if done in (5, 20):
            _engines(client)
            memory[done] = client.health()["memory_bytes"]
    assert abs(memory[20] - memory[5]) <= 0.05 * memory[5], memory


def _kill_one_replica():
    from ray.util import list_named_actors

    names = [a for a in list_named_actors(all_namespaces=True) if "EngineReplica" in a["name"]]
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)


def test_a_replica_killed_mid_set_is_retried_with_the_same_pixels(client, local):
    request = _request(4, steps=5, micro_batch=2)
    events = []
    killed = []

    def on_event(event):
        events.append(event)
        if isinstance(event, ev.Step) and not killed:
            killed.append(True)
            _kill_one_replica()

    result = client.generate(request, on_event)
    notices = [e.message for e in events if isinstance(e, ev.Notice) and not e.message.startswith(("memory mode", "previews:"))]
    assert len(notices) == 1 and "again on another" in notices[0]
    expected = local(request)
    assert _same_pixels(result.reference, expected.reference)
    assert all(_same_pixels(result.panels[i], expected.panels[i]) for i in range(4))
    with contextlib.suppress(AssertionError):
        _engines(client)  # give Serve the time to bring the replaced replica up for later tests
