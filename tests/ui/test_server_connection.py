"""The window with pictures made by a server whose connection drops mid-set: one clear message,
and nothing in the session is lost. The server here is a real HTTP server on 127.0.0.1 that
sends the start of a set's NDJSON stream and then drops the connection, as a dying SSH tunnel
does. (A whole set made on a real server is in tests/server/test_server_ray.py.)"""

from __future__ import annotations

import pytest

from stylealigned_desktop.ui.dialogs.where_dialog import SERVER, save_token
from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.threads import JobState
from tests.fake_server import DroppingHandler, serving
from tests.ui.conftest import Answers
from tests.ui.uifakes import run_and_wait, storyboard

pytestmark = pytest.mark.slow


@pytest.fixture
def dropping_server():
    with serving(DroppingHandler) as url:
        yield url


def test_a_lost_connection_is_one_clear_message_and_the_session_keeps_everything(qtbot, dropping_server):
    from stylealigned_desktop.ui.window import MainWindow

    save_token("secret-token")
    config = DesktopConfig(model="tiny", picture_maker=SERVER, server_url=dropping_server)
    window = MainWindow(config)  # the settings say: a server makes the pictures
    window.ask = Answers()
    qtbot.addWidget(window)
    window.show()
    try:
        session = storyboard(window, prompts=("a fox", "a crow"))
        panels = [p.prompt for p in session.panels]
        job = run_and_wait(qtbot, window, window.runs.generate, timeout=30000)
        assert job.state is JobState.failed
        assert DroppingHandler.seen[-1] == "Bearer secret-token"
        message = window.banner_text.text()
        assert not window.banner.isHidden() and "lost the connection to the server" in message
        assert "\n" not in message and "Traceback" not in message
        assert session.history == ()
        assert [p.prompt for p in session.panels] == panels and session.style.text == "ink sketch."
        assert all(not tile.final for tile in window.grid.tiles.values())
    finally:
        window.close()
        window.worker.shutdown(5)
