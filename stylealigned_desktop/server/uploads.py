"""The server's store of uploaded pictures: files named by the SHA-256 of their bytes, in one
folder, kept within a size and an age. Needs no Ray (the ingress calls it in a worker thread).

A picture's modification time is when it was last uploaded or used (:func:`mark_used`), so the
store forgets the least recently used pictures first. A set that is running has read its pictures
already; a client whose picture was forgotten uploads it again (it asks ``HEAD`` before a set).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from .wire import SHA256

STALE_PART_S = 3600.0
"""An unfinished upload (``.SHA.PID.part``) older than this is left over from a crash."""


def mark_used(path: Path) -> None:
    """Record that a stored picture was used now (it goes last in the line to be forgotten)."""
    with contextlib.suppress(OSError):  # forgotten meanwhile: the client uploads it again
        os.utime(path)


def prune_uploads(folder: Path, max_bytes: int, max_age_s: float, keep: str | None = None,
                  now: float | None = None) -> list[str]:
    """Delete pictures unused for ``max_age_s``, then the least recently used until the store
    holds at most ``max_bytes``; never ``keep`` (the picture just uploaded). Returns the names
    deleted. Files that are not pictures of the store are left alone, but for old unfinished
    uploads."""
    now = time.time() if now is None else now
    pictures = []
    for entry in os.scandir(folder):
        try:
            stat = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if SHA256.match(entry.name) and entry.is_file(follow_symlinks=False):
            pictures.append((stat.st_mtime, entry.name, stat.st_size))
        elif entry.name.endswith(".part") and now - stat.st_mtime > STALE_PART_S:
            _remove(folder / entry.name)
    pictures.sort()  # oldest use first
    total = sum(size for _, _, size in pictures)
    deleted = []
    for used, name, size in pictures:
        if name == keep:
            continue
        if now - used <= max_age_s and total <= max_bytes:
            break
        if _remove(folder / name):
            deleted.append(name)
        total -= size
    return deleted


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
