"""Careless and hostile session files: clear errors instead of tracebacks, broken autosaves set
aside, Save As and concurrent writers that never leave half states (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from stylealigned_desktop.session import folders, store
from stylealigned_desktop.session.autosave import Autosaver
from stylealigned_desktop.session.errors import SessionError, SessionLoadError, SessionSaveError
from stylealigned_desktop.session.values import Panel

from .session_helpers import crashed_lock

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = "9" * 5000
LONE_SURROGATE = '"a fox \\udc80"'  # JSON text for a string no UTF-8 file can hold


def session_text(panel_prompt_json: str = '"a fox"', seed: str = "1") -> str:
    return ('{"format": "stylealigned-session", "schema_version": 1, "panels": '
            f'[{{"id": "p1", "prompt": {panel_prompt_json}, "seed": {seed}}}]}}')


@pytest.mark.parametrize("text, reason", [
    (session_text().replace('"panels"', f'"deep": {DEEP}, "panels"'), "nested too deeply"),
    (session_text(seed=HUGE_NUMBER), "damaged"),
    (session_text(LONE_SURROGATE), "not valid text"),
])
def test_hostile_session_files_are_one_clear_load_error(tmp_path, text, reason):
    folder = tmp_path / "Hostile.stylealigned"
    folder.mkdir()
    (folder / "session.json").write_text(text)
    with pytest.raises(SessionLoadError, match=reason):
        store.load_session(folder)


def test_text_that_cannot_be_saved_is_refused_where_it_comes_in(session):
    session.add_panel("a fox")
    before = session.to_dict()
    for call in (lambda: session.update_panel(0, prompt="a fox \udc80"),
                 lambda: session.set_style_text("ink \ud800"),
                 lambda: session.add_panel("x" * 2001)):
        with pytest.raises(SessionError):
            call()
    assert session.to_dict() == before


def test_a_session_holding_unsavable_text_gives_a_save_error(session):
    session.add_panel("a fox")
    # what a file or a bug could leave in memory past the checks
    object.__setattr__(session.panels[0], "prompt", "a fox \udc80")
    with pytest.raises(SessionSaveError, match="not valid Unicode"):
        store.write_session(session)


def test_an_autosave_that_fails_unexpectedly_is_reported_and_retried(session):
    errors, scheduled = [], []

    def broken_save(s):
        raise UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed")

    saver = Autosaver(session, save=broken_save, on_error=errors.append, schedule=scheduled.append,
                      clock=lambda: 0.0)
    session.add_panel("a fox")
    assert saver.flush() is False  # no exception escapes
    assert len(errors) == 1 and isinstance(errors[0], UnicodeEncodeError)
    assert saver.pending and session.dirty


@pytest.mark.parametrize("text", [
    session_text().replace('"panels"', f'"deep": {DEEP}, "panels"'),
    session_text(seed=HUGE_NUMBER),
    session_text(LONE_SURROGATE),
    "{broken",
])
def test_a_broken_autosave_is_set_aside_and_reported_once(text):
    folder = folders.autosave_root() / "untitled-20200101-000000-abcdef.stylealigned"
    folder.mkdir()
    (folder / "session.json").write_text(text)
    good = folders.autosave_root() / "untitled-20200101-000001-fedcba.stylealigned"
    good.mkdir()
    (good / "session.json").write_text(session_text())
    crashed_lock(folder)
    crashed_lock(good)
    entries = store.list_recoverable()
    assert sorted((e.folder.name, e.error is None) for e in entries) == [
        (folder.name + store.BROKEN_SUFFIX, False), (good.name, True)]
    assert not folder.exists()
    assert [e.folder for e in store.list_recoverable()] == [good]  # reported once
    assert store.recover_session(good).panels[0].prompt == "a fox"


KILLED_SAVE_AS = """
import os, random, shutil, sys
from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
s = Session(rng=random.Random(3))
s.add_panel("a crow")
s.add_reference(sys.argv[2])
store.autosave_session(s)
real_copy = shutil.copy2
def killed(*args, **kwargs):
    real_copy(*args, **kwargs)
    os._exit(9)  # killed right after the first picture is copied
shutil.copy2 = killed
store.save_session_as(s, sys.argv[1])
"""


def test_a_killed_save_as_leaves_no_half_folder_and_the_name_stays_free(session, tmp_path, make_picture):
    target = tmp_path / "Crows"
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE_AS, str(target), str(make_picture())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    assert not (tmp_path / "Crows.stylealigned").exists()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".Crows.stylealigned.")]
    assert len(left) == 1  # the half copy lies under a temporary name
    long_ago = time.time() - 120
    os.utime(left[0], (long_ago, long_ago))
    session.add_panel("a raven")
    store.save_session_as(session, target)
    assert store.load_session(tmp_path / "Crows.stylealigned").panels[0].prompt == "a raven"
    assert not left[0].exists()  # a killed Save As's leftovers go with the next Save As there


def test_stale_temporaries_are_removed_only_when_ours_or_old(session, tmp_path):
    session.add_panel("a snail")
    store.save_session_as(session, tmp_path / "Snail")
    folder = tmp_path / "Snail.stylealigned"
    other = folder / ".tmp-session.json.999999999.abcd"  # another app writing right now
    ours = folder / f".tmp-session.json.{os.getpid()}.efgh"  # ours, from a failed write
    old = folder / ".tmp-session.json.888888888.ijkl"  # another app's, a killed write long ago
    for path in (other, ours, old):
        path.write_text("{")
    long_ago = time.time() - 120
    os.utime(old, (long_ago, long_ago))
    session.add_panel("a slug")
    store.save_session(session)
    assert other.exists() and not ours.exists() and not old.exists()


CONCURRENT_WRITER = """
import sys
from pathlib import Path
from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.model import Session
s = Session.from_dict(store.read_session_data(Path(sys.argv[1])), sys.argv[1])  # ignores the lock
failed = 0
for i in range(int(sys.argv[2])):
    s.update_panel(0, prompt=f"writer {sys.argv[3]} save {i}")
    try:
        store.write_session(s)
    except SessionError as exc:
        failed += 1
print(failed)
"""


def test_two_writers_on_one_session_never_break_each_others_saves(session, tmp_path):
    """Writers that ignore the session lock (an older app, a script) may autosave one session."""
    session.add_panel("a snail")
    store.save_session_as(session, tmp_path / "Snail")
    folder = tmp_path / "Snail.stylealigned"
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(folder), "300", str(n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for n in (1, 2)]
    results = [w.communicate(timeout=300) for w in writers]
    assert [(w.returncode, out.strip()) for w, (out, _) in zip(writers, results)] == [(0, "0"), (0, "0")], \
        [err for _, err in results]
    assert store.load_session(folder).panels[0].prompt.startswith("writer ")


def test_panel_text_limits_come_from_the_engine_request_rules():
    with pytest.raises(SessionError, match="2000"):
        Panel(id="p", prompt="x" * 2001)
    assert Panel(id="p", prompt="x" * 2000).prompt



def test_a_picture_whose_name_is_not_utf8_can_be_added_and_saved(session, tmp_path):
    from .session_helpers import picture_bytes

    path = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    with open(path, "wb") as handle:
        handle.write(picture_bytes())
    reference = session.add_reference(path)
    assert reference.name == "caf\ufffd.png"
    store.save_session_as(session, tmp_path / "Cafe")
    assert store.load_session(tmp_path / "Cafe.stylealigned").references[0].name == "caf\ufffd.png"
