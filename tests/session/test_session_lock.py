"""The session lock (issue 10, item 5): one running app owns an open session folder; a lock
left by a crash, or naming a process id the system has given to another program, is stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from stylealigned_desktop.session import folders
from stylealigned_desktop.session.errors import SessionError
from tests.session.session_helpers import held_elsewhere


def lock_of(pid, started, host=None):
    return json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": started})


def test_a_second_app_is_refused_while_the_first_runs(tmp_path):
    holder = held_elsewhere(tmp_path)
    try:
        with pytest.raises(folders.SessionLockedError, match="another StyleAligned Desktop window"):
            folders.acquire_lock(tmp_path)
        assert folders.owner_alive(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert not folders.owner_alive(tmp_path)  # its owner died: the lock is stale
    folders.acquire_lock(tmp_path)
    assert folders.read_lock(tmp_path)["pid"] == os.getpid()
    folders.release_lock(tmp_path)
    assert not (tmp_path / folders.LOCK_FILE).exists()


def test_a_reused_process_id_does_not_keep_a_stale_lock(tmp_path):
    (tmp_path / folders.LOCK_FILE).write_text(lock_of(1, psutil.Process(1).create_time() - 1000))
    assert not folders.owner_alive(tmp_path)  # pid 1 runs, but started long after that lock
    (tmp_path / folders.LOCK_FILE).write_text(lock_of(1, psutil.Process(1).create_time()))
    assert folders.owner_alive(tmp_path)


def test_a_lock_of_another_computer_is_respected(tmp_path):
    (tmp_path / folders.LOCK_FILE).write_text(lock_of(12345, 1.0, host="another-computer"))
    with pytest.raises(folders.SessionLockedError, match="another-computer"):
        folders.acquire_lock(tmp_path)


def test_a_session_open_elsewhere_opens_only_read_only_and_saves_only_as_a_copy(session, tmp_path):
    from stylealigned_desktop.session import store
    from stylealigned_desktop.session.errors import SessionSaveError

    session.add_panel("a fox")
    store.save_session_as(session, tmp_path / "Fox")
    folder = tmp_path / "Fox.stylealigned"
    session.close()
    before = (folder / "session.json").read_bytes()
    holder = held_elsewhere(folder)
    try:
        with pytest.raises(folders.SessionLockedError):
            store.load_session(folder)
        second = store.load_session(folder, read_only=True)
        assert second.read_only
        second.update_panel(0, prompt="a crow")
        assert store.autosave_session(second) is False
        with pytest.raises(SessionSaveError, match="read-only"):
            store.save_session(second)
        assert (folder / "session.json").read_bytes() == before
        second.close()
        assert folders.read_lock(folder)["pid"] == holder.pid  # the other app keeps its lock
        store.save_session_as(second, tmp_path / "Crow")
        assert not second.read_only and folders.read_lock(second.folder)["pid"] == os.getpid()
        assert store.load_session(tmp_path / "Crow.stylealigned").panels[0].prompt == "a crow"
    finally:
        holder.kill()
        holder.wait()


UNTITLED_APP = """
import os, random, sys
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.session import store
s = Session(rng=random.Random(5))
s.add_panel(sys.argv[2])
store.autosave_session(s)
print(s.folder, flush=True)
if sys.argv[1] == "quit":
    s.close()  # a clean quit
else:
    os._exit(1)  # killed
"""


def run_untitled(how, prompt, tmp_path):
    from stylealigned_desktop import paths

    env = dict(os.environ, STYLEALIGNED_DATA_DIR=str(paths.data_dir()))
    out = subprocess.run([sys.executable, "-c", UNTITLED_APP, how, prompt], env=env,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def test_recovery_offers_exactly_the_sessions_whose_owner_died_newest_first(tmp_path):
    import time

    from stylealigned_desktop.session import store

    assert store.list_recoverable() == []
    run_untitled("quit", "closed cleanly", tmp_path)
    older = run_untitled("kill", "older crash", tmp_path)
    time.sleep(1.1)  # file times of the two autosaves differ
    newer = run_untitled("kill", "newer crash", tmp_path)
    offered = store.list_recoverable()
    assert [str(e.folder) for e in offered] == [newer, older]
    assert [e.first_prompts for e in offered] == [("newer crash",), ("older crash",)]


def test_a_folder_as_the_lock_is_a_session_error_or_replaced_when_empty(tmp_path):
    # issue 23, item 1: a folder named session.lock (a shared or unzipped session folder)
    lock = tmp_path / folders.LOCK_FILE
    (lock / "inside").mkdir(parents=True)
    with pytest.raises(SessionError, match="session.lock"):
        folders.acquire_lock(tmp_path)
    (lock / "inside").rmdir()
    folders.acquire_lock(tmp_path)  # an empty folder is replaced by the lock
    assert lock.is_file() and folders.read_lock(tmp_path)["pid"] == os.getpid()


@pytest.mark.parametrize("text", [
    json.dumps({"note": "no pid, no host"}),
    json.dumps({"pid": "12345", "host": "another-computer"}),
    # another computer's lock, but far bigger than a lock is: not read, stale
    json.dumps({"pid": 12345, "host": "another-computer", "started": 1.0, "pad": "x" * 8192}),
])
def test_a_lock_that_is_not_a_small_well_formed_lock_is_stale(tmp_path, text):
    (tmp_path / folders.LOCK_FILE).write_text(text)
    assert folders.read_lock(tmp_path) is None and not folders.owner_alive(tmp_path)
    folders.acquire_lock(tmp_path)
    assert folders.read_lock(tmp_path)["pid"] == os.getpid()


def test_a_lock_linked_elsewhere_is_replaced_not_written_through(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    folder = tmp_path / "Shared.stylealigned"
    folder.mkdir()
    (folder / folders.LOCK_FILE).symlink_to(Path("..") / "notes.txt")
    folders.write_lock(folder)
    assert notes.read_text() == "my notes\n"
    assert not (folder / folders.LOCK_FILE).is_symlink()
    assert folders.read_lock(folder)["pid"] == os.getpid()
