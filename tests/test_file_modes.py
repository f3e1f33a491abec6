"""Files the app writes into a session (session.json, copied pictures, run folders) get the
mode the user's umask gives new files, not the 0600 of temporary files they are written as."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import os, sys
os.umask(0o027)  # before the package reads it
from pathlib import Path
from PIL import Image
from stylealigned_desktop.engine.events import RunResult
from stylealigned_desktop.engine.runfolder import write_run_folder
from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session

root = Path(sys.argv[1])
picture = root / "mood.png"
Image.new("RGB", (64, 48), "red").save(picture)
session = Session()
session.set_style_text("ink")
session.add_panel("a fox")
session.add_reference(picture)
session.set_panel_control_picture(0, picture)
session.update_settings(width=64, height=64, steps=2)
plan = session.prepare_generate(default_model="tiny")
square = Image.new("RGB", (64, 64), "blue")
write_run_folder(plan.folder, plan.request, RunResult(square, {0: square}, {}), plan.style_text)
session.record_run(plan)
store.save_session_as(session, root / "story")
"""


def test_session_and_run_files_follow_the_umask(tmp_path):
    env = dict(os.environ, STYLEALIGNED_DATA_DIR=str(tmp_path / "data"),
               STYLEALIGNED_CONFIG_DIR=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "story.stylealigned"
    files = [p for p in folder.rglob("*") if p.is_file()]
    kinds = {p.relative_to(folder).parts[0] for p in files}
    assert {"session.json", "references", "controls", "outputs"} <= kinds
    assert any(p.name == "run.json" for p in files) and any(p.suffix == ".png" for p in files)
    modes = {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert modes == dict.fromkeys(modes, oct(0o640))
    assert oct(stat.S_IMODE(Path(folder).stat().st_mode)) == oct(0o750)
