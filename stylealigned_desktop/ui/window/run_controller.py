"""Running sets: start, re-roll, cancel, the worker's events, the run bar, and where pictures are made.

One generation, from click to history::

    generate()/reroll(i) ─ session.prepare_* ─► RunPlan (SetRequest + where to file it)
      └─► EngineWorker.submit(request) ─ worker thread: maker.generate(request, on_event, cancel)
            events ─► _on_worker_event / _on_previews ─► run bar, grid tiles (GridController)
            Finished ─► write_run (worker thread) ─► session.record_run ─► ``run_filed(run id)``

*Where pictures are made* is the worker's :class:`~...engine.maker.PictureMaker`: the embedded
engine by default (:func:`~...engine.maker.this_computer`); :meth:`RunController.use_maker`
switches to another one with the same call (a server's client).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ...engine import events as ev
from ...engine.maker import PictureMakerFactory, this_computer
from ...engine.models import is_tiny, native_base, native_side, no_gpu_reason
from ...engine.progress import JobProgress, format_seconds
from ...engine.runfolder import reference_file
from ...session.base_sizes import describe_moves
from ...session.errors import SessionError
from ...session.history import RunPlan, panel_file_name
from ...session.model import Session
from ..grid import is_anchor, is_reference, reference_position, run_title
from ..support import connect_command, pil_to_qimage
from ..threads import EngineWorker, Job, JobState, WorkerEvent
from .grid_controller import GridController
from .host import Host

log = logging.getLogger(__name__)


def write_run(plan: RunPlan, result: ev.RunResult) -> Path:
    """Write a finished run's folder (runs in the worker thread: PNG encoding is slow)."""
    from ...engine.runfolder import write_run_folder

    return write_run_folder(plan.folder, plan.request, result, plan.style_text)


class RunController(QObject):
    """See the module docstring. ``run_bar`` is the window's :class:`~.run_bar.RunBar`."""

    run_filed = Signal(str)
    """A finished run was filed in the current session's history (its id)."""
    drawing = Signal(object, str)
    """The panel ids of a job that started ("· drawing") or ended ("")."""
    model_changed = Signal(str)
    """The app's model source changed."""
    server_changed = Signal(str)
    """Where pictures are made changed: the server's URL, or empty for this computer."""
    running_changed = Signal(bool)
    no_gpu = Signal(object)
    """Why Auto runs Fast on this computer (it has no GPU), or None; after the warm-up."""
    """Whether a job runs or is about to (after every change of the worker's state)."""

    def __init__(self, host: Host, run_bar, engine_factory: PictureMakerFactory = this_computer,
                 parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.run_bar = run_bar
        self.grid: GridController | None = None
        """Set by the window: where the running job's tiles are drawn."""
        self.worker = EngineWorker(engine_factory, self)
        self.plans: dict[int, tuple[RunPlan, Session]] = {}
        self._progress = JobProgress()
        self.closing = False
        self.refused = ""  # why the last Generate was refused (its banner waits for a fix)
        self.worker.event.connect(self._on_worker_event)
        self.worker.previews_ready.connect(self._on_previews)
        self.worker.job_started.connect(self._on_job_started)
        self.worker.job_ended.connect(self._on_job_ended)
        self.worker.job_queued.connect(lambda *_: self.update_state())
        connect_command(run_bar.generate_button.clicked, self.generate)
        connect_command(run_bar.cancel_button.clicked, self.cancel)

    @property
    def session(self) -> Session | None:
        return self.host.session

    def use_maker(self, factory: PictureMakerFactory) -> None:
        """Make the next sets' pictures with the maker ``factory`` builds (see the docstring)."""
        self.worker.use_engine(factory)

    def choose_where(self) -> None:
        """Settings → Where pictures are made: this computer or a server."""
        from ..dialogs import SERVER, WhereDialog, maker_factory

        dialog = WhereDialog(self.host.config, self.host)
        if not dialog.exec():
            return
        model = dialog.apply()
        self.host.save_config()
        self.use_maker(maker_factory(self.host.config))
        if model:
            self.set_model(model)
        server = self.host.config.picture_maker == SERVER
        self.forget_outcome()  # a lost connection is not this computer's problem
        self.server_changed.emit(self.host.config.server_url if server else "")
        self.host.show_message(f"Pictures are made by the server at {self.host.config.server_url}"
                               if server else "Pictures are made on this computer")

    # ----- the model ----------------------------------------------------------------------------
    def effective_model(self) -> str:
        return (self.session.settings.model if self.session else "") or self.host.config.model

    def uses_tiny(self) -> bool:
        """Whether the model in use is a built-in tiny one (noise pictures, tiny control models)."""
        return is_tiny(self.effective_model())

    def choose_model(self, first_run: bool = False) -> bool:
        from ..dialogs import ModelDialog

        dialog = ModelDialog(self.effective_model(), self.host, first_run=first_run)
        if not dialog.exec():
            if first_run:
                self.host.show_message("No model chosen yet: Settings → Model… when you are ready.")
            return False
        self.set_model(dialog.source())
        return True

    def choose_first_model(self) -> None:
        """At start-up, when no model was ever chosen."""
        if not self.host.config.model:
            self.choose_model(first_run=True)

    def set_model(self, source: str) -> None:
        """Remember ``source`` as the app's model (and the session's, if it names one); the
        session's preset sizes follow it to its base (one undo step with the session's model)."""
        old_native = native_side(self.effective_model())
        base = native_base(source)
        self.host.config.model = source
        self.host.save_config()
        moved = ""
        if self.session is not None:  # both changes are gathered into one undo step
            if self.session.settings.model:
                self.session.update_settings(model=source)
            moved = describe_moves(self.session.follow_base(old_native, base.native_size), base.name)
        self.model_changed.emit(source)
        self.update_state()
        self.host.show_message(f"Model: {source}" + (f". {moved}" if moved else ""))

    def warm_up(self) -> None:
        """Load the generator's libraries in the worker while the artist reads the window."""
        if self.closing or self.worker.engine_loaded or self.worker.busy:
            return
        self.worker.warm_up(on_done=lambda task: task.error and log.warning(
            "warming up the generator failed: %s", task.error))
        self.worker.run_task(no_gpu_reason, self._said_no_gpu)  # torch is imported by then

    def _said_no_gpu(self, task) -> None:
        if task.error is None:
            self.no_gpu.emit(task.result)

    # ----- commands -------------------------------------------------------------------------
    def generate(self) -> None:
        self._start(None)

    def reroll(self, index: int) -> None:
        self._start(index)

    def cancel(self) -> None:
        """Stop the running job, or the one about to start (while the generator loads)."""
        if self.worker.current is not None:
            self.worker.cancel()
            self.run_bar.progress.setFormat("Cancelling…")
        elif self.worker.pending:
            self.worker.cancel(self.worker.pending[0])

    def cancel_all(self) -> None:
        self.worker.cancel_all()

    def stop_all(self, what: str) -> bool:
        """Before leaving the session: ask to stop running jobs; False when the user says no."""
        if not self.worker.busy:
            return True
        choice = self.host.ask("A generation is running",
                               f"Stop the running generation and {what}?",
                               ["Stop it", "Cancel"], default="Cancel")
        if choice != "Stop it":
            return False
        self.worker.cancel_all()
        for plan, session in self.plans.values():
            session.discard_plan(plan)  # nothing of them is filed: no seed changes
        self.plans.clear()
        return True

    def recheck_refusal(self) -> None:
        """After an edit: a refused Generate's banner goes once its cause is fixed (a name
        corrected, a character added or described, a picture put back), and says the reason
        that is left when another one still holds."""
        if not self.refused or self.session is None:
            return
        try:
            self.session.build_request(default_model=self.host.config.model)
        except SessionError as exc:
            if str(exc) != self.refused:
                self.refused = str(exc)
                self.host.show_message(self.refused, True, "plan")
            return
        self.refused = ""
        self.host.clear_problem("plan")

    def shutdown(self) -> None:
        """Cancel every job and let the worker stop on its own (quitting never waits for it)."""
        self.closing = True
        self.worker.stop()

    def _start(self, reroll: int | None) -> None:
        if self.session is None:
            return
        if not self.effective_model() and not self.choose_model(first_run=True):
            return
        try:
            if reroll is None:
                plan = self.session.prepare_generate(default_model=self.host.config.model)
            else:
                plan = self.session.prepare_reroll(reroll, default_model=self.host.config.model)
        except SessionError as exc:
            self.refused = str(exc)
            self.host.show_message(self.refused, True, "plan")
            return
        self.refused = ""
        self.host.hide_problem()
        label = "Generate" if reroll is None else f"Re-roll panel {reroll + 1}"
        job = self.worker.submit(plan.request, label,
                                 after_finish=lambda result, p=plan: write_run(p, result))
        self.plans[job.id] = (plan, self.session)
        if self.grid.viewing_run is not None:
            self.grid.show_run(None)
        if self.worker.current is not None:
            self.host.show_message(f"{label} waits for the running job")
        elif self.worker.pending[:1] == [job]:
            # at once, though the worker may still be loading the generator's libraries
            loading = "" if self.worker.engine_ready else ": loading the model…"
            self.run_bar.progress.setValue(0)
            self.run_bar.progress.setFormat(f"Starting{loading}")
        self.update_state()

    # ----- the worker's reports -----------------------------------------------------------------
    def _plan_of(self, job_id: int) -> RunPlan | None:
        entry = self.plans.get(job_id)
        return entry[0] if entry and entry[1] is self.session else None

    def running_plan(self) -> RunPlan | None:
        """The plan of the job drawing now, when it belongs to the current session."""
        job = self.worker.current
        return None if job is None else self._plan_of(job.id)

    def _tile_index(self, plan: RunPlan, index):
        """The grid tile of a picture key (``events.picture_key``): a reference's, a current
        panel's, or False if the panel is gone."""
        if is_reference(index):
            return index
        if is_anchor(index):
            return index if index in self.grid.grid.tiles else False
        try:
            return self.session.panel_index(plan.panel_ids[index])
        except (SessionError, IndexError):
            return False

    def _on_job_started(self, job: Job) -> None:
        plan = self._plan_of(job.id)
        self._progress = JobProgress()  # each job's phases and pace from its own events
        if plan is not None:
            if self.grid.viewing_run is not None:
                self.grid.show_run(None)
            for position in plan.request.used_references:
                self.grid.mark_waiting(ev.picture_key(None, position))
            drawing = []
            for index in plan.selected:
                tile = self._tile_index(plan, index)
                if tile is not False:
                    self.grid.mark_waiting(tile)
                    drawing.append(plan.panel_ids[index])
            self.drawing.emit(drawing, "· drawing")
        self.run_bar.progress.setValue(0)
        self.run_bar.progress.setFormat(f"{job.label}: starting…")
        self.update_state()

    def _on_job_ended(self, job: Job) -> None:
        entry = self.plans.pop(job.id, None)
        if entry is not None:
            self.drawing.emit(list(entry[0].panel_ids), "")
            if job.state is not JobState.finished:
                entry[1].discard_plan(entry[0])  # cancelled or failed: the seeds stay as they were
        bar = self.run_bar.progress
        if job.state is JobState.finished:
            bar.setValue(1000)
            elapsed = time.monotonic() - (job.started or time.monotonic())
            bar.setFormat(f"{job.label}: done in {format_seconds(elapsed)}")
        elif job.state is JobState.cancelled:
            bar.setValue(0)
            bar.setFormat(f"{job.label}: cancelled")
        elif job.state is JobState.failed:
            bar.setValue(0)
            bar.setFormat(f"{job.label}: failed")
        if job.state is not JobState.finished and entry is not None and entry[1] is self.session:
            self.grid.refresh()  # put the last finished pictures back
            self.grid.viewers.follow(dict(self.grid.viewer_pictures()))  # and in the open viewers
        self.update_state()

    def _on_worker_event(self, wevent: WorkerEvent) -> None:
        job, event = wevent.job, wevent.event
        plan = self._plan_of(job.id)
        progress = self._progress.update(event)
        if progress is not None:
            self._show_progress(job, progress)
        elif isinstance(event, ev.PanelDone):
            if plan is not None and wevent.image is not None:
                tile = self._tile_index(plan, ev.picture_key(event.index, event.reference))
                if tile is not False:  # the file is written when the run ends
                    self.grid.show_final(tile, wevent.image, "final", None)
                if event.index is not None:  # a panel's characters, as the engine saw them
                    self.grid.take_masks(plan.panel_id(event.index), getattr(event, "masks", None))
        elif isinstance(event, ev.AnchorDone) and plan is not None:  # spec section 13
            key = ("anchor", event.character, event.number)
            if self._tile_index(plan, key) is not False:
                self.grid.take_anchor(key, pil_to_qimage(event.image), event.mask)
        elif isinstance(event, ev.Notice):
            self.host.show_message(event.message)
        elif isinstance(event, ev.Finished):
            self._finished(job, wevent)
        elif isinstance(event, ev.Cancelled):
            self.host.show_message(f"{job.label} cancelled")
        elif isinstance(event, ev.Failed):
            self.host.show_message(f"{job.label} failed: {event.message}", True, "run")

    def _show_progress(self, job: Job, progress) -> None:
        """The phase in words, its share done over the whole job, and its time left."""
        text = progress.phase
        if progress.seconds_left is not None:
            text += f" · about {format_seconds(max(1.0, progress.seconds_left))} left"
        self.run_bar.progress.setValue(int(1000 * progress.fraction))
        self.run_bar.progress.setFormat(f"{job.label}: {text}")

    def _on_previews(self) -> None:
        # Each preview goes by its own job's plan, never by the worker's job of the moment: the
        # worker may have ended that run already (a busy UI thread takes them late), while its
        # end reaches this thread only after these previews (the bridge keeps the order).
        for index, (job_id, step, image) in self.worker.take_previews().items():
            plan = self._plan_of(job_id)
            if plan is None:
                continue
            request = plan.request
            total = request.sampling.steps
            tile = self._tile_index(plan, index)
            size = (request.sampling.width, request.sampling.height) if is_reference(index) else request.panel_size(index)
            if tile is not False:
                self.grid.show_preview(tile, image, step, total, size)

    def _finished(self, job: Job, wevent: WorkerEvent) -> None:
        entry = self.plans.get(job.id)
        if entry is None:
            return
        plan, session = entry
        try:
            record = session.record_run(plan, "finished")
        except SessionError as exc:
            self.host.show_message(f"The run finished but could not be filed: {exc}", True, "run")
            return
        self.host.clear_problem("run")
        if session is not self.session:
            return
        for index, image in wevent.images.items():
            tile = self._tile_index(plan, index)
            if tile is False:
                continue
            name = reference_file(reference_position(index)) if is_reference(index) else panel_file_name(index)
            self.grid.show_final(tile, image, "new", plan.folder / name)
        self.grid.refresh()
        made = len(record.generated)
        self.host.show_message(f"{job.label}: {made} panel(s) ready · {run_title(record)}")
        self.run_filed.emit(record.id)

    def forget_outcome(self) -> None:
        """The last job's failure or cancel no longer applies (another session, another place
        that makes pictures): the run bar says Ready and its banner goes. A running job keeps
        its progress."""
        self.host.clear_problem("run")
        self.host.clear_problem("plan")
        self.refused = ""
        if self.worker.current is None and not self.worker.pending:
            self.run_bar.progress.setValue(0)
            self.run_bar.progress.setFormat("Ready")

    def update_state(self) -> None:
        """Buttons, the queue count and the tiny-model warning, from the worker's state."""
        running = self.worker.current is not None
        pending = len(self.worker.pending)
        waiting = pending if running else max(0, pending - 1)  # the first one is starting
        busy = running or pending > 0
        self.run_bar.cancel_button.setEnabled(busy)
        self.run_bar.queue_label.setText(f"{waiting} waiting" if waiting else "")
        self.run_bar.generate_button.setText("Queue another" if busy else "Generate")
        self.run_bar.tiny_label.setVisible(self.uses_tiny())
        if not busy and self.run_bar.progress.format() == "Ready":
            self.run_bar.progress.setValue(0)
        self.running_changed.emit(busy)

