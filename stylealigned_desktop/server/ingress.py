"""``Ingress``: the FastAPI front of the server (a Ray Serve ingress deployment).

- ``PUT /v1/pictures/{sha256}`` (and ``HEAD``): a picture, content-addressed, size-capped and
  checked with the engine's picture reader before anything uses it.
- ``PUT /v1/loras/{sha256}`` (and ``HEAD``): a LoRA file, content-addressed, size-capped and
  read as ``.safetensors`` (its header only; never unpickled). Whether it fits the model is the
  engine's check, before any step, as on the artist's computer.
- ``POST /v1/sets``: a wire request (see ``wire``); answers with NDJSON engine events. The
  selected panels are sharded over the free replicas (``sharding``); a reference picture is
  inverted once, on one replica, and handed to the shards through Ray's object store. A shard
  whose replica dies is run again on another (a ``Notice`` says so); a shard that fails otherwise
  ends the set with one ``Failed`` (its cause's message) and cancels the other shards; a client
  that goes away cancels every shard.
- ``GET /v1/health``, ``GET /v1/models``.

Every route needs the bearer token. Errors are ``{"error": "one line"}`` with 400 or 401.
"""


import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

from .. import __version__
from ..engine.images import PictureError, load_picture
from ..engine.lora import LoraError, read_lora_shapes
from ..engine.models import HUB_ID, is_tiny, looks_like_path
from ..engine.request import ReferencePicture, SetRequest
from ..userfiles import UnreadableFile, parse_json
from .auth import bearer_matches
from .replica import TRAJECTORY, memory_bytes
from .sharding import RESTART, StreamMerger, plan_shards
from .uploads import mark_used, prune_uploads
from .wire import HEARTBEAT, HEARTBEAT_S, SHA256, WireError, ndjson_line, request_from_wire

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 20
REPLICA_LOST = (RayActorError, ActorUnavailableError, DeploymentUnavailableError, ReplicaUnavailableError)
NO_ENGINE_LEFT = ("the server has no engine left to make this set: its replicas stopped and none "
                  "came back (see the server's log)")

api = FastAPI(title="StyleAligned server", version=__version__, docs_url=None, redoc_url=None,
              openapi_url=None)


# Helpers stay above the deployment class: Serve captures the class when it is decorated, and
# names defined below it are then missing in the replica.


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _has_upload(folder: Path, sha: str) -> Response:
    """``HEAD`` of an upload: 200 if the store has it, which marks it used (the set that follows
    uses it: not the next to be forgotten); 404 otherwise."""
    if not (SHA256.match(sha) and (folder / sha).is_file()):
        return Response(status_code=404)
    mark_used(folder / sha)
    return Response(status_code=200)


def shard_failure(error: Exception) -> str:
    """One line for a shard that raised: the cause's own message (a replica's exception arrives
    wrapped in a ``RayTaskError`` whose text is a traceback), its type where that says more."""
    cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    if isinstance(cause, (ValueError, RuntimeError)) and message:
        return message
    return f"{type(cause).__name__}: {message}" if message else type(cause).__name__


WEIGHT_FILE_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth", ".pkl", ".onnx", ".gguf")


def _hub_name(source: str) -> bool:
    """Whether a request's model source is a hub id (``owner/name``) or a tiny model: anything
    else (an absolute or relative path, a weight file's name) would be a file on the server."""
    if is_tiny(source):
        return True
    return bool(HUB_ID.match(source)) and not looks_like_path(source) \
        and not source.lower().endswith(WEIGHT_FILE_SUFFIXES)


def _too_large(what: str, max_bytes: int) -> str:
    return f"the {what} is larger than this server's limit of {max_bytes / 1e6:g} MB"


def _refuse_upload(sha: str, request: Request, what: str, max_bytes: int) -> JSONResponse | None:
    """An upload refused before its bytes are read (a bad name, a declared size over the limit)."""
    if not SHA256.match(sha):
        return _error(400, f"a {what} is named by the SHA-256 of its bytes (64 lowercase hex digits)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return _error(400, _too_large(what, max_bytes))
    return None


async def _drain(queue: asyncio.Queue, streams: int):
    """``(shard, item)`` from the pumps until ``streams`` of them have ended, with ``(None,
    heartbeat)`` every ``HEARTBEAT_S`` seconds in between (see ``wire.HEARTBEAT``)."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            queue.put_nowait((None, {"event": HEARTBEAT}))

    # A plain queue.get(): asyncio.wait_for can swallow a cancellation (Python < 3.12), and a
    # cancellation here is how a client that went away stops its set.
    ticker = asyncio.create_task(tick())
    try:
        while streams:
            shard, item = await queue.get()
            if item is None:
                streams -= 1
            else:
                yield shard, item
    finally:
        ticker.cancel()


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(api)
class Ingress:
    """See the module docstring. ``config``: ``token_digest``, ``models``, ``upload_dir``,
    ``max_upload_bytes``, ``max_store_bytes``, ``keep_uploads_s``, ``max_lora_bytes``,
    ``max_lora_store_bytes``, ``replica_wait_s``, ``max_retries``."""

    def __init__(self, replicas, config: dict[str, Any]):
        self._replicas = replicas
        self._streams = replicas.options(stream=True)
        self._digest = config["token_digest"]
        self._models = list(config["models"])
        self._uploads = Path(config["upload_dir"])
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._max_upload = int(config["max_upload_bytes"])
        self._max_store = int(config.get("max_store_bytes", 2_000_000_000))
        self._keep_uploads_s = float(config.get("keep_uploads_s", 7 * 86400.0))
        self._loras = self._uploads / "loras"  # a folder apart: a LoRA's name is never a picture's
        self._loras.mkdir(exist_ok=True)
        self._max_lora = int(config.get("max_lora_bytes", 2_000_000_000))
        self._max_lora_store = int(config.get("max_lora_store_bytes", 20_000_000_000))
        self._prune()
        self._prune_loras()
        self._replica_wait_s = float(config.get("replica_wait_s", 120.0))
        self._max_retries = int(config.get("max_retries", 3))
        self._busy_shards = 0
        self._engines: list[dict[str, Any]] = []

    # -- routes ----------------------------------------------------------------------------------
    @api.get("/v1/health")
    async def health(self, request: Request):
        if denied := self._deny(request):
            return denied
        engines, fresh = await self._describe_engines()
        return {"status": "ok", "version": __version__, "replicas": await self._running_replicas(),
                "busy_shards": self._busy_shards, "engines": engines, "engines_fresh": fresh,
                "memory_bytes": sum(e["memory_bytes"] for e in engines) + memory_bytes()}

    @api.get("/v1/models")
    async def models(self, request: Request):
        if denied := self._deny(request):
            return denied
        engines, _fresh = await self._describe_engines()
        return {"models": self._models, "default": self._models[0],
                "gpus": [e["gpu"] for e in engines if e.get("gpu")],
                "devices": [e["device"] for e in engines], "replicas": await self._running_replicas()}

    @api.head("/v1/pictures/{sha}")
    async def has_picture(self, sha: str, request: Request):
        if denied := self._deny(request):
            return denied
        return _has_upload(self._uploads, sha)

    @api.head("/v1/loras/{sha}")
    async def has_lora(self, sha: str, request: Request):
        if denied := self._deny(request):
            return denied
        return _has_upload(self._loras, sha)

    @api.put("/v1/loras/{sha}")
    async def put_lora(self, sha: str, request: Request):
        if denied := self._deny(request):
            return denied
        if refused := _refuse_upload(sha, request, "LoRA", self._max_lora):
            return refused
        # Written as it arrives (a LoRA can be hundreds of MB), under a name of its own
        temporary = self._loras / f".{sha}.{os.getpid()}.{secrets.token_hex(4)}.part"
        digest, size = hashlib.sha256(), 0
        try:
            with open(temporary, "wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self._max_lora:
                        return _error(400, _too_large("LoRA", self._max_lora))
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
            if digest.hexdigest() != sha:
                return _error(400, "the upload's bytes do not match its name (SHA-256)")
            tensors = await asyncio.to_thread(self._store_lora, sha, temporary)
        except LoraError as error:
            return _error(400, str(error))
        finally:
            temporary.unlink(missing_ok=True)
        await asyncio.to_thread(self._prune_loras, sha)
        return JSONResponse({"sha256": sha, "bytes": size, "tensors": tensors}, status_code=201)

    @api.put("/v1/pictures/{sha}")
    async def put_picture(self, sha: str, request: Request):
        if denied := self._deny(request):
            return denied
        if refused := _refuse_upload(sha, request, "picture", self._max_upload):
            return refused
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > self._max_upload:
                return _error(400, _too_large("picture", self._max_upload))
        if hashlib.sha256(data).hexdigest() != sha:
            return _error(400, "the upload's bytes do not match its name (SHA-256)")
        try:
            size = await asyncio.to_thread(self._store_picture, sha, bytes(data))
        except PictureError as error:
            return _error(400, str(error))
        await asyncio.to_thread(self._prune, sha)
        return JSONResponse({"sha256": sha, "width": size[0], "height": size[1]}, status_code=201)

    @api.post("/v1/sets")
    async def post_set(self, request: Request):
        if denied := self._deny(request):
            return denied
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return _error(400, f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        try:
            data = parse_json(body)  # deep nesting and huge numbers are 400s too, never 500s
        except UnreadableFile as error:
            return _error(400, f"the request is {error}")
        pictures: dict[str, bytes] = {}
        loras: dict[str, str] = {}
        try:
            parsed = request_from_wire(data, lambda sha: self._picture(sha, pictures),
                                       lambda sha, name: self._lora(sha, name, loras))
            self._check_sources(parsed)
        except WireError as error:
            return _error(400, str(error))
        return StreamingResponse(self._run_set(data, pictures, parsed, loras), media_type="application/x-ndjson")

    # -- checks ----------------------------------------------------------------------------------
    def _deny(self, request: Request) -> JSONResponse | None:
        if bearer_matches(request.headers.get("authorization"), self._digest):
            return None
        return _error(401, "a valid bearer token is needed (Authorization: Bearer TOKEN)")

    def _store_picture(self, sha: str, data: bytes) -> tuple[int, int]:
        """Check an upload with the engine's picture reader, then keep it under its name."""
        # A name of its own: concurrent uploads of one picture must not share a temporary
        temporary = self._uploads / f".{sha}.{os.getpid()}.{secrets.token_hex(4)}.part"
        temporary.write_bytes(data)
        try:
            picture = load_picture(temporary)
        except PictureError as error:
            temporary.unlink(missing_ok=True)
            # The reader names the file; name the upload instead of a path on the server.
            raise PictureError(str(error).replace(str(temporary), "the picture", 1)) from None
        os.replace(temporary, self._uploads / sha)
        return picture.size

    def _store_lora(self, sha: str, temporary: Path) -> int:
        """Check an uploaded LoRA is a readable ``.safetensors`` file, then keep it under its
        name; the number of tensors it holds."""
        tensors = len(read_lora_shapes(temporary, name="the upload"))
        os.replace(temporary, self._loras / sha)
        return tensors

    def _lora(self, sha: str, name: str, loras: dict[str, str]) -> str:
        """A LoRA of a request: uploaded, and used now (last in the line to be forgotten)."""
        path = self._loras / sha
        if not path.is_file():
            raise WireError(f"LoRA {name} ({sha[:12]}…) was not uploaded (PUT /v1/loras/{{sha256}} first)")
        mark_used(path)
        loras[sha] = name
        return f"{sha}/{name}"  # the replicas keep their own copies under the file's name

    def _picture(self, sha: str, pictures: dict[str, bytes]) -> str:
        path = self._uploads / sha
        try:
            pictures[sha] = path.read_bytes()
        except FileNotFoundError:
            raise WireError(f"picture {sha[:12]}… was not uploaded (PUT /v1/pictures/{{sha256}} first)") from None
        mark_used(path)
        return sha

    def _prune(self, keep: str | None = None) -> None:
        """Keep the uploads within their size and age (docs/server.md, "Uploaded pictures")."""
        self._prune_store(self._uploads, self._max_store, keep, "picture")

    def _prune_loras(self, keep: str | None = None) -> None:
        self._prune_store(self._loras, self._max_lora_store, keep, "LoRA")

    def _prune_store(self, folder: Path, max_bytes: int, keep: str | None, kind: str) -> None:
        try:
            deleted = prune_uploads(folder, max_bytes, self._keep_uploads_s, keep=keep)
        except OSError as error:
            log.warning("could not tidy the uploaded %ss: %s", kind, error)
            return
        if deleted:
            log.info("forgot %s uploaded %s(s) (size or age limit)", len(deleted), kind)

    def _check_sources(self, request: SetRequest) -> None:
        if request.model not in self._models:
            raise WireError(f"this server offers {', '.join(self._models)}; it has no model {request.model!r}")
        for name in ("controlnet_canny", "controlnet_depth", "depth_model", "vae"):
            source = getattr(request, name)
            if source is not None and source not in self._models and not _hub_name(source):
                raise WireError(f"{name} names a path ({source}); a request cannot name files on the server")

    # -- replicas --------------------------------------------------------------------------------
    async def _running_replicas(self) -> int:
        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(serve.get_replica_context().app_name)
        deployment = app.deployments.get("EngineReplica") if app else None
        return deployment.replica_states.get("RUNNING", 0) if deployment else 0

    async def _describe_engines(self) -> tuple[list[dict[str, Any]], bool]:
        """Each replica's ``describe()``, and whether that is fresh: while a replica is busy
        (a set runs, or a cancelled one is stopping) the last known answers."""
        if self._busy_shards == 0:
            try:
                answers = await self._replicas.broadcast("describe").results_async(
                    timeout_s=5, return_exceptions=True)
                self._engines = [a for a in answers if isinstance(a, dict)]
                return self._engines, len(self._engines) == len(answers)
            except (TimeoutError, *REPLICA_LOST) as error:
                log.info("replicas did not describe themselves: %r", error)
        return self._engines, False

    async def _wait_for_replica(self) -> bool:
        deadline = time.monotonic() + self._replica_wait_s
        while time.monotonic() < deadline:
            if await self._running_replicas() > 0:
                return True
            await asyncio.sleep(1.0)
        return False

    async def _pump(self, shard: int, method: str, args: tuple, queue: asyncio.Queue) -> None:
        """Put a replica stream's items on ``queue`` as ``(shard, item)``, then ``(shard, None)``.
        A lost replica means a re-run elsewhere (``RESTART`` first), at most ``max_retries``; any
        other exception ends the shard with ``Failed`` (its cause's message), which ends the set
        and cancels its other shards."""
        attempts = 0
        while True:
            stream = getattr(self._streams, method).remote(*args)
            complete = False
            try:
                async for item in stream:
                    await queue.put((shard, item))
                complete = True
                await queue.put((shard, None))
                return
            except REPLICA_LOST as error:
                attempts += 1
                log.warning("shard %s lost its replica (%r), attempt %s", shard, error, attempts)
                if attempts > self._max_retries or not await self._wait_for_replica():
                    await queue.put((shard, {"event": "Failed", "message": NO_ENGINE_LEFT}))
                    return
                await queue.put((shard, {"event": RESTART}))
            except Exception as error:  # the shard failed; without an end of it, the set waits forever
                log.warning("shard %s failed: %r", shard, error)
                await queue.put((shard, {"event": "Failed", "message": shard_failure(error)}))
                return
            finally:
                if not complete:
                    stream.cancel()

    def _put_loras(self, loras: dict[str, str]) -> dict[str, list]:
        """The request's LoRA files in Ray's object store, once for every shard: ``{sha: [ref]}``
        (in a list, so a replica fetches the bytes only if it has no copy yet)."""
        return {sha: [ray.put((self._loras / sha).read_bytes())] for sha in loras}

    async def _run_set(self, wire: dict[str, Any], pictures: dict[str, bytes], request: SetRequest,
                       loras: dict[str, str]):
        running = await self._running_replicas()
        if running == 0 and not await self._wait_for_replica():
            yield ndjson_line({"event": "Failed", "message": NO_ENGINE_LEFT})
            return
        try:
            lora_refs = await asyncio.to_thread(self._put_loras, loras)
        except FileNotFoundError:  # forgotten since the request was checked (the store's limits)
            yield ndjson_line({"event": "Failed", "message": "a LoRA of this set was forgotten by the server "
                                                             "meanwhile (its upload limits); try again"})
            return
        shards = plan_shards(request, max(1, running - self._busy_shards))
        self._busy_shards += len(shards)
        queue: asyncio.Queue = asyncio.Queue()
        tasks: list[asyncio.Task] = []
        try:
            trajectory = None
            if isinstance(request.style, ReferencePicture) and len(shards) > 1:
                tasks.append(asyncio.create_task(self._pump(-1, "invert", (wire, pictures, lora_refs), queue)))
                async with contextlib.aclosing(_drain(queue, streams=1)) as items:
                    async for _shard, item in items:
                        if item["event"] == TRAJECTORY:
                            trajectory = [ray.put(item["value"])]  # owned here: outlives the replica
                        elif item["event"] != RESTART:
                            yield ndjson_line(item)
                            if item["event"] in ("Failed", "Cancelled"):
                                return
                if trajectory is None:
                    yield ndjson_line({"event": "Failed", "message": "the reference picture could not be inverted"})
                    return
            merger = StreamMerger(request.selected, shards, request.used_references, [
                (c.name, k) for c in request.characters for k in range(request.settings.anchors_per_character)])
            for shard, only in enumerate(shards):
                tasks.append(asyncio.create_task(
                    self._pump(shard, "run", (wire, pictures, list(only), trajectory, lora_refs), queue)))
            async with contextlib.aclosing(_drain(queue, streams=len(shards))) as items:
                async for shard, item in items:
                    for event in [item] if shard is None else merger.feed(shard, item):
                        yield ndjson_line(event)
                    if merger.ended:
                        return
            yield ndjson_line({"event": "Failed", "message": "the server's engines stopped before the set was done"})
        finally:
            for task in tasks:
                task.cancel()
            self._busy_shards -= len(shards)

