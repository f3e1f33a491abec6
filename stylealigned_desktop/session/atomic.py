"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A crash or kill at any instant leaves either the old file or the complete new one, never a
half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from .. import temporaries
from ..temporaries import with_default_mode

TMP_PREFIX = ".tmp-"
CHUNK = 64 * 1024


def _write_payload(handle: BinaryIO, data: bytes) -> None:
    """Write ``data`` to the open temporary file.

    Kept as its own function so tests can make a write fail halfway (monkeypatch it to write
    part of ``data`` and raise) and check that the previous file survives.
    """
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        handle.write(view[start : start + CHUNK])


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically. On any failure the old file is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(path.name), dir=path.parent)
    with_default_mode(fd)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_payload(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def _prefix(name: str) -> str:
    """The start of the name of this process's temporaries for ``name``."""
    return temporaries.temporary_prefix(f"{TMP_PREFIX}{name}.")


def remove_stale_temporaries(folder: Path, name: str) -> None:
    """Delete temporaries of ``name`` left behind by a write that was killed: this process's
    own, and other processes' only when older than a minute (another app writing the same
    session right now keeps its temporary)."""
    temporaries.remove_stale_temporaries(folder, f"{TMP_PREFIX}{name}.*", own_prefix=_prefix(name))
