"""The desktop app's own remembered choices: model, DINO model, recent sessions, window layout.

One JSON file in the platformdirs config folder (``desktop.json``), written atomically. A broken
file is set aside (``desktop.json.broken``) and defaults are used: preferences are never a reason
for the app not to start.

Two apps can run at once (the second one opens the first one's session read-only, or not at all)
and share this file. Each app writes only what it changed since it read the file, on top of what
is there now: a quitting app never puts back its stale copy of what another app wrote since.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ... import userfiles
from ...paths import config_dir

log = logging.getLogger(__name__)

FILE_NAME = "desktop.json"
MAX_FILE_BYTES = userfiles.MIB


@dataclass
class DesktopConfig:
    """What the window remembers between runs."""

    model: str = ""
    """The chosen model source (hub id, folder, .safetensors file or ``tiny``); empty: not chosen."""
    dino_model: str = ""
    """The DINO model that scores set consistency (hub id or folder); empty: facebook/dino-vitb8."""
    last_session: str = ""
    geometry: str = ""
    """QMainWindow.saveGeometry() as hex."""
    window_state: str = ""
    """QMainWindow.saveState() (docks, splitters) as hex."""
    splitter: str = ""
    export_folder: str = ""
    deliverables: dict = field(default_factory=dict)
    """The storyboard deliverables' last options, by kind (``pdf``, ``animatic``, ``timeline``,
    ``storyboarder``), as ``export/choices.py`` writes them."""
    open_folder: str = ""
    picture_maker: str = "this_computer"
    """Where pictures are made: ``this_computer`` (the embedded engine) or ``server``."""
    server_url: str = ""
    local_model: str = ""
    """The model used on this computer, remembered while a server's model is in use."""

    @staticmethod
    def path() -> Path:
        return config_dir() / FILE_NAME

    def __post_init__(self) -> None:
        # The file's fields as this app last read or wrote them (what differs is this app's
        # change); None: made in memory, not read, so every field is this app's own.
        self._as_read: dict[str, Any] | None = None

    @classmethod
    def _stored(cls, set_aside_broken: bool) -> dict[str, Any]:
        """The well-formed fields in the file now; none if it is missing or unreadable (and then,
        if ``set_aside_broken``, it is renamed to .broken)."""
        path = cls.path()
        if not os.path.lexists(path):
            return {}
        try:
            data = userfiles.read_json(path, MAX_FILE_BYTES, within=config_dir())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            if set_aside_broken:
                log.warning("ignoring unreadable %s (%s); set aside as %s", path, exc,
                            userfiles.set_aside(path).name)
            return {}
        defaults = asdict(cls())
        stored = {key: value for key, value in data.items()
                  if key in defaults and isinstance(value, type(defaults[key]))}
        return stored

    @classmethod
    def load(cls) -> DesktopConfig:
        config = cls()
        for key, value in cls._stored(set_aside_broken=True).items():
            setattr(config, key, value)
        config._as_read = asdict(config)
        return config

    def refresh(self) -> None:
        """Take what other apps wrote to the file since this one read it, for every field this
        app has not changed itself."""
        if self._as_read is None:
            return
        mine = asdict(self)
        stored = self._stored(set_aside_broken=False)
        for key, value in stored.items():
            if mine[key] == self._as_read[key]:
                setattr(self, key, copy.deepcopy(value))
        self._as_read.update(stored)

    def save(self) -> None:
        """Write the fields this app changed (see the module docstring)."""
        self.refresh()
        path = self.path()
        data: dict[str, Any] = asdict(self)
        fd, tmp = tempfile.mkstemp(prefix=".desktop-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._as_read = data
