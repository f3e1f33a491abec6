"""The debounced autosaver, driven by a fake clock (no Qt, no threads)."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.session import atomic, store
from stylealigned_desktop.session.autosave import Autosaver
from stylealigned_desktop.session.errors import SessionSaveError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def make_saver(session, clock, **kwargs):
    saved = []
    scheduled = []

    def save(s):
        saved.append(json.dumps(s.to_dict()))
        s._mark_saved()

    saver = Autosaver(session, delay=1.0, max_delay=5.0, save=kwargs.pop("save", save),
                      clock=clock, schedule=scheduled.append, **kwargs)
    return saver, saved, scheduled


def test_saves_a_moment_after_the_last_change(session, clock):
    saver, saved, scheduled = make_saver(session, clock)
    assert saver.due_in() is None and not saver.poll()
    session.add_panel("a")
    assert scheduled == [1.0] and saver.pending
    clock.now += 0.6
    session.add_panel("b")  # pushes the save back
    assert scheduled[-1] == 1.0
    clock.now += 0.6
    assert not saver.poll()  # 0.6 s after the last change: not yet
    assert scheduled[-1] == pytest.approx(0.4)  # asks to be polled again when due
    clock.now += 0.4
    assert saver.poll()
    assert len(saved) == 1 and '"b"' in saved[0]
    assert not session.dirty and not saver.pending
    assert not saver.poll()


def test_continuous_changes_are_still_saved_after_max_delay(session, clock):
    saver, saved, scheduled = make_saver(session, clock)
    for _ in range(20):
        session.add_panel("typing")
        clock.now += 0.5
        saver.poll()
    # 10 s of changes every 0.5 s: saved at least every max_delay (5 s)
    assert len(saved) >= 2
    assert all(delay <= 5.0 for delay in scheduled)


def test_saved_notifications_do_not_schedule(session, clock):
    saver, saved, scheduled = make_saver(session, clock)
    session._mark_saved()  # what a save emits
    assert scheduled == [] and not saver.pending


def test_flush_saves_only_dirty_sessions(session, clock):
    saver, saved, _ = make_saver(session, clock)
    assert not saver.flush()
    session.set_style_text("ink")
    assert saver.flush()
    assert saved and not session.dirty


def test_a_failed_save_is_reported_and_retried(session, clock):
    errors = []
    attempts = []

    def flaky(s):
        attempts.append(clock.now)
        if len(attempts) == 1:
            raise SessionSaveError(s.folder / "session.json", "No space left on device")
        s._mark_saved()

    saver, _, scheduled = make_saver(session, clock, save=flaky, on_error=errors.append,
                                     retry_delay=3.0)
    session.add_panel("a")
    clock.now += 1.0
    assert not saver.poll()
    assert len(errors) == 1 and "No space" in str(errors[0])
    assert session.dirty and saver.pending and scheduled[-1] == 3.0
    clock.now += 3.0
    assert saver.poll()
    assert saver.last_error is None and not session.dirty


def test_close_stops_listening(session, clock):
    saver, saved, scheduled = make_saver(session, clock)
    saver.close()
    session.add_panel("a")
    assert scheduled == [] and not saver.pending


def test_with_the_real_store_an_untitled_session_lands_in_the_autosave_area(session, clock):
    saver = Autosaver(session, delay=0.5, clock=clock)
    session.set_style_text("origami")
    session.add_panel("a crane")
    clock.now += 0.5
    assert saver.poll()
    loaded = store.load_session(session.folder)
    assert loaded.untitled and [p.prompt for p in loaded.panels] == ["a crane"]


def test_a_killed_autosave_leaves_a_loadable_session(session, clock, monkeypatch, tmp_path):
    session.set_style_text("ink")
    session.add_panel("first")
    store.save_session_as(session, tmp_path / "Kill")
    saver = Autosaver(session, delay=0.5, clock=clock)

    def killed(handle, data):
        handle.write(data[:7])
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic, "_write_payload", killed)
    session.add_panel("second")
    clock.now += 0.5
    assert not saver.poll()
    assert isinstance(saver.last_error, SessionSaveError)
    monkeypatch.undo()
    assert [p.prompt for p in store.load_session(session.folder).panels] == ["first"]
    clock.now += saver.retry_delay
    assert saver.poll()
    assert [p.prompt for p in store.load_session(session.folder).panels] == ["first", "second"]
