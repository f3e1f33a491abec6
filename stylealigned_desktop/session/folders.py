"""Names and places of session folders: the layout, untitled sessions, the owner lock.

An untitled session lives in ``paths.data_dir()/autosave/untitled-<time>-<hex>.stylealigned``
until it is saved under a name, so its pictures and autosaves are never lost. While a session
is open there, a ``session.lock`` file names the process that owns it; crash recovery skips
folders whose owner is still running.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from datetime import datetime
from pathlib import Path

import psutil

from .. import paths, userfiles
from .errors import SessionError

SUFFIX = ".stylealigned"
SESSION_FILE = "session.json"
REFERENCES = "references"
CONTROLS = "controls"
CHARACTERS = "characters"
"""Copies of the characters' anchor pictures (spec section 13)."""
PICTURE_FOLDERS = (REFERENCES, CONTROLS, CHARACTERS)
"""The folders of picture copies the session refers to (save-as copies them, a save tidies them)."""
OUTPUTS = "outputs"
CACHE = "cache"
LOCK_FILE = "session.lock"


def ignore_temporaries(folder: str, names: list[str]) -> set[str]:
    """For ``shutil.copytree(ignore=...)``: skip files still being written (``*.tmp``, ``.tmp-*``)."""
    return {n for n in names if n.endswith(".tmp") or n.startswith(".tmp")}


def autosave_root() -> Path:
    """Where untitled sessions are kept (created on demand)."""
    root = paths.data_dir() / "autosave"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_untitled_folder() -> Path:
    """A fresh, unused folder path for an untitled session (not created yet)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return autosave_root() / f"untitled-{stamp}-{secrets.token_hex(3)}{SUFFIX}"


def is_in_autosave_root(folder: Path) -> bool:
    """Whether ``folder`` is an untitled session's folder (directly inside the autosave root)."""
    try:
        return Path(folder).resolve().parent == autosave_root().resolve()
    except OSError:
        return False


def session_folder_for(path: str | Path) -> Path:
    """The session folder named by ``path``: the folder itself or its session.json."""
    path = Path(path).expanduser()
    return path.parent if path.name == SESSION_FILE else path


def is_session_folder(path: str | Path) -> bool:
    """Whether ``path`` is a session folder (named ``*.stylealigned``, or holding a session.json)."""
    path = Path(path)
    return path.is_dir() and (path.name.endswith(SUFFIX) or (path / SESSION_FILE).is_file())


def with_suffix(folder: str | Path) -> Path:
    """``folder`` with the ``.stylealigned`` ending added when it has none."""
    folder = Path(folder).expanduser()
    return folder if folder.name.endswith(SUFFIX) else folder.with_name(folder.name + SUFFIX)


def title_of(folder: Path) -> str:
    name = folder.name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


# --- owner lock ------------------------------------------------------------------------------
# A session folder that is open carries session.lock: the owner's process id, host name and
# process start time. The start time tells a live owner from a process id the system has since
# given to another program (psutil reads it on every OS), so a lock left by a crash is stale.
# A session folder may come from anyone (shared, unzipped, synced): a lock that is not a small,
# well-formed lock (a link, a folder, a FIFO, a huge file, JSON without pid and host) is stale,
# and write_lock, the one writer of locks, replaces whatever is there and never writes through it.

MAX_LOCK_BYTES = 4 * userfiles.KIB


class SessionLockedError(SessionError):
    """The session is open in another running copy of the app."""

    def __init__(self, folder: Path, owner: dict) -> None:
        self.folder = Path(folder)
        self.owner = owner
        where = "" if owner.get("host") == socket.gethostname() else f" on {owner.get('host')}"
        super().__init__(
            f"{title_of(self.folder)} is open in another StyleAligned Desktop window{where} "
            f"(process {owner.get('pid')}); open it read-only or save a copy"
        )


def _this_process() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid())}


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def write_lock(folder: Path) -> None:
    """Mark ``folder`` as owned by this process: the only function that writes a lock.

    Whatever ``session.lock`` is there (a file, a link, a FIFO, an empty folder) is removed,
    never written through, and the lock is created anew, exclusively (``O_EXCL``, and
    ``O_NOFOLLOW`` where there is one). A kill between the two leaves an empty lock, which is
    stale by its form. A :class:`SessionError` when it cannot be written.
    """
    lock = folder / LOCK_FILE
    data = json.dumps(_this_process()).encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        for attempt in range(3):  # another app may put its lock there between the two steps
            if lock.is_dir() and not lock.is_symlink():
                lock.rmdir()  # only when empty
            else:
                lock.unlink(missing_ok=True)
            try:
                fd = os.open(lock, flags, 0o666)  # the umask applies, as to any new file
            except FileExistsError:
                if attempt == 2:
                    raise
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return
    except OSError as exc:
        raise SessionError(
            f"the session's lock {lock} cannot be written ({exc.strerror or exc}); "
            f"if {LOCK_FILE} there is a folder, remove it"
        ) from None


def acquire_lock(folder: Path) -> None:
    """Take ``folder`` for this process; :class:`SessionLockedError` if another running app
    holds it (a stale lock, left by a crash, is taken over)."""
    owner = other_owner(folder)
    if owner is not None:
        raise SessionLockedError(folder, owner)
    write_lock(folder)


def other_owner(folder: Path) -> dict | None:
    """The lock of the running app, other than this process, that holds ``folder``; None if no
    other app holds it (no lock, this process's lock, or a stale lock left by a crash)."""
    owner = read_lock(folder)
    if owner is not None and owner.get("pid") != os.getpid() and owner_alive(folder):
        return owner
    return None


def release_lock(folder: Path) -> None:
    """Remove this process's lock from ``folder`` (a lock of another process is left alone)."""
    lock = folder / LOCK_FILE
    owner = read_lock(folder)
    if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        lock.unlink(missing_ok=True)


def read_lock(folder: Path) -> dict | None:
    """The lock in ``folder``; None when there is none or it is stale by its form (a link, not
    a regular file, over :data:`MAX_LOCK_BYTES`, not JSON, or without a process id and host)."""
    lock = folder / LOCK_FILE
    if lock.is_symlink():
        return None
    try:
        data = userfiles.read_json(lock, MAX_LOCK_BYTES, within=folder)
    except userfiles.UnreadableFile:
        return None
    return data if _well_formed(data) else None


def _well_formed(lock: object) -> bool:
    if not isinstance(lock, dict):
        return False
    pid, host, started = lock.get("pid"), lock.get("host"), lock.get("started")
    return (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0
            and isinstance(host, str) and bool(host)
            and (started is None or (isinstance(started, (int, float)) and not isinstance(started, bool))))


def owner_alive(folder: Path) -> bool:
    """Whether the process named in ``folder``'s lock still runs. A lock of another computer
    counts as alive (it cannot be checked from here); a process id now used by a program that
    started later than the lock's owner does not."""
    owner = read_lock(folder)
    if owner is None:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    started = _start_time(pid)
    if started is None:
        return False
    recorded = owner.get("started")
    if isinstance(recorded, bool) or not isinstance(recorded, (int, float)):
        return True  # an older lock without a start time: the process id alone
    return abs(started - recorded) < 1.0
