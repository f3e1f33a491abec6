"""Reading files that anyone could have put in the app's way: the one way to read them.

A session folder that was shared, unzipped or synced, the config folder, a dropped picture, a
token file: any of them may be a FIFO (opening it for reading waits for a writer forever), a
device (``/dev/zero`` never ends), a huge file, a link out of its folder, or JSON nested or
numbered so that parsing it raises something other than a decoding error. :func:`read_bytes`,
:func:`read_text` and :func:`read_json` (and :func:`open_regular`, for a caller that reads
only part of a file) read regular files only, up to a size limit the caller
names, never through a link out of ``within`` (when given), without ever blocking; each failure
is a :class:`UnreadableFile` (an ``OSError``) whose message says what is wrong, in words, without
the path (the caller names the file as it shows it).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

KIB = 1024
MIB = 1024 * KIB

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


class UnreadableFile(OSError):
    """A file that is not read: missing, not a regular file, too big, a link out of its folder,
    not UTF-8, or not JSON. ``str()`` is the reason in words."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
        """The file does not exist (callers that treat a missing file as empty check this)."""

    def __str__(self) -> str:
        return self.reason


def _size(limit: int) -> str:
    return f"{limit / MIB:g} MB" if limit >= MIB else f"{limit / KIB:g} KB" if limit >= KIB else f"{limit} bytes"


def _real_path_within(path: Path, within: Path) -> Path:
    """``path``'s real path, which must lie inside ``within``'s real path."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(within)):
        raise UnreadableFile("a link to a file outside its folder (never followed)")
    return real


def open_regular(path: str | os.PathLike, limit: int, within: str | os.PathLike | None = None) -> BinaryIO:
    """The regular file ``path`` opened for reading (binary), for a caller that reads only part
    of it (a PNG's text chunks); the checks of :func:`read_bytes`, which reads it whole."""
    path = Path(path)
    flags = os.O_RDONLY | _NONBLOCK | _BINARY
    if within is not None:
        path = _real_path_within(path, Path(within))
        flags |= _NOFOLLOW  # the real path has no link left; one put there since is refused
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnreadableFile("no such file", missing=True) from None
    except IsADirectoryError:
        raise UnreadableFile("a folder, not a file") from None
    except OSError as error:
        raise UnreadableFile(f"cannot be read ({error.strerror or error})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableFile("a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("not a regular file (a pipe, a device or a socket)")
        if info.st_size > limit:
            raise UnreadableFile(f"too big ({info.st_size:,} bytes; at most {_size(limit)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, limit: int, within: str | os.PathLike | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Raises :class:`UnreadableFile` when it is missing, a folder, a FIFO, a device or a socket
    (refused at once, never waited on), larger than ``limit``, or (with ``within``) reached
    through a link that leads out of the folder ``within``.
    """
    with open_regular(path, limit, within) as handle:
        try:
            data = handle.read(limit + 1)  # the size may have grown since it was checked
        except OSError as error:
            raise UnreadableFile(f"cannot be read ({error.strerror or error})") from None
    if len(data) > limit:
        raise UnreadableFile(f"too big (more than {_size(limit)})")
    return data


def read_text(path: str | os.PathLike, limit: int, within: str | os.PathLike | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a leading BOM, as Windows editors write, dropped)."""
    data = read_bytes(path, limit, within)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile("not a UTF-8 text file") from None


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` whose every failure (bad syntax, nesting deep enough to exhaust the stack,
    a number of thousands of digits) is one :class:`UnreadableFile` saying which."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UnreadableFile(f"not valid JSON (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise UnreadableFile("not valid JSON (nested too deeply)") from None
    except (ValueError, TypeError) as error:  # Python's limit on digits of an integer
        raise UnreadableFile(f"not valid JSON ({error})") from None


def read_json(path: str | os.PathLike, limit: int, within: str | os.PathLike | None = None) -> Any:
    """The JSON value in the file (:func:`read_text`, then :func:`parse_json`)."""
    return parse_json(read_text(path, limit, within))


BROKEN_SUFFIX = ".broken"
"""Added to the name of a file or folder of the app's own that cannot be read."""


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a broken file or folder of the app's own (a settings file, an autosave) to
    ``<name>.broken`` (``.broken-2``… when taken), so that it is reported once and never stops
    a start again, its contents kept for the user or a bug report. Returns where it is now
    (``path`` itself when it cannot be renamed)."""
    path = Path(path)
    target = path.with_name(path.name + BROKEN_SUFFIX)
    n = 1
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}{BROKEN_SUFFIX}-{n}")
    try:
        os.rename(path, target)
    except OSError:
        return path
    return target
