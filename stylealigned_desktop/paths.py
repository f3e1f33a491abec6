"""Where the app keeps its files: platformdirs folders, overridable by environment variables."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir, user_data_dir

APP_NAME = "StyleAlignedDesktop"


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
