"""The recent sessions list (File → Open recent): ``recent-sessions.json`` in the config folder,
most recent first. A broken list is set aside and started again, never a reason not to start."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from .. import paths, userfiles
from . import folders
from .atomic import write_json_atomic

log = logging.getLogger(__name__)

RECENT_LIMIT = 10


def _recent_file() -> Path:
    return paths.config_dir() / "recent-sessions.json"


MAX_RECENT_BYTES = userfiles.MIB


def _read_recent() -> list[str]:
    """The remembered folders; a file that is not such a list is set aside (renamed .broken,
    as a broken desktop.json is) and the list starts again: it is never a reason not to start."""
    path = _recent_file()
    try:
        data = userfiles.read_json(path, MAX_RECENT_BYTES, within=paths.config_dir())
        items = data.get("sessions") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise userfiles.UnreadableFile('not a JSON object with a "sessions" list')
    except userfiles.UnreadableFile as exc:
        if not exc.missing:
            log.warning("ignoring unreadable %s (%s); set aside as %s", path, exc,
                        userfiles.set_aside(path).name)
        return []
    return [x for x in items if isinstance(x, str)]


def _is_session(folder: str) -> bool:
    try:
        return (Path(folder) / folders.SESSION_FILE).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL in it
        return False


def recent_sessions() -> list[Path]:
    """Recently saved or opened session folders that still exist, most recent first."""
    return [Path(p) for p in _read_recent() if _is_session(p)]


def remember_recent(folder: str | Path) -> None:
    """Put ``folder`` first in the recent sessions list (untitled sessions are not listed)."""
    folder = Path(folder).absolute()
    if folders.is_in_autosave_root(folder):
        return
    items = [str(folder)] + [p for p in _read_recent() if p != str(folder)]
    # A read-only config folder must not break saving a session.
    with contextlib.suppress(OSError):
        write_json_atomic(_recent_file(), {"sessions": items[:RECENT_LIMIT]})


def forget_recent(folder: str | Path) -> None:
    folder = str(Path(folder).absolute())
    items = [p for p in _read_recent() if p != folder]
    with contextlib.suppress(OSError):
        write_json_atomic(_recent_file(), {"sessions": items})
