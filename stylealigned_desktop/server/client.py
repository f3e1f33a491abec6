"""The client of a StyleAligned server: ``generate(request, on_event, cancel)`` over HTTP.

:class:`ServerEngine` (a ``PictureMaker``, see ``engine/maker.py``) is what the desktop worker and
``stylealigned generate --server`` call instead of the embedded ``Engine``: it uploads the
request's pictures and LoRA files (content-addressed: each only once, and not again while the
server keeps it), posts the request and reports the
server's NDJSON events as engine events, so previews, cancel and finished pictures behave as
with a local run. Needs neither Ray nor torch.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2 as httpx

from ..engine import events as ev
from ..engine.request import SetRequest
from .wire import HEARTBEAT_S, WireError, file_sha256, iter_events, picture_paths, request_to_wire

EventSink = Callable[[ev.Event], None]

CONNECT_TIMEOUT_S = 10.0
_END = object()


class ServerError(RuntimeError):
    """The server refused a request, or the connection to it failed; the message is one line."""

    expected = True  # engine.errors.is_expected_error: one line in the log, no traceback


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url


class ServerEngine:
    """A server that makes the pictures; see the module docstring."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_S):
        self.url = normalise_url(url)
        # The server sends a heartbeat line while it is quiet, so a silent minute is a lost connection.
        self._client = httpx.Client(
            base_url=self.url, transport=transport,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(connect_timeout, read=4 * HEARTBEAT_S),
        )
        self._reached = False  # whether the server answered since the set began (or ever, outside a set)

    def close(self) -> None:
        self._client.close()

    # -- what the server offers -------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: replicas, their devices and memory, what is running."""
        return self._json("GET", "/v1/health")

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the models the server offers (the first is its default) and GPUs."""
        return self._json("GET", "/v1/models")

    def _json(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        response = self._call(method, path, **kwargs)
        _raise_for_status(response)
        return response.json()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerError(self._connection_message(error)) from None
        self._reached = True
        return response

    def _connection_message(self, error: Exception) -> str:
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)) and not self._reached:
            # Nothing reached the server: no set was started there.
            reason = str(error) or type(error).__name__
            return (f"could not reach the server at {self.url} ({reason}); is it running, and is the "
                    "address right?")
        return (f"lost the connection to the server at {self.url}: this set was not finished, nothing "
                f"else changed; try again when the server is back ({type(error).__name__}: {error})")

    # -- uploads -------------------------------------------------------------------------------
    def upload(self, request: SetRequest) -> dict[str, str]:
        """Upload the request's pictures and LoRA files the server does not have yet; returns
        the SHA-256 (upload name) of each by its path."""
        from ..engine.infotext import file_hash
        from ..engine.lora import LoraError, check_lora_file

        ids = {}
        for path in picture_paths(request):
            try:
                sha = file_sha256(Path(path).expanduser())
            except OSError as error:
                raise ServerError(f"{path}: cannot read the picture ({error.strerror or error})") from None
            self._upload("pictures", sha, Path(path).expanduser(), path)
            ids[path] = sha
        for lora in request.loras:
            try:
                path = check_lora_file(lora)  # what a local run refuses is not sent
            except LoraError as error:
                raise ServerError(str(error)) from None
            sha = file_hash(path)  # remembered per file version: a large LoRA is read once
            if sha is None:
                raise ServerError(f"{lora.name}: cannot read the LoRA")
            self._upload("loras", sha, path, lora.name)
            ids[lora.path] = sha
        return ids

    def _upload(self, kind: str, sha: str, path: Path, name: str) -> None:
        """``PUT /v1/{kind}/{sha}`` of a file, unless ``HEAD`` says the server has it."""
        if self._call("HEAD", f"/v1/{kind}/{sha}").status_code == 200:
            return
        with open(path, "rb") as handle:  # sent in pieces: a LoRA can be hundreds of MB
            size = os.fstat(handle.fileno()).st_size
            response = self._call("PUT", f"/v1/{kind}/{sha}", content=iter(lambda: handle.read(1 << 20), b""),
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
        _raise_for_status(response, name)

    # -- generation ------------------------------------------------------------------------------
    def generate(self, request: SetRequest, on_event: EventSink | None = None,
                 cancel: threading.Event | None = None) -> ev.RunResult | None:
        """Generate on the server; like ``Engine.generate``: None when cancelled, errors
        reported as ``Failed`` and raised again (as :class:`ServerError`)."""
        sink = on_event or (lambda event: None)
        cancel = cancel or threading.Event()
        self._reached = False
        try:
            body = request_to_wire(request, self.upload(request))
            result = self._stream(body, request, sink, cancel)
        except ServerError as error:
            sink(ev.Failed(str(error)))
            raise
        if result is None:
            sink(ev.Cancelled())
        return result

    def _stream(self, body: dict, request: SetRequest, sink: EventSink, cancel: threading.Event):
        lines: queue.Queue = queue.Queue()
        try:
            response = self._client.send(self._client.build_request("POST", "/v1/sets", json=body), stream=True)
        except httpx.HTTPError as error:
            raise ServerError(self._connection_message(error)) from None
        self._reached = True
        reader = None
        try:
            if response.status_code != 200:
                response.read()
                _raise_for_status(response)
            reader = threading.Thread(target=_read_lines, args=(response, lines), daemon=True,
                                      name="stylealigned-server-stream")
            reader.start()
            masks: dict = {}  # the subject masks the pictures came with (spec section 13)
            for event in iter_events(_until_cancelled(lines, cancel, self._connection_message)):
                if isinstance(event, ev.Finished):
                    metadata = dict(event.run.metadata, request=request.to_dict(), server=self.url)
                    return ev.RunResult(event.run.reference, event.run.panels, metadata,
                                        references=event.run.references, anchors=event.run.anchors, masks=masks)
                if isinstance(event, ev.Cancelled):
                    return None
                if isinstance(event, ev.Failed):
                    raise ServerError(event.message)
                if isinstance(event, (ev.PanelDone, ev.AnchorDone)):
                    event = _in_artists_terms(event, request)
                    masks.update(_masks_of(event))
                sink(event)
            if cancel.is_set():
                return None
            raise ServerError(self._connection_message(ConnectionError("the stream ended early")))
        except WireError as error:
            raise ServerError(str(error)) from None
        finally:
            _stop_reading(response, reader)  # leaving the stream early tells the server to cancel the set


def _masks_of(event: ev.PanelDone | ev.AnchorDone) -> dict:
    """A finished picture's subject masks as ``RunResult.masks`` keeps them."""
    if isinstance(event, ev.AnchorDone):
        return {} if event.mask is None else {ev.anchor_key(event.character, event.number): {event.character: event.mask}}
    return {event.index: event.masks} if event.masks else {}


def _in_artists_terms(event: ev.PanelDone | ev.AnchorDone, request: SetRequest) -> ev.PanelDone | ev.AnchorDone:
    """A finished picture's metadata with its files (LoRAs, VAE, reference, anchor and control
    pictures) named where the artist has them, not as the server's copies: what a local run reports."""
    metadata = dict(event.metadata, **request.picture_parameters())
    if isinstance(event, ev.AnchorDone):
        if "picture" in metadata:
            character = next(c for c in request.characters if c.name == event.character)
            metadata["picture"] = character.anchor_pictures[event.number]
        return replace(event, metadata=metadata)
    if event.index is not None and metadata.get("control") is not None:
        metadata["control"] = request.to_dict()["panels"][event.index]["control"]
    if event.index is None and "picture" in metadata:
        metadata["picture"] = request.references[event.reference].path
    return replace(event, metadata=metadata)


def _read_lines(response: httpx.Response, lines: queue.Queue) -> None:
    try:
        for line in response.iter_lines():
            lines.put(line)
    except Exception as error:  # the connection broke, or we closed it to cancel
        lines.put(error)
    lines.put(_END)


def _stop_reading(response: httpx.Response, reader: threading.Thread | None) -> None:
    """Close the stream, first waking the reader thread if it is still reading.

    Closing a socket that another thread is blocked reading does not close the connection: the
    blocked read keeps it open (no FIN reaches the server, which then runs the set to its end),
    and its descriptor number can go to the next connection the client opens. ``shutdown`` ends
    the connection at once and wakes the read; the stream is closed once the reader has stopped."""
    if reader is not None and reader.is_alive():
        network = response.extensions.get("network_stream")
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            reader.join()
    response.close()


def _until_cancelled(lines: queue.Queue, cancel: threading.Event, message: Callable[[Exception], str]):
    """Lines from the reader thread until it ends or ``cancel`` is set (checked 10 times a second)."""
    while not cancel.is_set():
        try:
            item = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _END:
            return
        if isinstance(item, Exception):
            if cancel.is_set():
                return
            raise ServerError(message(item))
        yield item


def _raise_for_status(response: httpx.Response, name: str | None = None) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("error") or response.text
    except ValueError:
        detail = response.text.strip().splitlines()[0] if response.text.strip() else response.reason_phrase
    if response.status_code == 401:
        detail = f"the server refused the token ({detail})"
    prefix = f"{name}: " if name else ""
    raise ServerError(f"{prefix}{detail}")
