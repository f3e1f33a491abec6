"""Reference pictures coming in: the files of dropped folders, each picture read and checked in
the background pool and added to the session on the UI thread in the order given, and the
summary of those that could not be added (see :mod:`.reference_gallery`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ...session.errors import SessionError
from ...session.model import Reference, Session
from ...session.pictures import PreparedPicture
from ..support import import_error
from ..threads import BackgroundPool


def expand_folders(paths: list[str]) -> list[Path]:
    """Files as given, and the picture files inside folders (recursively, hidden ones skipped)."""
    from ...session.pictures import picture_files

    return picture_files(paths)


def describe_errors(errors: list[str], limit: int = 3) -> str:
    """The banner's line for the files an import could not add (the first ``limit`` named)."""
    if len(errors) == 1:
        return f"Not added: {errors[0]}"
    shown = "; ".join(errors[:limit]) + ("; …" if len(errors) > limit else "")
    return f"{len(errors)} files were not added: {shown}"


@dataclass
class PictureImport:
    """Pictures being prepared in the background and added in order.

    ``items`` are (file name, prepare function, its arguments); ``results`` holds what came
    back for items not added yet (a PreparedPicture or the exception), by position.
    """

    session: Session
    items: list[tuple[str, Callable[..., PreparedPicture], tuple]]
    results: dict[int, Any] = field(default_factory=dict)
    next: int = 0
    added: list[Reference] = field(default_factory=list)
    present: list[Reference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.next >= len(self.items)

    def add_ready(self, position: int, outcome: Any) -> None:
        """Keep what came back for the item at ``position`` (a PreparedPicture or the exception)
        and add, in the given order, every picture whose turn has come (one session change)."""
        self.results[position] = outcome
        with self.session.batch():
            while self.next in self.results:
                ready = self.results.pop(self.next)
                name = self.items[self.next][0]
                self.next += 1
                if isinstance(ready, BaseException):
                    self.errors.append(import_error(name, ready))
                    continue
                known = self.session.reference(ready.content_id) is not None
                try:
                    reference = self.session.add_prepared(ready)
                except (SessionError, OSError) as exc:
                    self.errors.append(import_error(name, exc))
                    continue
                (self.present if known else self.added).append(reference)


class PictureImporter(QObject):
    """Runs one :class:`PictureImport` at a time: pictures given while it runs join it."""

    progressed = Signal(object)
    """The running PictureImport, after it grew or added pictures."""
    finished = Signal(object)
    """The PictureImport whose every picture was added or refused."""

    def __init__(self, pool: BackgroundPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.job: PictureImport | None = None

    def add(self, session: Session,
            items: list[tuple[str, Callable[..., PreparedPicture], tuple]]) -> None:
        """Prepare ``items`` (file name, prepare function, its arguments) in the pool."""
        job = self.job
        if job is None:
            job = self.job = PictureImport(session, [])
        first = len(job.items)
        job.items.extend(items)
        for position, (_name, prepare, args) in enumerate(items, start=first):
            self.pool.submit(prepare, *args, on_done=lambda result, error, job=job, i=position:
                             self._prepared(job, i, result, error))
        self.progressed.emit(job)

    def stop(self) -> None:
        """Drop the running import: pictures still being read are not added."""
        self.job = None

    def _prepared(self, job: PictureImport, position: int, result: Any,
                  error: BaseException | None) -> None:
        """On the UI thread: one picture is ready (or refused); add what is next in order."""
        if job is not self.job:
            return  # the import was dropped (another session)
        job.add_ready(position, result if error is None else error)
        if job.done:
            self.job = None
            self.finished.emit(job)
        else:
            self.progressed.emit(job)
