"""Set-consistency scores of finished runs, computed in the worker (see ``threads/scoring.py``).

Only with the DINO model on this computer (else the history shows how to get it); a failure
becomes the history's hint, never a dialog.
"""

from __future__ import annotations

import contextlib
import logging

from PySide6.QtCore import QObject, Signal

from ...session.errors import SessionError
from ..grid import HistoryView
from ..threads import (
    ConsistencyOutcome,
    EngineWorker,
    Task,
    dino_missing,
    dino_source,
    score_pictures,
)
from .host import Host

log = logging.getLogger(__name__)


class ConsistencyController(QObject):
    dino_source_changed = Signal(str)
    """The configured DINO source (empty: the default) after :meth:`set_dino_source`."""
    dino_folder_wanted = Signal()
    """The artist asked, from the history's help, to point to a DINO folder."""

    def __init__(self, host: Host, worker: EngineWorker, history: HistoryView,
                 parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.worker = worker
        self.history = history
        self.closing = False
        history.consistency_help_requested.connect(self.explain)

    def _dino(self) -> str:
        return dino_source(self.host.config.dino_model)

    def score_run(self, run_id: str) -> bool:
        """Compute a finished run's set consistency in the worker and file it in the session.

        False when there is nothing to score (not finished, fewer than 2 pictures).
        """
        session = self.host.session
        if session is None or self.closing:
            return False
        record = session.run(run_id)
        paths = [session.path(relative) for _, relative in record.images()]
        if record.status != "finished" or len(paths) < 2:
            return False
        source = self._dino()

        def done(task: Task) -> None:
            if session is not self.host.session:
                return  # another session by now: its history is not shown
            if task.error is not None:
                log.warning("scoring run %s failed: %s", run_id, task.error)
                self.history.set_consistency_problem(
                    f"The consistency score of the run {run_id} could not be computed: "
                    f"{task.error}", missing_model=False)
                return
            outcome: ConsistencyOutcome = task.result
            if outcome.missing is not None:
                self.history.set_consistency_problem(outcome.missing)
                return
            self.history.set_consistency_problem(None)
            with contextlib.suppress(SessionError):  # the run was deleted meanwhile
                session.set_run_consistency(run_id, outcome.score)

        self.worker.run_task(lambda: score_pictures(paths, source), done)
        return True

    def check_model(self) -> None:
        """Find out in the worker whether the DINO model is here; the history's hint says."""
        if self.closing:
            return
        source = self._dino()

        def done(task: Task) -> None:
            if source != self._dino():
                return  # the setting changed again meanwhile
            if task.error is not None:
                self.history.set_consistency_problem(task.error, missing_model=False)
            else:
                self.history.set_consistency_problem(task.result)

        self.worker.run_task(lambda: dino_missing(source), done)

    def set_dino_source(self, source: str) -> None:
        """Use ``source`` (hub id or folder; empty: the default) for consistency scores."""
        self.host.config.dino_model = source.strip()
        self.host.save_config()
        self.dino_source_changed.emit(self.host.config.dino_model)
        self.check_model()
        self.host.show_message(f"Consistency scores use {self._dino()}")

    def explain(self) -> None:
        """The help behind the history's hint: what is missing, and a way to point to it."""
        problem = self.history.consistency_problem
        if problem is None:
            return
        choice = self.host.ask("Consistency scores", problem, ["Choose a folder…", "Close"],
                               default="Close")
        if choice == "Choose a folder…":
            self.dino_folder_wanted.emit()
