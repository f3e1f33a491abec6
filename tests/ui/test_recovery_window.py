"""Crash recovery as the artist meets it (issue 10, item 4): after an untitled session is saved
under a name and the app quits normally, the next start asks nothing; after real apps are killed,
the next start offers the work just lost (newest first), and Restore opens exactly that state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from tests.ui.uifakes import OTHER_APP, ROOT, FakeEngine, app_config, other_app_env

KILLED_APP = OTHER_APP + """
window.startup()
window.new_action.trigger()
for prompt in sys.argv[1:]:
    window.session.add_panel(prompt)
    app.processEvents()
    window.sessions.autosaver.flush()
print(window.session.folder, flush=True)
os._exit(1)  # killed: no close, no clean-up, the lock stays behind
"""


def killed_app(*prompts: str) -> Path:
    """Run the real window in another process, type ``prompts`` into new panels of a new
    untitled session, then kill it; returns its autosave folder."""
    done = subprocess.run([sys.executable, "-c", KILLED_APP, *prompts], env=other_app_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def test_recovery_offers_the_work_lost_in_a_crash_and_nothing_after_a_clean_quit(
        qtbot, make_window, monkeypatch, tmp_path):
    # an autosave area and settings of its own: other tests' untitled folders would look
    # crashed here, and their last session would be reopened
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STYLEALIGNED_CONFIG_DIR", str(tmp_path / "config"))
    saved_as = []

    def save_dialog(*args, **kwargs):
        return str(tmp_path / saved_as[-1]), "StyleAligned session (*.stylealigned)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)

    # 1. untitled work, saved under a name (File > Save as), then a normal quit (Ctrl+Q)
    window, answers = make_window(engine=FakeEngine(), config=app_config(), startup=True)
    assert answers.asked == [] and window.session.untitled
    window.session.add_panel("kept under a name")
    window.sessions.autosaver.flush()
    untitled = window.session.folder
    assert (untitled / "session.json").is_file()
    saved_as.append("Story")
    window.save_as_action.trigger()
    story = tmp_path / "Story.stylealigned"
    assert window.session.folder == story
    assert not untitled.exists()  # the untitled autosave is retired by the save
    window.quit_action.trigger()
    assert not window.isVisible()

    # 2. the next start asks nothing and reopens the named session
    window, answers = make_window(engine=FakeEngine(), config=app_config(), startup=True)
    assert answers.asked == []
    assert window.session.folder == story
    window.quit_action.trigger()

    # 3. two apps killed with untitled work: the newest state is offered first, and restored
    older = killed_app("an older crash")
    newer = killed_app("the first panel", "the work just lost")
    window, answers = make_window(engine=FakeEngine(), config=app_config())
    answers.queue = ["Restore"]
    window.startup()
    ((title, text),) = answers.asked
    assert title == "Restore unsaved work?"
    assert "the work just lost" in text and "1 older unsaved session" in text
    assert window.session.folder == newer
    assert [p.prompt for p in window.session.panels] == ["the first panel", "the work just lost"]

    # 4. the restored work saved while quitting: only the older crash is offered next time
    answers.queue = ["Save…"]
    saved_as.append("Recovered")
    window.quit_action.trigger()
    assert not newer.exists() and (tmp_path / "Recovered.stylealigned").is_dir()
    window, answers = make_window(engine=FakeEngine(), config=app_config())
    answers.queue = ["Discard"]
    window.startup()
    ((title, text),) = answers.asked
    assert "an older crash" in text and "older unsaved" not in text
    assert not older.exists()  # Discard deletes it
    window.quit_action.trigger()

    # 5. nothing left to recover: no question at all
    window, answers = make_window(engine=FakeEngine(), config=app_config(), startup=True)
    assert answers.asked == []
