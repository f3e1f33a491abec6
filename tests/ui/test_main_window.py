"""The window end to end on the real engine with the tiny model: live previews then finals,
cancel, re-roll of one panel, event-loop latency, save/close/reopen, a killed autosave."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtGui import QTextCursor

from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.session import atomic, store
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.threads import JobState
from tests.ui import uifakes
from tests.ui.uifakes import FakeEngine, drop_files, picture, run_and_wait

pytestmark = pytest.mark.slow

SMALL = {"steps": 3, "width": 64, "height": 64}


def storyboard(window, prompts=("a fox", "a crow", "a bear"), style="ink sketch.", **settings):
    return uifakes.storyboard(window, prompts, style, **{**SMALL, **settings})


def pixels(path):
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def test_generate_shows_live_previews_then_final_images(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window)
    previews = []
    original = window.grid.show_preview

    def record(index, image, step, total):
        previews.append((index, step, total, window.grid.tiles[index].final))
        original(index, image, step, total)

    window.grid.show_preview = record
    job = run_and_wait(qtbot, window, window.runs.generate)
    assert job.state is JobState.finished, job.error

    # previews arrived for the reference and every panel while the run went on
    assert {index for index, *_ in previews} == {None, 0, 1, 2}
    assert all(total == 3 and not final for _, _, total, final in previews)
    # then the final pictures, written to the session's run folder with their parameters
    assert len(session.history) == 1
    record_ = session.history[0]
    assert len(record_.generated) == 3
    for index in (None, 0, 1, 2):
        tile = window.grid.tiles[index]
        assert tile.final and tile.path is not None and tile.path.is_file()
        assert tile.image().size().width() == 64
    params = read_parameters(window.grid.tiles[1].path)
    assert params["prompt"] == "a crow, ink sketch." and params["seed"] == session.panels[1].seed
    assert window.run_bar.progress.value() == 1000
    assert "done" in window.run_bar.progress.format()
    # (UI-thread stalls during a run are measured by benchmarks/bench_ui_latency.py)
    assert window.history.list.count() == 1


def test_cancel_mid_run_stops_and_keeps_nothing(qtbot, make_window):
    engine = FakeEngine(held=True)
    window, _ = make_window(engine=engine)
    session = storyboard(window, steps=4)
    window.runs.generate()
    engine.allow_steps(1)
    qtbot.waitUntil(lambda: "Step 1/4" in window.run_bar.progress.format(), timeout=60000)
    assert window.run_bar.cancel_button.isEnabled()
    # the engine takes no step without the test: ending at all means the cancel stopped the run
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        window.run_bar.cancel_button.click()
    assert ended.args[0].state is JobState.cancelled
    assert "cancelled" in window.run_bar.progress.format()
    assert session.history == ()
    # the previews are withdrawn: no tile pretends to hold a picture
    assert all(not tile.final and tile.image() is None for tile in window.grid.tiles.values())
    assert not window.run_bar.cancel_button.isEnabled()


def test_cancel_mid_run_on_the_real_engine(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window, steps=500)
    window.runs.generate()
    qtbot.waitUntil(lambda: "Step" in window.run_bar.progress.format(), timeout=60000)
    # 500 steps take far longer than the wait: ending at all means the cancel stopped the run
    with qtbot.waitSignal(window.worker.job_ended, timeout=20000) as ended:
        window.runs.cancel()
    assert ended.args[0].state is JobState.cancelled
    assert session.history == ()


def test_reroll_of_one_panel_changes_only_that_panel(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window)
    run_and_wait(qtbot, window, window.runs.generate)
    before = {i: (window.grid.tiles[i].path, pixels(window.grid.tiles[i].path)) for i in range(3)}
    seeds = [p.seed for p in session.panels]
    job = run_and_wait(qtbot, window, lambda: window.storyboard.card_at(1).reroll_button.click())
    assert job.state is JobState.finished and job.request.only == (1,)
    after = {i: (window.grid.tiles[i].path, pixels(window.grid.tiles[i].path)) for i in range(3)}
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1][0] != before[1][0] and after[1][1] != before[1][1]
    assert [p.seed for p in session.panels][0::2] == seeds[0::2]
    assert session.panels[1].seed != seeds[1]
    assert len(session.history) == 2 and session.history[1].only == (1,)


def test_engine_errors_are_shown_and_the_app_goes_on(qtbot, make_window):
    engine = FakeEngine(fail_with=RuntimeError("CUDA out of memory. Tried to allocate 4 GiB"))
    window, _ = make_window(engine=engine)
    storyboard(window)
    job = run_and_wait(qtbot, window, window.runs.generate)
    assert job.state is JobState.failed
    assert not window.banner.isHidden() and "ran out of memory" in window.banner_text.text()
    engine.fail_with = None
    job = run_and_wait(qtbot, window, window.runs.generate)
    assert job.state is JobState.finished


def test_session_problems_are_reported_before_anything_runs(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    session = Session()
    window.sessions.set_session(session)
    window.runs.generate()
    assert "no panels" in window.banner_text.text()
    assert window.worker.current is None and not window.worker.pending


def test_jobs_queue_while_one_runs(qtbot, make_window):
    engine = FakeEngine(held=True)
    window, _ = make_window(engine=engine)
    session = storyboard(window, steps=20)
    window.runs.generate()
    qtbot.waitUntil(lambda: window.worker.current is not None, timeout=60000)
    window.runs.reroll(2)  # the first run waits for its steps: the re-roll waits behind it
    assert window.run_bar.queue_label.text() == "1 waiting"
    assert window.run_bar.generate_button.text() == "Queue another"
    engine.allow_steps(2 * 20)
    qtbot.waitUntil(lambda: len(session.history) == 2, timeout=60000)
    assert [r.only for r in session.history] == [None, (2,)]
    assert [r.only for r in engine.requests] == [None, (2,)]


def test_save_close_and_reopen_restores_everything(qtbot, make_window, tmp_path):
    config = DesktopConfig(model="tiny")
    window, answers = make_window(config=config)
    session = storyboard(window)
    with qtbot.waitSignal(window.gallery.import_finished, timeout=10000):
        drop_files(window.gallery.list.viewport(), [picture(tmp_path / "mood.png")])
    reference = session.references[0]
    session.set_reference_caption(reference.id, "a red field")
    session.set_active_reference(None)
    session.update_panel(0, seed=4242, seed_locked=True)
    with qtbot.waitSignal(window.storyboard.control_picture_settled, timeout=10000):
        drop_files(window.storyboard.card_at(2), [picture(tmp_path / "pose.png", (0, 90, 0))])
    session.update_panel_control(2, mode="map", scale=0.6)
    session.update_style_aligned(shared_score_shift=0.3, adain_values=True)
    run_and_wait(qtbot, window, window.runs.generate)
    assert window.sessions.save_as(tmp_path / "Fox story")
    saved = session.to_dict()
    folder = session.folder
    assert folder.name == "Fox story.stylealigned"
    window.close()
    assert not window.isVisible()
    assert config.last_session == str(folder)

    reopened, _ = make_window(config=DesktopConfig.load(), startup=True)
    again = reopened.session
    assert again.folder == folder and not again.untitled
    assert again.to_dict() == saved
    # and the widgets show it
    assert reopened.gallery.items() == [reference.id]
    assert [c.prompt.toPlainText() for c in reopened.storyboard.list.cards()] == [
        "a fox", "a crow", "a bear"]
    assert reopened.storyboard.card_at(0).lock.isChecked()
    assert reopened.storyboard.card_at(2).mode.currentData() == "map"
    assert reopened.settings_panel.steps.value() == 3
    assert reopened.settings_panel.flags["adain_values"].isChecked()
    assert reopened.style_panel.text.text() == "ink sketch."
    assert reopened.history.list.count() == 1
    qtbot.waitUntil(lambda: all(t.final for t in reopened.grid.tiles.values()), timeout=60000)
    assert all(t.path.is_file() for t in reopened.grid.tiles.values())


def test_a_killed_autosave_leaves_a_loadable_session(qtbot, make_window, tmp_path, monkeypatch):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=("one", "two"))
    assert window.sessions.save_as(tmp_path / "story")
    good = store.read_session_data(session.folder)

    def killed(handle, data):
        handle.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_write_payload", killed)
    session.add_panel("three")
    qtbot.waitUntil(lambda: not window.banner.isHidden(), timeout=60000)
    assert "Autosave failed" in window.banner_text.text()
    # the process is "killed" now: what is on disk still loads, as the last good version
    leftover = session.folder / ".tmp-session.json.killed"
    leftover.write_text('{"format": "stylealigned-sess')  # a half-written temporary
    loaded = store.load_session(session.folder)
    assert [p.prompt for p in loaded.panels] == ["one", "two"]
    assert store.read_session_data(session.folder) == good
    loaded.close()
    # and once writing works again, the next autosave succeeds
    monkeypatch.undo()
    assert window.sessions.autosaver.flush()
    assert [p.prompt for p in store.load_session(session.folder).panels] == ["one", "two", "three"]


def test_autosave_writes_a_moment_after_a_change(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=("one",))
    window.sessions.save_as(tmp_path / "story")
    card = window.storyboard.card_at(0)
    card.prompt.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(card.prompt, " more")
    assert session.dirty
    qtbot.waitUntil(lambda: not session.dirty, timeout=60000)
    assert store.load_session(session.folder).panels[0].prompt == "one more"


def test_a_session_that_fails_to_load_is_reported_and_left_untouched(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    broken = tmp_path / "broken.stylealigned"
    broken.mkdir()
    (broken / "session.json").write_text('{"format": "stylealigned-session", "schema_versi')
    before = (broken / "session.json").read_bytes()
    window.sessions.set_session(Session())
    assert not window.sessions.open_session(broken)
    assert "damaged" in window.banner_text.text() and "untouched" in window.banner_text.text()
    assert (broken / "session.json").read_bytes() == before
    newer = tmp_path / "newer.stylealigned"
    newer.mkdir()
    (newer / "session.json").write_text('{"format": "stylealigned-session", "schema_version": 99}')
    assert not window.sessions.open_session(newer)
    assert "newer version" in window.banner_text.text()


def test_after_a_crash_the_unsaved_session_is_offered(qtbot, make_window, monkeypatch, tmp_path):
    import os

    from stylealigned_desktop.session import folders

    # an autosave area of its own: other tests' untitled folders would look crashed too here
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path / "data"))

    crashed = Session()
    crashed.add_panel("the lost panel")
    store.write_session(crashed)
    # the app that wrote it is gone: its lock names a process that no longer exists
    monkeypatch.setattr(folders, "owner_alive", lambda folder: False)
    assert os.path.isdir(crashed.folder)
    window, answers = make_window(engine=FakeEngine())
    answers.queue = ["Restore"]
    window.startup()
    assert answers.asked and "Restore" in answers.asked[0][0]
    assert window.session.folder == crashed.folder
    assert [p.prompt for p in window.session.panels] == ["the lost panel"]
