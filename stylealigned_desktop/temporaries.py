"""Temporary files of atomic writes: their names, and removing the ones a killed write left.

An atomic write puts its bytes in a temporary file beside the target, then renames it. A kill
leaves the temporary behind; the next write into the same folder removes it, but only when it
is this process's own (the name carries the process id) or older than :data:`STALE_AFTER`
seconds: another process writing the same folder right now keeps its file. A temporary
(``mkstemp`` makes it 0600) gets the mode the user's umask gives new files before it takes the
target's name (:func:`with_default_mode`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STALE_AFTER = 60.0
"""Seconds after which another process's temporary counts as left behind by a kill."""


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


UMASK = _umask()
"""This process's umask, read once at start-up."""
NEW_FILE_MODE = 0o666 & ~UMASK
"""The mode ``open()`` gives a new file under the umask."""
NEW_FOLDER_MODE = 0o777 & ~UMASK
"""The mode ``mkdir()`` gives a new folder under the umask."""


def with_default_mode(fd: int) -> int:
    """Give a temporary file (``tempfile.mkstemp`` makes them 0600) the mode a plain new file
    gets, before it becomes a session's or a run's file: those respect the user's umask like
    the rest of their files. Returns ``fd``."""
    if hasattr(os, "fchmod"):  # POSIX; Windows has no such modes
        os.fchmod(fd, NEW_FILE_MODE)
    return fd


def with_default_folder_mode(folder: Path) -> Path:
    """The same for a temporary folder (``tempfile.mkdtemp`` makes them 0700) that becomes a
    session folder. Returns ``folder``."""
    if os.name == "posix":
        os.chmod(folder, NEW_FOLDER_MODE)
    return folder


def temporary_prefix(prefix: str) -> str:
    """``prefix`` + this process's id + ``.``: the start of a temporary's name we own."""
    return f"{prefix}{os.getpid()}."


def remove_stale_temporaries(folder: Path, pattern: str, *, own_prefix: str | None = None) -> list[Path]:
    """Delete temporaries in ``folder`` matching the glob ``pattern`` that are this process's
    (their name starts with ``own_prefix``) or untouched for :data:`STALE_AFTER` seconds.
    Links and folders are never touched. Returns what was removed."""
    removed = []
    now = time.time()
    for path in Path(folder).glob(pattern):
        with contextlib.suppress(OSError):
            info = path.lstat()
            own = own_prefix is not None and path.name.startswith(own_prefix)
            if path.is_symlink() or not path.is_file():
                continue
            if own or now - info.st_mtime > STALE_AFTER:
                path.unlink()
                removed.append(path)
    return removed


def new_temporary(path: Path) -> str:
    """A new, empty temporary file beside ``path`` (``.NAME.<pid>.XXXX.tmp``)."""
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(f".{path.name}."), suffix=".tmp", dir=path.parent)
    os.close(with_default_mode(fd))  # the user's umask, not mkstemp's 0600
    return tmp


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """``write(temporary)`` fills a :func:`new_temporary` beside ``path``, which then takes
    ``path``'s name; nothing is left if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

