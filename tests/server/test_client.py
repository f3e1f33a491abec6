"""The server's client against a plain HTTP server on 127.0.0.1 (no Ray): what the server sees of
a client that cancels. (The whole client against the real server: test_server_ray.py.)"""

from __future__ import annotations

import socket
import threading

import httpx2 as httpx
import pytest
from PIL import Image

from stylealigned_desktop.cli import main
from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.server.client import ServerEngine, ServerError
from tests.fake_server import DroppingHandler, StreamingHandler, serving

GIVE_UP_S = 60.0
"""How long the server waits for the client to leave before it calls the test failed."""


PRESS_CANCEL_AFTER_S = 0.5


class QuietServer(StreamingHandler):
    """Sends the first step of a set, then says nothing until the client goes away (as a server
    busy with a slow step does) and records whether it saw the client leave."""

    left: list[bool] = []
    ended = threading.Event()

    def do_POST(self):  # noqa: N802 (http.server)
        self.start_set((ev.Step(1, 50), ev.Preview(None, 1, Image.new("RGB", (8, 4), "red"))))
        # A server notices a client that left by the end of its connection, as uvicorn does.
        self.connection.settimeout(GIVE_UP_S)
        try:
            self.left.append(self.connection.recv(1) == b"")
        except TimeoutError:
            self.left.append(False)
        finally:
            self.ended.set()
        self.close_connection = True

    def do_GET(self):  # noqa: N802 (http.server)
        body = b'{"status": "ok", "engines": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def quiet_server():
    QuietServer.left.clear()
    QuietServer.ended.clear()
    with serving(QuietServer) as url:
        yield url


def test_cancelling_a_set_ends_its_connection_at_once_for_the_server(quiet_server):
    """A cancel must reach the server as the end of the connection (the server cancels the set
    when its client goes away). The artist presses Cancel a moment after a step arrived, while the
    server works on the next one: the client's reader thread is waiting for the next line then,
    and the client goes on making other requests."""
    client = ServerEngine(quiet_server, "token")
    cancel = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, ev.Step):
            threading.Timer(PRESS_CANCEL_AFTER_S, cancel.set).start()

    request = SetRequest(model="tiny", style=GeneratedReference("a lighthouse", 1),
                         panels=(Panel("a fox", 2),), sampling=Sampling(steps=50, width=128, height=64))
    try:
        assert client.generate(request, on_event, cancel) is None
        assert [type(e) for e in events] == [ev.Step, ev.Preview, ev.Cancelled]
        assert client.health()["status"] == "ok"  # a new connection, as the app's next request
        assert QuietServer.ended.wait(2 * GIVE_UP_S)
        assert QuietServer.left == [True]
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


GENERATE = ["generate", "--model", "tiny", "--reference-prompt", "a lighthouse", "--prompt", "a fox",
            "--steps", "2", "--width", "128", "--height", "64", "--quiet"]


def _generate_on(url, tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("a-token\n")
    code = main([*GENERATE, "--out", str(tmp_path / "out"), "--server", url, "--token-file", str(token)])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in error and not list((tmp_path / "out").glob("*.png"))
    return error


def test_generate_with_a_server_that_is_not_there_says_it_could_not_reach_it(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    error = _generate_on(url, tmp_path, capsys)
    assert error.startswith(f"stylealigned: error: could not reach the server at {url} ("), error
    assert error.count(url) == 1  # named once
    assert "refused" in error.lower() and "lost the connection" not in error and "not finished" not in error


def test_generate_with_a_server_that_drops_mid_set_says_it_lost_the_connection(tmp_path, capsys):
    DroppingHandler.seen.clear()
    with serving(DroppingHandler) as url:
        error = _generate_on(url, tmp_path, capsys)
    assert DroppingHandler.seen == ["Bearer a-token"]  # the set had begun there
    assert error.startswith(f"stylealigned: error: lost the connection to the server at {url}: "
                            "this set was not finished"), error


def test_a_server_gone_between_the_uploads_and_the_set_is_a_lost_connection(tmp_path):
    """The server answered (the picture is there) and then could not be reached for the set: a
    connection lost mid-run, not a server never reached."""
    picture = tmp_path / "mood.png"
    Image.new("RGB", (24, 16), "blue").save(picture)
    calls = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path.split("/")[2]))
        if request.method == "HEAD" and len(calls) == 1:
            return httpx.Response(200)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)  # gone from now on

    client = ServerEngine("http://studio:8765", "token", transport=httpx.MockTransport(server))
    request = SetRequest(model="tiny", style=ReferencePicture(str(picture)), panels=(Panel("a fox", 2),),
                         sampling=Sampling(steps=2, width=128, height=64))
    with pytest.raises(ServerError, match="^lost the connection to the server at http://studio:8765: this set"):
        client.generate(request)
    assert calls == [("HEAD", "pictures"), ("POST", "sets")]
    with pytest.raises(ServerError, match=r"^could not reach the server at http://studio:8765 \("):
        client.generate(request)  # a new set: this time nothing answered
    assert calls[2:] == [("HEAD", "pictures")]


def test_generate_with_a_missing_token_file_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = main([*GENERATE, "--out", str(tmp_path / "out"), "--server", "http://127.0.0.1:9",
                 "--token-file", str(missing)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"stylealigned: error: --token-file: {missing}: no such token file"
