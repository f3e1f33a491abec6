"""Fixtures of the session tests: pictures drawn with PIL, a session with seeded seeds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from stylealigned_desktop.session.model import Session

from .session_helpers import picture_bytes


@pytest.fixture
def make_picture(tmp_path):
    """make_picture(name, color=..., fmt=...) -> Path of a picture file outside any session."""
    folder = tmp_path / "pictures"
    folder.mkdir(exist_ok=True)

    def make(name: str = "picture.png", color: str = "red", fmt: str = "PNG",
             size: tuple[int, int] = (64, 48)) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(picture_bytes(color, size, fmt))
        return path

    return make


@pytest.fixture
def session() -> Session:
    """An untitled session with a seeded random generator, the tiny model and small sizes."""
    s = Session(rng=random.Random(1234))
    s.update_settings(model="tiny", steps=4, width=64, height=64)
    s._dirty = False
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _own_user_dirs(tmp_path, monkeypatch):
    """Per-test app folders: autosaves and recent lists of one test never show in another."""
    for name in ("CONFIG", "CACHE", "DATA"):
        monkeypatch.setenv(f"STYLEALIGNED_{name}_DIR", str(tmp_path / "user" / name.lower()))
