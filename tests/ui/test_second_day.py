"""Issue 30 ("An artist's second day") in the real window: the grid's re-roll button, Cancel all
only while something runs."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from stylealigned_desktop.ui.threads import JobState
from tests.ui import uifakes
from tests.ui.uifakes import FakeEngine, run_and_wait

pytestmark = pytest.mark.slow


def pixels(path):
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def test_the_re_roll_button_under_a_grid_picture_re_rolls_that_panel(qtbot, make_window):
    window, _ = make_window()
    session = uifakes.storyboard(window, ("a fox", "a crow", "a bear"), "ink sketch.", steps=2, width=96, height=64)
    run_and_wait(qtbot, window, window.runs.generate, timeout=600000)  # the first run builds tiny
    before = {i: pixels(window.grid.tiles[i].path) for i in range(3)}
    seeds = [p.seed for p in session.panels]
    button = window.grid.tiles[2].reroll_button
    assert button.isVisible() and button.isEnabled()
    job = run_and_wait(qtbot, window, button.click, timeout=600000)
    assert job.state is JobState.finished and job.request.only == (2,)
    after = {i: pixels(window.grid.tiles[i].path) for i in range(3)}
    assert after[0] == before[0] and after[1] == before[1] and after[2] != before[2]
    assert [p.seed for p in session.panels][:2] == seeds[:2] and session.panels[2].seed != seeds[2]


def test_the_context_menus_re_roll_this_panel_re_rolls_that_panel(qtbot, make_window):
    """The picture's right-click menu, chosen with the keyboard as the artist may."""
    from PySide6.QtCore import QPoint, Qt, QTimer
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication

    window, _ = make_window(engine=FakeEngine())
    session = uifakes.storyboard(window, ("a fox", "a crow", "a bear"))
    run_and_wait(qtbot, window)
    seeds = [p.seed for p in session.panels]
    tile = window.grid.tiles[1]
    chosen = []

    def choose() -> None:
        menu = QApplication.activePopupWidget()
        action = next(a for a in menu.actions() if a.text() == "Re-roll this panel")
        chosen.append(action.text())
        menu.setActiveAction(action)
        qtbot.keyClick(menu, Qt.Key.Key_Return)

    with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
        QTimer.singleShot(100, choose)
        # a right click on the picture: the window system sends the tile a context-menu event
        QApplication.sendEvent(tile, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(20, 40),
                                                       tile.mapToGlobal(QPoint(20, 40))))
    assert chosen and ended.args[0].request.only == (1,)
    assert [p.seed for p in session.panels][::2] == seeds[::2] and session.panels[1].seed != seeds[1]


def test_cancel_all_is_offered_only_while_something_runs(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine(step_s=0.05))
    uifakes.storyboard(window, steps=6)
    assert not window.cancel_all_action.isEnabled() and not window.cancel_action.isEnabled()
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        window.runs.generate()
        assert window.cancel_all_action.isEnabled()
    assert not window.cancel_all_action.isEnabled()


class ReadsTwoPictures(FakeEngine):
    """Reports what the engine reports for a set with two reference pictures: both read, one
    bar; then the steps; then every picture decoded."""

    def generate(self, request, on_event, cancel):
        from stylealigned_desktop.engine import events as ev

        for picture in (1, 2):
            for step in range(1, 4):
                time.sleep(0.01)
                on_event(ev.Inverting(step, 3, picture, 2))

        def decoding_too(event):
            if isinstance(event, ev.PanelDone) and event.index is None:  # the first picture back
                for done in range(1, 1 + 1 + len(request.selected)):
                    time.sleep(0.01)
                    on_event(ev.Decoding(done, 1 + len(request.selected)))
            on_event(event)

        return super().generate(request, decoding_too, cancel)


def test_the_run_bar_names_each_phase_counts_the_whole_job_and_says_time_left(qtbot, make_window):
    window, _ = make_window(engine=ReadsTwoPictures(step_s=0.02))
    uifakes.storyboard(window, steps=5)
    bar = window.run_bar.progress
    shown = []
    window.worker.event.connect(lambda wevent: shown.append((bar.format(), bar.value())))
    run_and_wait(qtbot, window, window.runs.generate)
    reading = [(text, value) for text, value in shown if "Reading reference picture" in text]
    assert [text.split(":")[1].strip() for text, _ in reading][:3] == ["Reading reference picture 1 of 2"] * 3
    assert "Reading reference picture 2 of 2" in reading[-1][0] and reading[-1][1] == bar.maximum()
    values = [value for _, value in reading]
    assert values == sorted(values) and values[2] == bar.maximum() // 2  # one bar: picture 2 goes on from half
    assert any(" left" in text for text, _ in reading[1:])
    finishing = [text for text, _ in shown if "Finishing" in text]
    assert finishing and finishing[-1].endswith("Finishing: picture 4 of 4 decoded")


def test_without_a_gpu_the_memory_setting_says_what_auto_picks_and_why(qtbot, make_window):
    import torch

    from stylealigned_desktop.engine.memory import MEMORY_MODES, NO_GPU_REASON

    window, _ = make_window(engine=FakeEngine())
    combo = window.settings_panel.memory
    assert [combo.itemData(i) for i in range(combo.count())] == list(MEMORY_MODES)
    with qtbot.waitSignal(window.runs.no_gpu, timeout=60000) as said:
        window.runs.warm_up()
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        assert said.args == [None] and "no GPU" not in combo.itemText(0)
        return
    assert said.args == [NO_GPU_REASON]
    assert combo.itemText(combo.findData("auto")) == "Auto (Fast here: no GPU)"
    assert combo.toolTip().startswith("No GPU on this computer: the models run from system memory")
