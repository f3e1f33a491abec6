"""The one background thread that owns the engine (the ``PictureMaker`` of ``engine/maker.py``).

The UI thread never imports torch: the engine is built by a factory *inside* the worker thread on
the first job (:meth:`EngineWorker.use_engine` switches the factory, e.g. to a server's client).
Jobs wait in a queue while one runs. Engine events reach the UI thread through a
:class:`~.bridge.ThreadBridge` (the worker thread never calls Qt's signal machinery) and are
re-emitted there as this object's Qt signals; pictures are converted to QImage in the worker.

Previews are coalesced: the worker keeps only the newest preview of each picture and signals
``previews_ready`` once until the UI has taken them, so a fast engine can never flood the UI's
event queue however many previews it reports.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ...engine import events as ev
from ...engine.errors import is_expected_error
from ...engine.maker import PictureMaker, PictureMakerFactory, this_computer
from ...engine.request import SetRequest
from ...library_errors import describe_library_failure, library_failure
from ..support import pil_to_qimage
from .bridge import ThreadBridge

log = logging.getLogger(__name__)


class JobState(enum.Enum):
    queued = "queued"
    running = "running"
    finished = "finished"
    cancelled = "cancelled"
    failed = "failed"


@dataclass
class Job:
    """One generation handed to the worker.

    ``after_finish`` runs in the worker thread with the run's result (e.g. writing the run
    folder, which encodes PNGs: slow work that must not happen on the UI thread); what it returns
    is stored in ``output``.
    """

    id: int
    request: SetRequest
    label: str = ""
    after_finish: Callable[[ev.RunResult], Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    state: JobState = JobState.queued
    output: Any = None
    started: float | None = None
    result: ev.RunResult | None = None
    error: str | None = None

    @property
    def reroll(self) -> bool:
        return self.request.only is not None


@dataclass
class Task:
    """A small job for the engine's thread (e.g. a control map, which may need torch).

    Tasks run between generations, before the next queued job. ``on_done(task)`` is called on
    the UI thread with ``result`` or ``error`` (a readable message) set.
    """

    id: int
    fn: Callable[[], Any]
    on_done: Callable[[Task], None] | None = None
    result: Any = None
    error: str | None = None


_WAKE = object()


@dataclass(frozen=True)
class WorkerEvent:
    """An engine event of one job, with its picture(s) already converted to QImage."""

    job: Job
    event: ev.Event
    image: QImage | None = None
    images: dict[int | None, QImage] = field(default_factory=dict)


def readable_error(exc: BaseException) -> str:
    """A message an artist can act on, from an exception the engine did not turn into Failed."""
    failure = library_failure(exc)
    if failure is not None:  # before the rest: diffusers wraps these in a RuntimeError
        return describe_library_failure(failure)
    text = str(exc).strip() or exc.__class__.__name__
    name = exc.__class__.__name__
    lowered = text.lower()
    if "out of memory" in lowered or name == "OutOfMemoryError":
        return ("The graphics card ran out of memory. Try a smaller size, a smaller micro-batch "
                f"or fewer panels. ({text.splitlines()[0]})")
    if isinstance(exc, (FileNotFoundError, OSError)) and getattr(exc, "filename", None):
        return f"Could not read {exc.filename}: {exc.strerror or text}"
    if isinstance(exc, ValueError):  # the engine's own errors are written for the user
        return text
    return f"{text.splitlines()[0]} ({name})"


class EngineWorker(QObject):
    """Owns the engine in a single background thread; see the module docstring."""

    event = Signal(object)
    """A WorkerEvent (everything but previews)."""
    previews_ready = Signal()
    """New previews can be taken with :meth:`take_previews`."""
    job_queued = Signal(object)
    job_started = Signal(object)
    job_ended = Signal(object)
    """The Job, with its final state (finished, cancelled or failed)."""
    task_done = Signal(object)
    """A Task with its result or error."""

    def __init__(
        self, engine_factory: PictureMakerFactory = this_computer, parent=None
    ) -> None:
        super().__init__(parent)
        self._engine_factory = engine_factory
        self._engine: PictureMaker | None = None
        self._engine_ready = False
        self._queue: queue.Queue[Any] = queue.Queue()
        self._tasks: deque[Task] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: list[Job] = []
        self._current: Job | None = None
        self._previews: dict[int | None, tuple[int, int, QImage]] = {}
        self._previews_signalled = False
        self.task_done.connect(self._deliver_task)
        self._bridge = ThreadBridge(self)
        self._post = self._bridge.post
        self._thread = threading.Thread(target=self._run, name="stylealigned-engine", daemon=True)
        self._thread.start()

    # ----- UI-thread API -------------------------------------------------------------------
    def submit(
        self,
        request: SetRequest,
        label: str = "",
        after_finish: Callable[[ev.RunResult], Any] | None = None,
    ) -> Job:
        """Queue a job; it runs when the jobs before it are done."""
        job = Job(next(self._ids), request, label, after_finish)
        self._bridge.wake()
        with self._lock:
            self._pending.append(job)
        self.job_queued.emit(job)
        self._queue.put(job)
        return job

    def run_task(self, fn: Callable[[], Any], on_done: Callable[[Task], None] | None = None) -> Task:
        """Run ``fn`` in the engine's thread between generations; see :class:`Task`."""
        task = Task(next(self._ids), fn, on_done)
        self._bridge.wake()
        with self._lock:
            self._tasks.append(task)
        self._queue.put(_WAKE)
        return task

    def warm_up(self, also: Callable[[], Any] | None = None,
                on_done: Callable[[Task], None] | None = None) -> Task:
        """Build the engine and run its ``warm_up()`` (then ``also``) in the worker thread now.

        Importing torch and diffusers holds Python's GIL for stretches of a few hundred ms
        (loading their native libraries), which the UI thread feels as stutter. Doing it while
        the artist is still reading the window moves that cost away from the first Generate.
        """

        def run() -> None:
            if self._engine is None:
                self._engine = self._engine_factory()
            engine_warm_up = getattr(self._engine, "warm_up", None)
            if callable(engine_warm_up):
                engine_warm_up()
            self._engine_ready = True
            if also is not None:
                also()

        return self.run_task(run, on_done)

    def use_engine(self, engine_factory: PictureMakerFactory) -> Task:
        """Make the next jobs' pictures with a maker from ``engine_factory`` (built on first use).

        Jobs already queued run with the new maker; the running one finishes with the old.
        """

        def swap() -> None:
            self._engine_factory = engine_factory
            self._engine = None
            self._engine_ready = False

        return self.run_task(swap)

    @staticmethod
    def _deliver_task(task: Task) -> None:
        if task.on_done is not None:
            task.on_done(task)

    @property
    def current(self) -> Job | None:
        return self._current

    @property
    def pending(self) -> list[Job]:
        with self._lock:
            return list(self._pending)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self.pending)

    def cancel(self, job: Job | None = None) -> None:
        """Cancel ``job`` (the running one if None). A queued job is dropped before it starts."""
        job = job or self._current
        if job is None:
            return
        job.cancel.set()
        with self._lock:
            if job in self._pending:
                self._pending.remove(job)
                job.state = JobState.cancelled
                dropped = True
            else:
                dropped = False
        if dropped:
            self.event.emit(WorkerEvent(job, ev.Cancelled()))
            self.job_ended.emit(job)

    def cancel_all(self) -> None:
        for job in self.pending:
            self.cancel(job)
        self.cancel()

    def take_previews(self) -> dict[int | None, tuple[int, int, QImage]]:
        """The newest preview of each picture since the last call: index -> (job id, step, image)."""
        with self._lock:
            previews, self._previews = self._previews, {}
            self._previews_signalled = False
        return previews

    def stop(self) -> None:
        """Cancel everything; the thread ends after the step or task it is in (not waited for:
        it is a daemon thread, so an unfinished import never holds the process)."""
        self.cancel_all()
        self._queue.put(None)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """:meth:`stop`, then wait; True when the thread stopped within ``timeout``."""
        self.stop()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finish(self, timeout: float) -> None:
        """After :meth:`stop`, at the very end: let a cancelled generation end its step (up to
        ``timeout``); a task (the warm-up's imports, a score) is not waited for."""
        if self._current is not None:
            self._thread.join(timeout)

    @property
    def engine_loaded(self) -> bool:
        return self._engine is not None

    @property
    def engine_ready(self) -> bool:
        """The engine has warmed up or made a set: a job starts without loading libraries."""
        return self._engine_ready

    # ----- worker thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            self._run_tasks()
            if job is None:
                return
            if job is _WAKE:
                continue
            with self._lock:
                if job not in self._pending:
                    continue  # cancelled while queued
                self._pending.remove(job)
                self._current = job
                job.state = JobState.running
                job.started = time.monotonic()
            self._post(self.job_started.emit, job)
            try:
                self._execute(job)
            finally:
                with self._lock:
                    self._current = None
                self._post(self.job_ended.emit, job)

    def _run_tasks(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    return
                task = self._tasks.popleft()
            try:
                task.result = task.fn()
            except Exception as exc:
                log.info("task %s failed: %r", task.id, exc)
                task.error = readable_error(exc)
            self._post(self.task_done.emit, task)

    def _execute(self, job: Job) -> None:
        def on_event(event: ev.Event) -> None:
            self._forward(job, event)

        try:
            if self._engine is None:
                on_event(ev.Loading(0.0, "Starting the generator"))
                self._engine = self._engine_factory()
            try:
                result = self._engine.generate(job.request, on_event, job.cancel)
            finally:
                self._engine_ready = True
        except Exception as exc:  # the app must never die on an engine error
            if is_expected_error(exc):  # a refused LoRA, picture or server request: not a crash
                log.warning("job %s refused: %s", job.id, readable_error(exc))
            else:
                log.error("engine error in job %s:\n%s", job.id, traceback.format_exc())
            self._end(job, JobState.failed, ev.Failed(readable_error(exc)))
            return
        if job.state in (JobState.finished, JobState.failed, JobState.cancelled):
            return  # the engine already reported how it ended
        if result is None or job.cancel.is_set():
            self._end(job, JobState.cancelled, ev.Cancelled())
        else:
            self._finish(job, result)

    def _forward(self, job: Job, event: ev.Event) -> None:
        """Runs in the worker thread, inside the engine's callback."""
        if isinstance(event, ev.Preview):
            with self._lock:
                key = ev.picture_key(event.index, event.reference)
                self._previews[key] = (job.id, event.step, pil_to_qimage(event.image))
                signal = not self._previews_signalled
                self._previews_signalled = True
            if signal:
                self._post(self.previews_ready.emit)
        elif isinstance(event, ev.PanelDone):
            self._post(self.event.emit, WorkerEvent(job, event, image=pil_to_qimage(event.image)))
        elif isinstance(event, ev.Finished):
            self._finish(job, event.run)
        elif isinstance(event, ev.Cancelled):
            self._end(job, JobState.cancelled, event)
        elif isinstance(event, ev.Failed):
            self._end(job, JobState.failed, event)
        else:
            self._post(self.event.emit, WorkerEvent(job, event))

    def _finish(self, job: Job, result: ev.RunResult) -> None:
        if job.state is not JobState.running:
            return
        job.result = result
        if job.after_finish is not None:
            try:
                job.output = job.after_finish(result)
            except Exception as exc:
                log.error("saving job %s failed:\n%s", job.id, traceback.format_exc())
                self._end(job, JobState.failed,
                          ev.Failed(f"The pictures were made but could not be saved: "
                                    f"{readable_error(exc)}"))
                return
        images = {ev.picture_key(None, r): pil_to_qimage(image) for r, image in result.references.items()}
        for index, image in result.panels.items():
            images[index] = pil_to_qimage(image)
        job.state = JobState.finished
        self._post(self.event.emit, WorkerEvent(job, ev.Finished(result), images=images))

    def _end(self, job: Job, state: JobState, event: ev.Event) -> None:
        if job.state is not JobState.running:
            return
        job.state = state
        if isinstance(event, ev.Failed):
            job.error = event.message
        self._post(self.event.emit, WorkerEvent(job, event))
