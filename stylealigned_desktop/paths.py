"""Where the app keeps its files: platformdirs folders, overridable by environment variables."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir, user_data_dir

APP_NAME = "StyleAlignedDesktop"


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


NEW_FILE_MODE = 0o666 & ~_umask()
"""The mode ``open()`` gives a new file under this process's umask (read once, at start-up)."""


def with_default_mode(fd: int) -> int:
    """Give a temporary file (``tempfile.mkstemp`` makes them 0600) the mode a plain new file
    gets, before it becomes a session's or a run's file: those respect the user's umask like
    the rest of their files. Returns ``fd``."""
    if hasattr(os, "fchmod"):  # POSIX; Windows has no such modes
        os.fchmod(fd, NEW_FILE_MODE)
    return fd


def _dir(env: str, default: str) -> Path:
    path = Path(os.environ.get(env) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings, the chosen model, user style presets (STYLEALIGNED_CONFIG_DIR overrides)."""
    return _dir("STYLEALIGNED_CONFIG_DIR", user_config_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Inversion trajectories of CLI runs and other recomputable data (STYLEALIGNED_CACHE_DIR)."""
    return _dir("STYLEALIGNED_CACHE_DIR", user_cache_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Autosaved sessions and crash-recovery data (STYLEALIGNED_DATA_DIR overrides)."""
    return _dir("STYLEALIGNED_DATA_DIR", user_data_dir(APP_NAME, appauthor=False))


def resource(*parts: str) -> Path:
    """A file shipped in the package stylealigned_desktop.resources (package data)."""
    return Path(str(files("stylealigned_desktop.resources").joinpath(*parts)))
