"""The window with pictures made by a server whose connection drops mid-set: one clear message,
and nothing in the session is lost. The server here is a real HTTP server on 127.0.0.1 that
sends the start of a set's NDJSON stream and then drops the connection, as a dying SSH tunnel
does. (A whole set made on a real server is in tests/server/test_server_ray.py.)"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.server.wire import event_to_wire, ndjson_line
from stylealigned_desktop.ui.config import DesktopConfig
from stylealigned_desktop.ui.where_dialog import SERVER, save_token
from stylealigned_desktop.ui.worker import JobState
from tests.ui.conftest import Answers
from tests.ui.uifakes import run_and_wait, storyboard

pytestmark = pytest.mark.slow


class DroppingServer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server)
        self.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = b"".join(ndjson_line(event_to_wire(e)) for e in (
            ev.Loading(1.0, "loading tiny"), ev.Step(1, 3), ev.Preview(None, 1, Image.new("RGB", (8, 8), "red"))))
        self.wfile.write(b"%x\r\n%s\r\n" % (len(lines), lines))
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)  # no final chunk: the connection is lost mid-set

    def log_message(self, *args):
        pass


@pytest.fixture
def dropping_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DroppingServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_lost_connection_is_one_clear_message_and_the_session_keeps_everything(qtbot, dropping_server):
    from stylealigned_desktop.ui.main_window import MainWindow

    save_token("secret-token")
    config = DesktopConfig(model="tiny", picture_maker=SERVER, server_url=dropping_server)
    window = MainWindow(config)  # the settings say: a server makes the pictures
    window.ask = Answers()
    qtbot.addWidget(window)
    window.show()
    try:
        session = storyboard(window, prompts=("a fox", "a crow"))
        panels = [p.prompt for p in session.panels]
        job = run_and_wait(qtbot, window, window.runs.generate, timeout=30000)
        assert job.state is JobState.failed
        assert DroppingServer.seen[-1] == "Bearer secret-token"
        message = window.banner_text.text()
        assert not window.banner.isHidden() and "lost the connection to the server" in message
        assert "\n" not in message and "Traceback" not in message
        assert session.history == ()
        assert [p.prompt for p in session.panels] == panels and session.style.text == "ink sketch."
        assert all(not tile.final for tile in window.grid.tiles.values())
    finally:
        window.close()
        window.worker.shutdown(5)
