"""Session folders on disk: load, save, save as, autosave, crash recovery (the recent sessions
list is :mod:`.recent`, re-exported here).

``session.json`` is always written atomically (temporary file, fsync, ``os.replace``): a crash
or kill at any instant leaves the old or the new file, never a broken one. Loading never
writes: a session that fails to load (broken JSON, newer schema, missing pictures) raises a
:class:`SessionLoadError` and its files stay exactly as they were.

File format::

    {"format": "stylealigned-session", "schema_version": 5, "app_version": "0.1.0",
     "saved": "2026-11-25T17:00:00+00:00",
     "style": {...}, "references": [...], "panels": [...], "settings": {...}, "board": {...},
     "characters": [...], "character_settings": {...}, "history": [...]}

Schema changes bump :data:`SCHEMA_VERSION` and add a step to :data:`MIGRATIONS`
(``MIGRATIONS[n]`` turns version-n data into version n+1); old files are migrated on load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__, userfiles
from ..temporaries import STALE_AFTER, with_default_folder_mode
from . import files, folders
from .atomic import remove_stale_temporaries, write_bytes_atomic
from .characters import CharacterSettings
from .errors import (
    MissingFilesError,
    SchemaTooNewError,
    SessionError,
    SessionLoadError,
    SessionSaveError,
)
from .model import Session
from .recent import forget_recent, recent_sessions, remember_recent

FORMAT = "stylealigned-session"
SCHEMA_VERSION = 5


def _several_references(data: dict[str, Any]) -> dict[str, Any]:
    """1 -> 2: the style's one ``active_reference`` (a picture id, or None for the generated
    reference) becomes a list of weighted ``sources``; a history run's ``style`` and
    ``reference_file`` become its list of ``references`` (spec section 11)."""
    style = data.get("style")
    if isinstance(style, dict) and "active_reference" in style:
        style = dict(style)
        style["sources"] = [{"picture": style.pop("active_reference"), "weight": 1.0}]
        data["style"] = style
    history = data.get("history")
    if isinstance(history, list):
        runs = []
        for run in history:
            if isinstance(run, dict) and "references" not in run:
                run = dict(run)
                reference = run.pop("style", None) or {"kind": "generated"}
                image = run.pop("reference_file", None)
                if isinstance(reference, dict):
                    reference = dict(reference, weight=1.0, image=image)
                run["references"] = [reference]
            runs.append(run)
        data["history"] = runs
    return data


def _panel_notes(data: dict[str, Any]) -> dict[str, Any]:
    """2 -> 3: panels gain ``notes`` and the session ``board`` (the default duration); both
    read as their defaults when absent, so the data is unchanged. The version is bumped so an
    older app says the session is newer instead of refusing the unknown fields."""
    return data


def _characters(data: dict[str, Any]) -> dict[str, Any]:
    """3 -> 4: the session gains its ``characters`` (none yet) and their ``character_settings``
    (spec section 13's defaults), written out so the file says what the set used."""
    data.setdefault("characters", [])
    data.setdefault("character_settings", CharacterSettings().to_dict())
    return data


def _run_characters(data: dict[str, Any]) -> dict[str, Any]:
    """4 -> 5: history runs gain the ``characters`` they used (their anchors' seeds and
    pictures) and their ``character_settings``; a run of an older file read as having none.
    The version is bumped so an older app says the session is newer."""
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _several_references, 2: _panel_notes, 3: _characters, 4: _run_characters}
"""``MIGRATIONS[n](data)`` returns the data of schema version n upgraded to version n + 1."""

BROKEN_SUFFIX = userfiles.BROKEN_SUFFIX
"""Added to the name of an autosave folder that cannot be read (see :func:`list_recoverable`)."""

log = logging.getLogger(__name__)


# --- reading --------------------------------------------------------------------------------


def migrate(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Upgrade session data to :data:`SCHEMA_VERSION`, one migration step at a time."""
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SessionLoadError(path, f"its schema_version is not valid ({version!r})")
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(path, version, SCHEMA_VERSION)
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SessionLoadError(path, f"no upgrade from session format {version} is known")
        data = step(dict(data))
        version += 1
        data["schema_version"] = version
    return data


MAX_SESSION_BYTES = 512 * userfiles.MIB
"""Far above any storyboard's session.json; a larger file is no session the app wrote."""


def read_session_data(folder: Path) -> dict[str, Any]:
    """The parsed, checked and migrated contents of ``folder/session.json``."""
    if not folder.is_dir():
        raise SessionLoadError(folder, "the folder does not exist")
    try:
        file = files.contained(folder, folders.SESSION_FILE)
    except files.ContainmentError as exc:
        raise SessionLoadError(folder, str(exc)) from None
    if not file.is_file():
        raise SessionLoadError(folder, f"there is no {folders.SESSION_FILE} in it")
    try:
        text = userfiles.read_text(file, MAX_SESSION_BYTES, within=folder)
    except userfiles.UnreadableFile as exc:
        raise SessionLoadError(folder, f"{folders.SESSION_FILE} cannot be read: {exc}") from None
    try:
        data = userfiles.parse_json(text)
    except userfiles.UnreadableFile as exc:
        raise SessionLoadError(folder, f"{folders.SESSION_FILE} is damaged: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionLoadError(folder, f"{folders.SESSION_FILE} is not a StyleAligned session file")
    return migrate(data, folder)


def _session_from(data: dict[str, Any], folder: Path, rng: random.Random | None = None) -> Session:
    try:
        return Session.from_dict(data, folder, rng=rng)
    except SessionError as exc:
        raise SessionLoadError(folder, f"{folders.SESSION_FILE} has a bad value: {exc}") from None
    except RecursionError:
        raise SessionLoadError(folder, f"{folders.SESSION_FILE} is nested too deeply") from None


def load_session(
    path: str | Path, allow_missing: bool = False, *, rng: random.Random | None = None,
    read_only: bool = False,
) -> Session:
    """Open a session folder (or its session.json).

    Raises :class:`SessionLoadError` (or its subclasses :class:`SchemaTooNewError`,
    :class:`MissingFilesError`) with a message for the user. With ``allow_missing`` a session
    whose gallery or control pictures are gone still opens; ``session.missing_files()`` lists
    them; history runs whose folder is gone (listed as missing too) are dropped. Nothing on disk is written but this process's ``session.lock``: a session open in
    another running app raises :class:`~.folders.SessionLockedError` (a :class:`SessionError`),
    unless ``read_only``, which opens it without the lock; such a session is never written
    (``write_session`` refuses; Save As makes a copy that is the app's own).
    """
    folder = folders.session_folder_for(path).absolute()
    data = read_session_data(folder)
    session = _session_from(data, folder, rng)
    missing = session.missing_files()
    if missing and not allow_missing:
        raise MissingFilesError(folder, missing)
    session.drop_runs_without_folder()  # opened anyway: such runs have nothing left to show
    if read_only:
        session._read_only = True
    else:
        folders.acquire_lock(folder)
    if not session.untitled:
        remember_recent(folder)
    return session


# --- writing --------------------------------------------------------------------------------


def session_json(session: Session) -> dict[str, Any]:
    """The contents of session.json for ``session``."""
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "app_version": __version__,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **session.to_dict(),
    }


def _write(session: Session, folder: Path) -> Path:
    file = folder / folders.SESSION_FILE
    try:
        data = json.dumps(session_json(session), indent=2, ensure_ascii=False, allow_nan=False)
        encoded = (data + "\n").encode("utf-8")
    except UnicodeEncodeError:
        raise SessionSaveError(file, "the session holds text that is not valid Unicode") from None
    except (TypeError, ValueError) as exc:  # a value that is not plain JSON: a bug, not user input
        raise SessionSaveError(file, f"the session holds a value JSON cannot store ({exc})") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = files.contained(folder, folders.SESSION_FILE)
        remove_stale_temporaries(target.parent, folders.SESSION_FILE)
        write_bytes_atomic(target, encoded)
    except files.ContainmentError as exc:
        raise SessionSaveError(file, str(exc)) from None
    except OSError as exc:
        raise SessionSaveError(file, exc.strerror or str(exc)) from None
    return file


def write_session(session: Session) -> Path:
    """Write session.json into the session's folder now (what autosave does); returns its path."""
    if session.read_only:
        raise SessionSaveError(session.folder, "it is open read-only (another window has it open); "
                                               "use Save As to keep your changes in a copy")
    if session.untitled:
        session.ensure_folder()
    file = _write(session, session.folder)
    session._mark_saved()
    return file


def autosave_session(session: Session) -> bool:
    """Write the session if it has unsaved changes. Returns whether it wrote."""
    if not session.dirty or session.read_only:
        return False
    write_session(session)
    return True


def save_session(session: Session) -> Path:
    """An explicit save: write session.json, drop unused picture copies, remember as recent.

    An untitled session has no name yet: use :func:`save_session_as`.
    """
    if session.untitled:
        raise SessionError("this session has no name yet: use Save As to choose a folder")
    file = write_session(session)
    collect_garbage(session)
    remember_recent(session.folder)
    return file


def collect_garbage(session: Session) -> list[str]:
    """Delete copies in references/ and controls/ that nothing in ``session`` refers to.

    Called by an explicit save (not by autosave, so an undo-like re-add stays cheap).
    Returns the session-relative paths removed.
    """
    return files.collect_garbage(session.folder, session.referenced_files())


def save_session_as(session: Session, folder: str | Path) -> Path:
    """Save the session into a new folder (``.stylealigned`` is added to a name without it).

    The pictures, run outputs and inversion cache are copied along (files still being
    written, ``*.tmp``, are not: a run that writes them finishes into the old folder and
    ``record_run`` brings its results over). The target must not exist or be an
    empty folder. An untitled session's autosave folder is deleted afterwards; a titled
    session's old folder is left as it was. Returns the new session.json path.
    """
    target = folders.with_suffix(folder).absolute()
    old = session.folder
    if target == old.absolute():
        return save_session(session)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SessionSaveError(target, "that folder already exists and is not empty; choose a new name")
    if folders.is_in_autosave_root(target):
        raise SessionSaveError(target, "choose a folder outside the app's autosave area")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(target)
        staging = with_default_folder_mode(
            Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent)))
    except OSError as exc:
        raise SessionSaveError(target, exc.strerror or str(exc)) from None
    try:
        for sub in (*folders.PICTURE_FOLDERS, folders.OUTPUTS, folders.CACHE):
            try:
                source = files.folder_inside(old, sub)
            except files.ContainmentError:
                continue  # a link out of the session: nothing of it is copied
            if source is not None:
                files.copy_regular_files(source, staging / sub)
        _write(session, staging)
        if target.is_dir():
            target.rmdir()  # empty (checked above); a rename cannot replace a folder everywhere
        os.rename(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise SessionSaveError(target, exc.strerror or str(exc)) from None
        raise
    file = target / folders.SESSION_FILE
    was_untitled = session.untitled
    if not session.read_only:
        folders.release_lock(old)
    session._read_only = False
    folders.write_lock(target)
    session._mark_saved(target, untitled=False)
    collect_garbage(session)
    if was_untitled and folders.is_in_autosave_root(old):
        if session.runs_in_progress:
            # a running job still writes there: record_run() moves its folder over and
            # the old folder goes once the last running job is recorded
            session.leave_folder(old)
        else:
            shutil.rmtree(old, ignore_errors=True)
    remember_recent(target)
    return file


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.saving-"


def _remove_stale_staging(target: Path) -> None:
    """Remove half-copied folders that a killed Save As to ``target`` left beside it."""
    for stale in target.parent.glob(_staging_prefix(target) + "*"):
        with contextlib.suppress(OSError):
            if stale.is_dir() and not stale.is_symlink() and \
                    time.time() - stale.stat().st_mtime > STALE_AFTER:
                shutil.rmtree(stale, ignore_errors=True)


def discard_untitled(session: Session) -> None:
    """Delete an untitled session's autosave folder (the user chose not to keep it)."""
    if session.untitled and folders.is_in_autosave_root(session.folder):
        shutil.rmtree(session.folder, ignore_errors=True)


# --- crash recovery -------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoverableSession:
    """An untitled session left behind by a run of the app that ended without saving it.

    ``error`` is set when it cannot be opened (it can still be discarded).
    """

    folder: Path
    modified: datetime
    panels: int = 0
    references: int = 0
    runs: int = 0
    first_prompts: tuple[str, ...] = ()
    error: str | None = None

    @property
    def summary(self) -> str:
        """One line for a "restore unsaved work?" dialog."""
        when = self.modified.astimezone().strftime("%Y-%m-%d %H:%M")
        if self.error:
            return f"Untitled session from {when} (cannot be opened: {self.error})"
        what = f"{self.panels} panel(s), {self.references} picture(s), {self.runs} run(s)"
        prompts = "; ".join(self.first_prompts)
        return f"Untitled session from {when}: {what}" + (f" - {prompts}" if prompts else "")


def list_recoverable() -> list[RecoverableSession]:
    """Untitled sessions in the autosave area whose app died with them open (their lock names
    a process that no longer runs), newest state first. A session closed cleanly released its
    lock and is never offered."""
    found = []
    for folder in folders.autosave_root().iterdir():
        if not folder.is_dir() or not folder.name.endswith(folders.SUFFIX):
            continue
        if folders.read_lock(folder) is None or folders.owner_alive(folder):
            continue  # closed cleanly (the lock was released), or still open
        try:
            file = folder / folders.SESSION_FILE
            stamp = (file if file.is_file() else folder).stat().st_mtime
            modified = datetime.fromtimestamp(stamp, timezone.utc)
            session = _session_from(read_session_data(folder), folder)
        except (SessionLoadError, OSError) as exc:
            reason = exc.reason if isinstance(exc, SessionLoadError) else (exc.strerror or str(exc))
            found.append(_set_aside(folder, reason))
            continue
        found.append(RecoverableSession(
            folder, modified,
            panels=len(session.panels),
            references=len(session.references),
            runs=len(session.history),
            first_prompts=tuple(p.prompt for p in session.panels[:3] if p.prompt),
        ))
    return sorted(found, key=lambda r: r.modified, reverse=True)


def _set_aside(folder: Path, reason: str) -> RecoverableSession:
    """Rename a broken autosave folder so that it is reported once and never blocks a start
    again (its files stay, for the user or a bug report)."""
    log.warning("setting aside the broken autosave %s: %s", folder, reason)
    target = userfiles.set_aside(folder)
    modified = datetime.now(timezone.utc)
    return RecoverableSession(target, modified, error=f"{reason} (set aside as {target.name})")


def recover_session(entry: RecoverableSession | Path) -> Session:
    """Open a recoverable session (it stays untitled until saved under a name)."""
    folder = entry.folder if isinstance(entry, RecoverableSession) else Path(entry)
    return load_session(folder, allow_missing=True)


def discard_recoverable(entry: RecoverableSession | Path) -> None:
    """Delete a recoverable session's folder (only folders in the autosave area)."""
    folder = entry.folder if isinstance(entry, RecoverableSession) else Path(entry)
    if not folders.is_in_autosave_root(folder):
        raise SessionError(f"{folder} is not an autosaved untitled session")
    shutil.rmtree(folder, ignore_errors=True)


__all__ = [
    "FORMAT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "RecoverableSession",
    "autosave_session",
    "collect_garbage",
    "discard_recoverable",
    "discard_untitled",
    "forget_recent",
    "list_recoverable",
    "load_session",
    "migrate",
    "read_session_data",
    "recent_sessions",
    "recover_session",
    "remember_recent",
    "save_session",
    "save_session_as",
    "session_json",
    "write_bytes_atomic",
    "write_session",
]
