"""Temporary files of atomic writes: their names, and removing the ones a killed write left.

An atomic write puts its bytes in a temporary file beside the target, then renames it. A kill
leaves the temporary behind; the next write into the same folder removes it, but only when it
is this process's own (the name carries the process id) or older than :data:`STALE_AFTER`
seconds: another process writing the same folder right now keeps its file.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

STALE_AFTER = 60.0
"""Seconds after which another process's temporary counts as left behind by a kill."""


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
