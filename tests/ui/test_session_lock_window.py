"""A second app opening a session another running app has open (issue 10, item 5)."""

from __future__ import annotations

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from tests.session.session_helpers import held_elsewhere


def test_a_second_window_is_offered_read_only_or_a_copy(qtbot, make_window, tmp_path):
    first = Session()
    first.add_panel("a fox")
    store.save_session_as(first, tmp_path / "Fox")
    folder = tmp_path / "Fox.stylealigned"
    first.close()
    holder = held_elsewhere(folder)
    try:
        window, answers = make_window()
        answers.queue = ["Cancel"]
        assert not window.sessions.open_session(folder)
        assert window.session is None or window.session.folder != folder
        assert "open in another window" in answers.asked[-1][0]
        answers.queue = ["Open read-only"]
        assert window.sessions.open_session(folder)
        assert window.session.folder == folder and window.session.read_only
        assert "[read-only]" in window.windowTitle()
        before = (folder / "session.json").read_bytes()
        window.session.add_panel("a crow")
        window.sessions.autosaver.flush()
        assert (folder / "session.json").read_bytes() == before  # the other app's session is untouched
    finally:
        holder.kill()
        holder.wait()
