"""Files someone else put in the app's way never hang it, never stop it starting and are never
written through (issue 23, items 1, 6 and 7). Each case starts the real app in another process
with a time limit, as the user does: a FIFO where a regular file is expected would wait for a
writer forever, a deeply nested or huge-numbered JSON file raised at start, and a session.lock
that links out of its session folder was overwritten with the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylealigned_desktop.session import folders, store
from stylealigned_desktop.session.model import Session
from tests.ui.uifakes import OTHER_APP, ROOT, other_app_env

TIME_LIMIT = 90  # seconds; the window starts in a few (a FIFO read would wait forever)
DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER_PRESET = ('{"format": "stylealigned-style", "name": "Huge", "style_text": "ink", '
                      '"sampling": {"steps": ' + "9" * 10_000 + "}}")

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


def run_app(tmp_path: Path, *args: str, script: str | None = None) -> subprocess.CompletedProcess:
    """The real app (``--quit-after-show``), or the real window driven by ``script``, with the
    config and data folders under ``tmp_path``; fails the test if it does not end in time."""
    env = dict(other_app_env(), STYLEALIGNED_CONFIG_DIR=str(tmp_path / "config"),
               STYLEALIGNED_DATA_DIR=str(tmp_path / "data"))
    command = ([sys.executable, "-c", script, *args] if script is not None
               else [sys.executable, "-m", "stylealigned_desktop", "--quit-after-show", *args])
    try:
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app hung (still running after {TIME_LIMIT} s)")
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def saved_session(tmp_path: Path, name: str = "Harbour") -> Path:
    session = Session()
    session.add_panel("a lighthouse")
    store.save_session_as(session, tmp_path / name)
    session.close()
    return tmp_path / f"{name}.stylealigned"


def config(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    (folder / "styles").mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("name, text", [
    ("desktop.json", DEEP_JSON),
    ("styles/deep.json", DEEP_JSON),
    ("styles/huge.json", HUGE_NUMBER_PRESET),
    ("recent-sessions.json", DEEP_JSON),
    ("desktop.json", None),  # None: a FIFO
    ("styles/pipe.json", None),
    ("recent-sessions.json", None),
    ("recent-sessions.json", '{"sessions": "~/Harbour.stylealigned"}'),  # wrong types
])
def test_a_bad_file_in_the_config_folder_does_not_stop_the_window(tmp_path, name, text):
    harbour = saved_session(tmp_path)  # opening a named session reads and writes the recent list
    bad = config(tmp_path) / name
    if text is None:
        os.mkfifo(bad)
    else:
        bad.write_text(text, encoding="utf-8")
    done = run_app(tmp_path, str(harbour))
    assert "session: Harbour (1 panel" in done.stdout
    if "/" not in name:  # a broken settings file is set aside, as a broken autosave is
        assert os.path.lexists(config(tmp_path) / f"{name}.broken")


def test_a_fifo_as_the_session_lock_neither_hangs_opening_nor_stays(tmp_path):
    harbour = saved_session(tmp_path)
    os.mkfifo(harbour / folders.LOCK_FILE)
    done = run_app(tmp_path, str(harbour))
    assert "session: Harbour (1 panel" in done.stdout
    assert not (harbour / folders.LOCK_FILE).exists()  # replaced by our lock, released at close


def test_a_lock_linked_out_of_the_session_is_replaced_never_written_through(tmp_path):
    harbour = saved_session(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n", encoding="utf-8")
    (harbour / folders.LOCK_FILE).symlink_to(Path("..") / "notes.txt")
    done = run_app(tmp_path, str(harbour))
    assert "session: Harbour (1 panel" in done.stdout
    assert notes.read_text(encoding="utf-8") == "my notes\n"
    assert not (harbour / folders.LOCK_FILE).is_symlink()


RECOVERY_AT_START = OTHER_APP + """
window.startup()
app.processEvents()
print("started:", window.session.folder, flush=True)
os._exit(0)
"""


def test_a_fifo_lock_in_the_autosave_area_does_not_hang_crash_recovery_at_start(
        tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path / "data"))
    session = Session()  # untitled: autosaved in the data folder's autosave area
    session.add_panel("a crow")
    untitled = store.write_session(session).parent
    (untitled / folders.LOCK_FILE).unlink()
    os.mkfifo(untitled / folders.LOCK_FILE)
    done = run_app(tmp_path, script=RECOVERY_AT_START)
    assert "started:" in done.stdout


ADD_PICTURE = OTHER_APP + """
import time
window.startup()
QFileDialog.getOpenFileNames = staticmethod(lambda *a, **k: ([sys.argv[1]], ""))
window.add_pictures_action.trigger()
deadline = time.monotonic() + 60
while window.gallery.importing and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
print("importing:", window.gallery.importing, flush=True)
print("banner:", window.gallery.banner.text(), flush=True)
os._exit(0)
"""


def test_a_fifo_added_as_a_reference_picture_is_refused_at_once(tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    done = run_app(tmp_path, str(pipe), script=ADD_PICTURE)
    assert "importing: False" in done.stdout
    assert "pipe.png" in done.stdout and "not a regular file" in done.stdout


def test_a_lock_that_is_no_well_formed_lock_is_stale(tmp_path):
    harbour = saved_session(tmp_path)
    lock = harbour / folders.LOCK_FILE
    lock.write_text(json.dumps({"note": "no pid, no host"}), encoding="utf-8")
    opened = store.load_session(harbour)  # a normal open, not refused
    assert not opened.read_only and folders.read_lock(harbour)["pid"] == os.getpid()
    opened.close()
