"""A second app, refused the session the first app has open, quits (issue 10: nothing an artist
makes is ever lost): it must leave the shared settings' last session to the first app, so that
when the first app then crashes, the next start reopens the first app's session."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.support import DesktopConfig
from tests.ui.uifakes import OTHER_APP, ROOT, FakeEngine, app_config, other_app_env

FIRST_APP = OTHER_APP + """
window.set_session_from_path(Path(sys.argv[1]))  # started with the session folder
print(window.session.folder, flush=True)
for line in sys.stdin:  # a folder name: File > Save as there
    QFileDialog.getSaveFileName = staticmethod(lambda *a, name=line.strip(), **k: (name, ""))
    window.save_as_action.trigger()
    app.processEvents()
    print(window.session.folder, flush=True)
"""


@pytest.mark.parametrize("answer", ["Cancel", "Open read-only"])
def test_a_refused_second_app_leaves_the_last_session_to_the_first(
        qtbot, make_window, monkeypatch, tmp_path, answer):
    # settings and an autosave area of their own (other tests' would be reopened or offered)
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STYLEALIGNED_CONFIG_DIR", str(tmp_path / "config"))
    fox = Session()
    fox.add_panel("a fox")
    store.save_session_as(fox, tmp_path / "Fox")
    fox.close()
    fox_folder = tmp_path / "Fox.stylealigned"

    # 1. the first app opens the saved session: it owns it, and it is the last session
    first = subprocess.Popen([sys.executable, "-c", FIRST_APP, str(fox_folder)], env=other_app_env(),
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == str(fox_folder)
        assert DesktopConfig.load().last_session == str(fox_folder)

        # 2. a second app starts: the last session is open in the first, it is refused
        second, answers = make_window(engine=FakeEngine(), config=app_config())
        answers.queue = [answer]
        second.startup()
        assert [title for title, _ in answers.asked] == ["The session is open in another window"]
        if answer == "Cancel":
            assert second.session.untitled
        else:
            assert second.session.folder == fox_folder and second.session.read_only

        # 3. meanwhile the first app saves its session under a new name (File > Save as)
        first.stdin.write(str(tmp_path / "Fox v2") + "\n")
        first.stdin.flush()
        fox_v2 = tmp_path / "Fox v2.stylealigned"
        assert first.stdout.readline().strip() == str(fox_v2)
        assert DesktopConfig.load().last_session == str(fox_v2)

        # 4. the second app quits (File > Quit): the last session is still the first app's
        second.quit_action.trigger()
        assert not second.isVisible()
        assert DesktopConfig.load().last_session == str(fox_v2)
    finally:
        first.kill()  # 5. the first app crashes: no quit, its lock stays behind
        first.wait()

    # 6. the next start reopens the first app's session, its own to write, without a question
    again, answers = make_window(engine=FakeEngine(), config=app_config(), startup=True)
    assert answers.asked == []
    assert again.session.folder == fox_v2 and not again.session.read_only
    assert [p.prompt for p in again.session.panels] == ["a fox"]


def test_two_apps_keep_each_others_settings(tmp_path, monkeypatch):
    """Each app writes what it changed, not its stale copy of what the other one changed."""
    monkeypatch.setenv("STYLEALIGNED_CONFIG_DIR", str(tmp_path / "config"))
    DesktopConfig(model="tiny", export_folder=str(tmp_path)).save()
    first, second = DesktopConfig.load(), DesktopConfig.load()
    first.model = "stabilityai/stable-diffusion-xl-base-1.0"
    first.save()
    second.geometry = "01d9d0cb"
    second.save()
    assert second.model == "stabilityai/stable-diffusion-xl-base-1.0"  # taken from the file
    first.export_folder = ""
    first.save()
    stored = DesktopConfig.load()
    assert (stored.model, stored.geometry, stored.export_folder) == (
        "stabilityai/stable-diffusion-xl-base-1.0", "01d9d0cb", "")
