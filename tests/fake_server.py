"""A plain HTTP server on 127.0.0.1 (no Ray) that starts a set's NDJSON stream the way the real
ingress does; each test's handler decides what happens after the first events (a server that
goes quiet, a connection that drops: :class:`DroppingHandler`)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterable, Iterator

from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.server.wire import event_to_wire, ndjson_line


class StreamingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def start_set(self, events: Iterable[ev.Event]) -> None:
        """Read the request, answer 200 with a chunked NDJSON stream and send ``events`` as its
        first chunk (no final chunk: the handler goes on)."""
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = b"".join(ndjson_line(event_to_wire(e)) for e in events)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(lines), lines))
        self.wfile.flush()

    def log_message(self, *args):
        pass


class DroppingHandler(StreamingHandler):
    """Starts a set's stream (loading, step 1 of 3, the reference's preview), then drops the
    connection without the final chunk, as a dying SSH tunnel does. ``seen``: each set's
    Authorization header."""

    seen: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server)
        self.seen.append(self.headers.get("Authorization", ""))
        self.start_set((ev.Loading(1.0, "loading tiny"), ev.Step(1, 3),
                        ev.Preview(None, 1, Image.new("RGB", (8, 8), "red"))))
        self.connection.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def serving(handler: type[StreamingHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port in a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
