"""Shared test set-up: offline, headless, and the tiny model built once per test run."""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# The Hugging Face and torch.hub caches of the run's own, empty (set before either library is
# imported, which reads them once): a model downloaded on this computer (DINO, TAESDXL, the
# Inception weights) would otherwise change what the tests see from one machine to another.
MODEL_CACHES = tempfile.mkdtemp(prefix="stylealigned-tests-caches-")
os.environ["HF_HOME"] = os.path.join(MODEL_CACHES, "huggingface")
os.environ["TORCH_HOME"] = os.path.join(MODEL_CACHES, "torch")
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


def pytest_unconfigure(config):
    shutil.rmtree(MODEL_CACHES, ignore_errors=True)
