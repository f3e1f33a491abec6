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
import sys
from datetime import datetime
from pathlib import Path

from .. import paths

SUFFIX = ".stylealigned"
SESSION_FILE = "session.json"
REFERENCES = "references"
CONTROLS = "controls"
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


def write_lock(folder: Path) -> None:
    """Mark ``folder`` as owned by this process."""
    data = {"pid": os.getpid(), "host": socket.gethostname()}
    (folder / LOCK_FILE).write_text(json.dumps(data), encoding="utf-8")


def release_lock(folder: Path) -> None:
    """Remove this process's lock from ``folder`` (a lock of another process is left alone)."""
    lock = folder / LOCK_FILE
    owner = read_lock(folder)
    if owner is not None and owner.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def read_lock(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def owner_alive(folder: Path) -> bool:
    """Whether the process named in ``folder``'s lock still runs (on this machine)."""
    owner = read_lock(folder)
    if owner is None or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        # os.kill(pid, 0) would terminate the process on Windows; assume a stale lock.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True
