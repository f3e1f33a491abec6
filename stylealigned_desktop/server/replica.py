"""``EngineReplica``: one Ray Serve replica (one GPU, or CPUs) owning an ``Engine``.

It runs one shard of a set at a time (``max_ongoing_requests=1``) and streams the engine's
events as wire dicts (a Serve streaming generator). The engine runs in a thread of its own; a
cancelled stream (the client went away) sets the engine's cancel event, which stops it within one
denoising step, and the replica stays busy until it has stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import serve

from ..engine import events as ev
from ..engine.errors import is_expected_error
from .wire import WireError, event_to_wire, request_from_wire

log = logging.getLogger(__name__)

TRAJECTORY = "_trajectory"
"""Internal event of ``invert``: the (key, trajectory) pair, for the ingress to hand on."""

_END = object()


def memory_bytes() -> int:
    """This process's resident memory."""
    import psutil  # a dependency of Ray

    return psutil.Process().memory_info().rss


@serve.deployment(max_ongoing_requests=1, health_check_period_s=5)
class EngineReplica:
    """See the module docstring. ``models``: the model sources this server offers; the first is
    loaded when the replica starts, so a model that cannot load fails the server's start."""

    def __init__(self, models: list[str]):
        from ..engine.generator import Engine

        # every row's preview every step, as before previews had a budget: the client coalesces
        # them, and on a server's GPU the tiny decoder costs milliseconds a row
        self._engine = Engine(preview_budget=float("inf"))
        self._folder = Path(tempfile.mkdtemp(prefix="stylealigned-replica-"))
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stylealigned-engine")
        self._stats = {"sets": 0, "cancelled": 0, "inversions": 0, "trajectories_received": 0,
                       "last_steps": 0, "busy": False}
        self._engine.pipeline(models[0])

    def __del__(self):
        shutil.rmtree(getattr(self, "_folder", ""), ignore_errors=True)

    # -- requests ------------------------------------------------------------------------------
    async def run(self, wire: dict[str, Any], pictures: dict[str, bytes], only: list[int],
                  trajectory: list | None = None, loras: dict[str, list] | None = None
                  ) -> AsyncIterator[dict[str, Any]]:
        """Stream one shard: the reference and the panels ``only`` of the wire request.
        ``trajectory``: ``[ObjectRef]`` of a (key, trajectory) pair inverted elsewhere, or None.
        ``loras``: ``{sha256: [ObjectRef]}`` of the request's LoRA files' bytes."""
        try:
            request = replace(await self._request(wire, pictures, loras), only=tuple(only))
        except (WireError, OSError) as error:  # a copy that could not be made: one line, no step
            yield event_to_wire(ev.Failed(str(error)))
            return
        if trajectory:
            key, value = await trajectory[0]
            self._engine.trajectory_cache(request.cache_dir).put(key, value)
            self._stats["trajectories_received"] += 1
        self._stats["sets"] += 1
        async for item in self._stream(lambda sink, cancel: self._engine.generate(request, sink, cancel)):
            yield item

    async def invert(self, wire: dict[str, Any], pictures: dict[str, bytes],
                     loras: dict[str, list] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Stream the inversion of the request's reference picture; the last item is
        ``{"event": TRAJECTORY, "value": (key, trajectory)}`` unless it failed or was cancelled."""
        from ..engine.generator import GenerationCancelled

        try:
            request = await self._request(wire, pictures, loras)
        except (WireError, OSError) as error:
            yield event_to_wire(ev.Failed(str(error)))
            return

        def work(sink, cancel):
            try:
                sink(TRAJECTORY, self._engine.reference_trajectory(request, sink, cancel))
            except GenerationCancelled:
                sink(ev.Cancelled())
            except Exception as error:
                sink(ev.Failed(str(error) or type(error).__name__))

        async for item in self._stream(work):
            yield item

    def describe(self) -> dict[str, Any]:
        """What /v1/health and /v1/models show of this replica."""
        from ..engine.models import resolve_device

        device = resolve_device("auto")
        gpu, gpu_memory = None, None
        if device.type == "cuda":
            import torch

            properties = torch.cuda.get_device_properties(device)
            gpu, gpu_memory = properties.name, properties.total_memory
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "device": str(device),
                "gpu": gpu, "gpu_memory_bytes": gpu_memory, "memory_bytes": memory_bytes(), **self._stats}

    # -- pieces ---------------------------------------------------------------------------------
    async def _request(self, wire: dict[str, Any], pictures: dict[str, bytes], loras: dict[str, list] | None):
        """The request with this replica's copies of its pictures and LoRAs, and its own cache
        folder. A LoRA's copy has the artist's file name (records and messages name it so) in a
        folder named by its SHA-256; only the copies of the last request are kept."""
        def picture_path(sha: str) -> str:
            path = self._folder / sha
            if not path.exists():
                path.write_bytes(pictures[sha])
            return str(path)

        fetched = {sha: await refs[0] for sha, refs in (loras or {}).items() if not self._lora_copies(sha)}

        def lora_path(sha: str, name: str) -> str:
            path = self._folder / "loras" / sha / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                copies = self._lora_copies(sha)
                if copies:  # the same file under another name
                    shutil.copyfile(copies[0], path)
                elif sha in fetched:
                    path.write_bytes(fetched[sha])
                else:
                    raise WireError(f"LoRA {name} did not reach this engine")
            return str(path)

        request = request_from_wire(wire, picture_path, lora_path)
        self._forget_loras_but(request.loras)
        return replace(request, cache_dir=str(self._folder / "trajectories"))

    def _lora_copies(self, sha: str) -> list[Path]:
        folder = self._folder / "loras" / sha
        return sorted(folder.iterdir()) if folder.is_dir() else []

    def _forget_loras_but(self, loras) -> None:
        """Delete the LoRA copies ``loras`` does not use (the engine unloads their adapters by
        name, without the files)."""
        keep = {Path(lora.path) for lora in loras}
        for folder in (self._folder / "loras").glob("*"):
            for copy in folder.iterdir():
                if copy not in keep:
                    copy.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()

    async def _stream(self, work: Callable) -> AsyncIterator[dict[str, Any]]:
        """Run ``work(sink, cancel)`` in the engine thread and yield what it reports, as wire dicts."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        steps = 0

        def sink(event, value=None) -> None:
            nonlocal steps
            if isinstance(event, ev.Step):
                steps = event.step
            elif isinstance(event, ev.Inverting) and event.step == 1:
                self._stats["inversions"] += 1
            elif isinstance(event, ev.Cancelled):
                self._stats["cancelled"] += 1
            item = {"event": TRAJECTORY, "value": value} if event == TRAJECTORY else event_to_wire(event)
            loop.call_soon_threadsafe(items.put_nowait, item)

        def target() -> None:
            try:
                work(sink, cancel)
            except Exception as error:  # the engine already reported it as Failed
                if is_expected_error(error):  # a refused LoRA or picture: not a crash
                    log.warning("the engine refused the request: %s", str(error).splitlines()[0] if str(error) else error)
                else:
                    log.exception("the engine failed")
            finally:
                loop.call_soon_threadsafe(items.put_nowait, _END)

        self._stats["busy"] = True
        running = loop.run_in_executor(self._pool, target)
        try:
            while (item := await items.get()) is not _END:
                yield item
        finally:
            cancel.set()
            # Stay busy until the engine has stopped (within one step), so the next shard sent
            # here does not wait behind a cancelled one unseen.
            while not running.done():
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    continue
            self._stats.update(busy=False, last_steps=steps)
