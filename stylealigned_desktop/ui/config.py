"""The desktop app's own remembered choices: model, DINO model, recent sessions, window layout.

One JSON file in the platformdirs config folder (``desktop.json``), written atomically. A broken
file is set aside (``desktop.json.broken``) and defaults are used: preferences are never a reason
for the app not to start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..paths import config_dir

log = logging.getLogger(__name__)

FILE_NAME = "desktop.json"
MAX_RECENT = 10


@dataclass
class DesktopConfig:
    """What the window remembers between runs."""

    model: str = ""
    """The chosen model source (hub id, folder, .safetensors file or ``tiny``); empty: not chosen."""
    dino_model: str = ""
    """The DINO model that scores set consistency (hub id or folder); empty: facebook/dino-vitb8."""
    recent_sessions: list[str] = field(default_factory=list)
    last_session: str = ""
    geometry: str = ""
    """QMainWindow.saveGeometry() as hex."""
    window_state: str = ""
    """QMainWindow.saveState() (docks, splitters) as hex."""
    splitter: str = ""
    export_folder: str = ""
    open_folder: str = ""
    picture_maker: str = "this_computer"
    """Where pictures are made: ``this_computer`` (the embedded engine) or ``server``."""
    server_url: str = ""
    local_model: str = ""
    """The model used on this computer, remembered while a server's model is in use."""

    @staticmethod
    def path() -> Path:
        return config_dir() / FILE_NAME

    @classmethod
    def load(cls) -> DesktopConfig:
        path = cls.path()
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            known = {f.name: f for f in fields(cls)}
            config = cls()
            for key, value in data.items():
                if key in known and isinstance(value, type(getattr(config, key))):
                    setattr(config, key, value)
            config.recent_sessions = [p for p in config.recent_sessions if isinstance(p, str)]
            return config
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s); it was renamed to .broken", path, exc)
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".json.broken"))
            return cls()

    def save(self) -> None:
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

    def add_recent(self, session_path: str | Path) -> None:
        text = str(Path(session_path))
        self.recent_sessions = [text] + [p for p in self.recent_sessions if p != text]
        del self.recent_sessions[MAX_RECENT:]
        self.last_session = text

    def forget_recent(self, session_path: str | Path) -> None:
        text = str(Path(session_path))
        self.recent_sessions = [p for p in self.recent_sessions if p != text]
        if self.last_session == text:
            self.last_session = ""
