"""Shared test set-up: offline, headless, and the tiny model built once per test run."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_pipe():
    """The built-in tiny SDXL pipeline (float32, CPU). Do not modify it in a test without restoring."""
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Config, cache and data folders of the app go to a temporary place of each test's own:
    what one test leaves there (settings, autosaves, a killed app's session) never meets
    another, whatever the order the tests run in."""
    base = tmp_path_factory.mktemp("user-dirs")
    monkeypatch.setenv("STYLEALIGNED_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("STYLEALIGNED_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(base / "data"))
