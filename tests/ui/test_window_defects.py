"""Defects found by trying the window as an artist (issue 10), each pinned by a test that fails
on the code that had it: quitting froze the window, no feedback after Generate on a cold start,
tracebacks only on stderr, typing in a card did not select it, and the smaller ones."""

from __future__ import annotations

import logging
import threading

import pytest

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.support import install_exception_hook
from stylealigned_desktop.ui.threads import JobState
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard


class SlowWarmUp(FakeEngine):
    """An engine whose warm-up (torch's imports on a cold start) lasts until ``release``."""

    def __init__(self) -> None:
        super().__init__(step_s=0.02)
        self.warming = threading.Event()
        self.release = threading.Event()

    def warm_up(self) -> None:
        self.warming.set()
        self.release.wait()


def record_waits_for_the_worker(worker, monkeypatch) -> list:
    """Every wait of the UI thread for the worker thread to end (its ``join``), recorded.

    Quitting must never wait for it: a warm-up import or a real SDXL step can last seconds."""
    waits = []
    thread = worker._thread
    join = thread.join

    def recording_join(timeout=None):
        waits.append(timeout)
        join(timeout)

    monkeypatch.setattr(thread, "join", recording_join)
    return waits


# ----- 6: quitting hides the window at once, in every state, the session saved first ----------
def test_quit_during_a_slow_warm_up_hides_the_window_at_once(
        qtbot, make_window, tmp_path, monkeypatch):
    engine = SlowWarmUp()
    window, _ = make_window(engine=engine)
    session = storyboard(window, prompts=("one",))
    assert window.sessions.save_as(tmp_path / "story")
    window.runs.warm_up()
    assert engine.warming.wait(60)
    waits = record_waits_for_the_worker(window.worker, monkeypatch)
    session.add_panel("added just before quitting")
    try:
        window.close()
        assert not window.isVisible()
        assert waits == [], "quitting waited for the worker's warm-up"
        assert not engine.release.is_set()  # the import is still going on: it was not waited for
    finally:
        engine.release.set()
    # the session was saved before the window went
    assert [p.prompt for p in store.load_session(tmp_path / "story.stylealigned").panels] == [
        "one", "added just before quitting"]


class SlowStep(FakeEngine):
    """One long denoising step (a real SDXL step on a slow GPU): it ends only on ``release``,
    and sees the cancel only then, as a real step does."""

    def __init__(self) -> None:
        super().__init__(step_s=0.01)
        self.in_step = threading.Event()
        self.release = threading.Event()

    def generate(self, request, on_event, cancel):
        on_event(ev.Step(1, request.sampling.steps))
        self.in_step.set()
        self.release.wait()
        if cancel.is_set():
            on_event(ev.Cancelled())
            return None
        return super().generate(request, on_event, cancel)


def test_quit_mid_run_hides_the_window_at_once_and_cancels_the_run(
        qtbot, make_window, tmp_path, monkeypatch):
    engine = SlowStep()
    window, answers = make_window(engine=engine)
    storyboard(window)
    window.sessions.save_as(tmp_path / "story")
    window.runs.generate()
    assert engine.in_step.wait(60)
    job = window.worker.current
    waits = record_waits_for_the_worker(window.worker, monkeypatch)
    answers.queue = ["Stop it"]
    try:
        window.close()
        assert not window.isVisible()
        assert answers.asked[-1][0] == "A generation is running"
        assert waits == [], "quitting waited for the running step"
        assert job.cancel.is_set() and not engine.release.is_set()
    finally:
        engine.release.set()
    qtbot.waitUntil(lambda: job.state is JobState.cancelled, timeout=60000)


# ----- 7: Generate on a cold start says so at once, and can be cancelled ------------------------
def test_generate_on_a_cold_start_says_starting_and_can_be_cancelled(qtbot, make_window):
    engine = SlowWarmUp()
    window, _ = make_window(engine=engine)
    storyboard(window)
    window.runs.warm_up()  # what the window does a moment after start
    assert engine.warming.wait(60)
    window.generate_action.trigger()
    assert window.run_bar.progress.format() == "Starting: loading the model…"
    assert window.run_bar.cancel_button.isEnabled() and window.cancel_action.isEnabled()
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        window.run_bar.cancel_button.click()
    assert ended.args[0].state is JobState.cancelled
    assert not window.run_bar.cancel_button.isEnabled()
    engine.release.set()
    assert engine.requests == []  # it never ran


# ----- 9: an unexpected exception in a slot goes to the log and the banner ---------------------
@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_slot_goes_to_the_log_and_the_banner(
        qtbot, make_window, monkeypatch, caplog, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    storyboard(window)
    uninstall = install_exception_hook(lambda text: window.show_message(text, True),
                                       tmp_path / "desktop.log")

    def broken(self, *args, **kwargs):
        raise RuntimeError("the disk is on fire\nsecond line")

    monkeypatch.setattr(Session, "add_panel", broken)
    try:
        with caplog.at_level(logging.ERROR):
            window.new_panel_action.trigger()
    finally:
        uninstall()
    assert window.banner_text.text() == (
        "Something went wrong: the disk is on fire (RuntimeError). Details are in the log: "
        f"{tmp_path / 'desktop.log'}.")
    assert not window.banner.isHidden()
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is RuntimeError and "add_panel" in caplog.text


@pytest.mark.qt_no_exception_capture
def test_the_apps_window_sends_slot_exceptions_to_the_log_file_and_the_banner(
        qtbot, monkeypatch, tmp_path):
    """The window as the app makes it (app.open_window, no hook put in by the test): before,
    a traceback went only to stderr and the log the user guide asks for had none."""
    import sys

    from stylealigned_desktop.ui import app
    from stylealigned_desktop.ui.support import DesktopConfig

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # put back after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers = list(root.handlers)
    log_file = app._setup_logging()
    window = app.open_window(DesktopConfig(model="tiny"), log_file)
    qtbot.addWidget(window)
    window.ask = lambda title, text, buttons, default=None, detail="": "Don't save"
    try:
        storyboard(window)

        def broken(self, *args, **kwargs):
            raise RuntimeError("the disk is on fire")

        monkeypatch.setattr(Session, "add_panel", broken)
        window.new_panel_action.trigger()
        assert not window.banner.isHidden()
        assert window.banner_text.text() == (
            "Something went wrong: the disk is on fire (RuntimeError). Details are in the log: "
            f"{log_file}.")
        text = log_file.read_text(encoding="utf-8")
        assert "Traceback" in text and "RuntimeError: the disk is on fire" in text
    finally:
        window.close()
        window.worker.shutdown(5)
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
            handler.close()


def test_other_threads_exceptions_are_logged(caplog):
    uninstall = install_exception_hook(lambda text: None)
    try:
        with caplog.at_level(logging.ERROR):
            thread = threading.Thread(target=lambda: 1 / 0, name="some-pool")
            thread.start()
            thread.join()
    finally:
        uninstall()
    assert "some-pool" in caplog.text and "ZeroDivisionError" in caplog.text


def test_the_log_file_gets_the_traceback(tmp_path, monkeypatch):
    """The app's own logging set-up writes what the hook logs into desktop.log."""
    from stylealigned_desktop.ui import app

    monkeypatch.setenv("STYLEALIGNED_DATA_DIR", str(tmp_path))
    root = logging.getLogger()
    handlers = list(root.handlers)
    path = app._setup_logging()
    try:
        uninstall = install_exception_hook(lambda text: None, path)
        try:
            raise ValueError("written down")
        except ValueError as exc:
            import sys

            sys.excepthook(type(exc), exc, exc.__traceback__)
        finally:
            uninstall()
    finally:
        for handler in set(root.handlers) - set(handlers):
            handler.flush()
            root.removeHandler(handler)
            handler.close()
    text = path.read_text(encoding="utf-8")
    assert "Traceback" in text and "ValueError: written down" in text


# ----- the run bar's smaller lies -------------------------------------------------------------
class FailsOnce(FakeEngine):
    def generate(self, request, on_event, cancel):
        self.fail_with = RuntimeError("CUDA out of memory") if not self.requests else None
        return super().generate(request, on_event, cancel)


def test_no_stale_red_banner_after_a_later_success(qtbot, make_window, tmp_path, monkeypatch):
    from stylealigned_desktop.session import atomic

    engine = FailsOnce(held=True)
    window, _ = make_window(engine=engine)
    session = storyboard(window, steps=20)
    # a run fails while the next one waits: the next one's success takes the banner away
    window.runs.generate()
    window.runs.reroll(1)
    qtbot.waitUntil(lambda: "ran out of memory" in window.banner_text.text(), timeout=60000)
    assert not window.banner.isHidden()  # the re-roll waits for its steps: the banner stays
    engine.allow_steps(20)
    qtbot.waitUntil(lambda: len(session.history) == 1, timeout=60000)
    assert window.banner.isHidden()
    # a failed autosave, then one that works
    window.sessions.save_as(tmp_path / "story")

    def full_disk(handle, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_write_payload", full_disk)
    session.add_panel("more")
    qtbot.waitUntil(lambda: "Autosave failed" in window.banner_text.text(), timeout=60000)
    monkeypatch.undo()
    session.add_panel("and more")
    qtbot.waitUntil(lambda: not session.dirty, timeout=60000)
    assert window.banner.isHidden()


def test_the_worker_waits_at_the_end_for_a_generation_not_for_a_warm_up(qtbot, monkeypatch):
    from stylealigned_desktop.ui.threads import EngineWorker

    engine = SlowWarmUp()
    worker = EngineWorker(lambda: engine)
    worker.warm_up()
    assert engine.warming.wait(60)
    waits = record_waits_for_the_worker(worker, monkeypatch)
    try:
        worker.stop()
        worker.finish(timeout=60)
        assert waits == [], "quitting waited for the warm-up's imports"
    finally:
        engine.release.set()

    from tests.ui.test_worker import make_request

    fake = FakeEngine(step_s=0.05)
    worker = EngineWorker(lambda: fake)
    job = worker.submit(make_request(steps=500))
    qtbot.waitUntil(lambda: worker.current is job, timeout=60000)
    worker.stop()
    worker.finish(timeout=60)  # a cancelled generation ends its step first
    assert worker.current is None and job.cancel.is_set()


# ----- 8: typing in a card selects it: the panel shortcuts act on the card being edited --------
def test_shortcuts_act_on_the_card_being_typed_in(qtbot, make_window):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=("a fox", "a crow", "a bear"))
    board = window.storyboard
    board.select(session.panels[0].id)  # the framed card
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    prompt = board.card_at(2).prompt
    qtbot.mouseClick(prompt.viewport(), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(prompt.hasFocus)
    assert board.current_index() == 2

    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(prompt, Qt.Key.Key_J, ctrl)  # duplicate
    assert [p.prompt for p in session.panels] == ["a fox", "a crow", "a bear", "a bear"]
    prompt = board.card_at(1).prompt
    qtbot.mouseClick(prompt.viewport(), Qt.MouseButton.LeftButton)
    qtbot.keyClick(prompt, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)  # move up
    assert [p.prompt for p in session.panels] == ["a crow", "a fox", "a bear", "a bear"]
    prompt = board.card_at(2).prompt
    qtbot.mouseClick(prompt.viewport(), Qt.MouseButton.LeftButton)
    qtbot.keyClick(prompt, Qt.Key.Key_N, ctrl | Qt.KeyboardModifier.ShiftModifier)  # new panel
    assert [p.prompt for p in session.panels] == ["a crow", "a fox", "a bear", "", "a bear"]
    prompt = board.card_at(1).prompt
    qtbot.mouseClick(prompt.viewport(), Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.worker.job_ended, timeout=20000) as ended:
        qtbot.keyClick(prompt, Qt.Key.Key_R, ctrl)  # re-roll
    assert ended.args[0].request.only == (1,)


def test_a_click_on_a_cards_button_selects_that_card(qtbot, make_window):
    """Found by hand on X: clicking the seed lock of one card, then Ctrl+R, re-rolled the card
    framed before (the buttons take no focus, so focus did not tell)."""
    from PySide6.QtCore import Qt

    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=("a fox", "a crow", "a bear"))
    board = window.storyboard
    board.select(session.panels[2].id)
    qtbot.mouseClick(board.card_at(1).lock, Qt.MouseButton.LeftButton)
    assert session.panels[1].seed_locked and board.current_index() == 1
    with qtbot.waitSignal(window.worker.job_ended, timeout=20000) as ended:
        window.reroll_action.trigger()
    assert ended.args[0].request.only == (1,)


def test_no_two_actions_of_the_window_share_a_shortcut(make_window):
    """Two actions with the same keys are ambiguous to Qt: neither runs (Ctrl+J once did that)."""
    from PySide6.QtGui import QAction

    window, _ = make_window(engine=FakeEngine())
    storyboard(window)
    owners: dict[str, list[str]] = {}
    for action in window.findChildren(QAction):
        for keys in action.shortcuts():
            owners.setdefault(keys.toString(), []).append(action.text())
    assert {keys: texts for keys, texts in owners.items() if len(texts) > 1} == {}
    assert "Ctrl+J" in owners and "Alt+Up" in owners


class Paused(FakeEngine):
    """Reports Loading(0.5), waits; the steps, waits after the last one; then finishes."""

    def __init__(self) -> None:
        super().__init__(step_s=0.001)
        self.go = threading.Semaphore(0)

    def generate(self, request, on_event, cancel):
        on_event(ev.Loading(0.5, "reading the weights"))
        self.go.acquire(timeout=600)
        forward = on_event

        def on_event_pausing(event):
            forward(event)
            if isinstance(event, ev.Step) and event.step == event.total:
                self.go.acquire(timeout=600)  # the pictures are decoded and saved after this

        return super().generate(request, on_event_pausing, cancel)


def test_the_run_bar_tells_the_truth_while_loading_and_finishing(qtbot, make_window):
    engine = Paused()
    window, _ = make_window(engine=engine)
    storyboard(window, steps=6)
    bar = window.run_bar.progress
    window.runs.generate()
    qtbot.waitUntil(lambda: "reading the weights" in bar.format(), timeout=60000)
    assert bar.format().endswith("50%") and bar.value() == bar.maximum() // 2
    engine.go.release()
    qtbot.waitUntil(lambda: "Step 6/6" in bar.format(), timeout=60000)
    assert "finishing" in bar.format() and "0 s left" not in bar.format()
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        engine.go.release()


# ----- 10: the reference tile says when its picture no longer matches the style ---------------
def test_the_reference_tile_is_marked_outdated_when_the_style_changes(qtbot, make_window,
                                                                      tmp_path):
    from tests.ui.uifakes import picture

    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    run_and_wait(qtbot, window)
    tile = window.grid.tiles[None]
    assert tile.final and tile.state.text() == ""
    session.set_style_text("watercolour.")
    assert tile.state.text() == "outdated" and tile.property("stale")
    assert "style changed" in tile.toolTip()
    session.set_style_text("ink sketch.")
    assert tile.state.text() == "" and not tile.property("stale")
    session.set_reference_prompt("a forest")
    assert tile.state.text() == "outdated"
    session.set_reference_prompt("a tree")
    reference = session.add_reference(picture(tmp_path / "mood.png"))
    session.set_active_reference(reference.id)
    assert tile.state.text() == "outdated"
    assert window.grid.tiles[0].state.text() == ""  # the panels' own pictures still match


def test_the_gallery_hint_has_room_of_its_own(qtbot, make_window):
    """The hint under the gallery's strip once sat on its scroll bar: in a short window the
    style dock squeezed it below the height its wrapped text needs."""
    window, _ = make_window(engine=FakeEngine())
    storyboard(window)
    window.resize(1200, 640)
    gallery = window.gallery
    qtbot.waitUntil(lambda: gallery.hint.isVisible())
    qtbot.wait(50)
    hint, strip = gallery.hint.geometry(), gallery.list.geometry()
    assert hint.top() > strip.bottom()
    assert gallery.hint.height() >= gallery.hint.heightForWidth(gallery.hint.width())


# ----- 3: seeds change only when a run finishes; a locked seed never changes --------------------
def test_cancel_keeps_every_seed_and_a_locked_seed_never_changes(qtbot, make_window):
    engine = FakeEngine(held=True)  # the run goes on until the test cancels it
    window, _ = make_window(engine=engine)
    session = storyboard(window, steps=300)
    session.update_panel(0, seed=42, seed_locked=True)
    before = [p.seed for p in session.panels]
    reference_seed = session.style.reference_seed
    window.generate_action.trigger()
    engine.allow_steps(1)
    qtbot.waitUntil(lambda: "Step" in window.run_bar.progress.format(), timeout=60000)
    window.runs.reroll(0)  # a re-roll of the locked panel waits behind it
    assert [p.seed for p in session.panels] == before  # nothing changes while it runs
    assert [window.storyboard.card_at(i).seed.value() for i in range(3)] == before
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        window.cancel_all_action.trigger()  # Shift+Esc: the running one and the waiting one
    # both plans are given up (their job_ended arrive one after the other)
    qtbot.waitUntil(lambda: session.runs_in_progress == 0, timeout=60000)
    assert [p.seed for p in session.panels] == before
    assert session.style.reference_seed == reference_seed and session.history == ()

    engine.let_go()
    session.update_settings(steps=2)
    job = run_and_wait(qtbot, window)
    assert job.state is JobState.finished
    after = [p.seed for p in session.panels]
    assert after[0] == 42 and after[1:] != before[1:]  # a finished run brings its new seeds
    assert [p.seed for p in job.request.panels] == after
    job = run_and_wait(qtbot, window, lambda: window.runs.reroll(0))
    assert job.request.panels[0].seed == 42 and session.panels[0].seed == 42
    assert all(tile.state.text() != "outdated" for tile in window.grid.tiles.values())


def test_a_reference_seed_typed_during_a_run_is_kept_when_it_finishes(qtbot, make_window):
    """As with a panel's seed, the generated reference's seed the artist types while a run goes
    on is newer than the run: the finished run brings the panels their new seeds, not that one."""
    from PySide6.QtCore import Qt

    engine = FakeEngine(held=True)  # the seed is typed while the run waits for its second step
    window, _ = make_window(engine=engine)
    session = storyboard(window, steps=150)
    before = [p.seed for p in session.panels]
    seed_box, lock = window.style_panel.reference_seed, window.style_panel.reference_lock
    if lock.isChecked():  # a generated reference keeps its seed unless the artist unlocks it
        qtbot.mouseClick(lock, Qt.MouseButton.LeftButton)
    assert not session.style.reference_seed_locked
    reference_seed = session.style.reference_seed
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        window.generate_action.trigger()
        engine.allow_steps(1)
        qtbot.waitUntil(lambda: "Step" in window.run_bar.progress.format(), timeout=60000)
        seed_box.setFocus()
        seed_box.selectAll()
        qtbot.keyClicks(seed_box, "4242")
        qtbot.keyClick(seed_box, Qt.Key.Key_Return)
        assert session.style.reference_seed == 4242 and session.runs_in_progress == 1
        engine.let_go()
    job = ended.args[0]
    assert job.state is JobState.finished
    assert job.request.references[0].seed not in (4242, reference_seed)  # the run drew its own
    after = [p.seed for p in session.panels]
    assert after == [p.seed for p in job.request.panels] and after != before  # the run was taken
    assert session.style.reference_seed == 4242 and seed_box.value() == 4242
