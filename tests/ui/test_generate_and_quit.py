"""The window's smoke-test mode (packaging/smoke.sh runs it in the frozen build): open a session,
press Generate, quit with the outcome as the exit code."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session


def _session(tmp_path, prompts) -> str:
    session = Session()
    session.set_style_text("ink sketch")
    for prompt in prompts:
        session.add_panel(prompt)
    session.update_settings(width=128, height=64, steps=2, scheduler="euler")
    folder = tmp_path / "Harbour.stylealigned"
    store.save_session_as(session, folder)
    session.close()
    return str(folder)


def _run_window(tmp_path, folder, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STYLEALIGNED_CONFIG_DIR=str(tmp_path / "c"),
               STYLEALIGNED_DATA_DIR=str(tmp_path / "d"))
    return subprocess.run([sys.executable, "-m", "stylealigned_desktop", "--model", "tiny",
                           "--generate-and-quit", folder],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_the_set_is_made_filed_and_the_window_quits_with_0(tmp_path):
    result = _run_window(tmp_path, _session(tmp_path, ("a harbour at dawn", "a lighthouse")))
    assert result.returncode == 0, result.stderr[-2000:]
    made = [line for line in result.stdout.splitlines() if line.startswith("set made: ")]
    assert len(made) == 1
    run = made[0].removeprefix("set made: ")
    assert run.startswith(str(tmp_path / "Harbour.stylealigned"))
    sizes = {name: Image.open(os.path.join(run, name)).size for name in ("panel-01.png", "panel-02.png")}
    assert sizes == {"panel-01.png": (128, 64), "panel-02.png": (128, 64)}


def test_a_set_that_cannot_start_quits_with_1_instead_of_waiting(tmp_path):
    result = _run_window(tmp_path, _session(tmp_path, ()), timeout=240)  # no model is loaded
    assert result.returncode == 1, result.stderr[-2000:]
    assert "set not started: " in result.stdout and "no panels" in result.stdout
