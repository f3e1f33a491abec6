"""At 1280×800 (and the first-start 1440×900) no text is cut and no dock scrolls sideways
(issue 30, item 11). Each state is grabbed to ``$LAYOUT_SHOTS`` when set, to look at."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QWidget,
)

from tests.ui.uifakes import FakeEngine, storyboard

SIZES = [(1280, 800), (1440, 900)]


def cut_text(root: QWidget) -> list[str]:
    """What is cut in ``root``: a label or button narrower than its text, a wrapped label
    lower than its lines, a field or button lower than its text, a visible scroll area with a
    horizontal scrollbar."""
    # a text set just now waits for its layout: what the artist sees comes after it
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
    problems = []
    fields = (root.findChildren(QLineEdit) + root.findChildren(QComboBox)
              + root.findChildren(QAbstractSpinBox) + root.findChildren(QAbstractButton))
    for field in fields:
        if isinstance(field.parentWidget(), (QComboBox, QAbstractSpinBox)):
            continue  # the editor inside a combo or spin box: the box around it is checked
        if field.isVisibleTo(root) and field.height() < field.minimumSizeHint().height():
            problems.append(f"{type(field).__name__}: {field.height()} px high, needs "
                            f"{field.minimumSizeHint().height()}")
    widgets = root.findChildren(QLabel) + root.findChildren(QAbstractButton)
    for widget in widgets:
        if not widget.isVisibleTo(root) or not widget.text() or widget.width() <= 0:
            continue
        name = f"{type(widget).__name__} {widget.text()[:40]!r}"
        if isinstance(widget, QLabel) and widget.wordWrap():
            if widget.heightForWidth(widget.width()) > widget.height():
                problems.append(f"{name}: {widget.height()} px high, needs "
                                f"{widget.heightForWidth(widget.width())}")
            continue
        needed = (widget.minimumSizeHint() if isinstance(widget, QAbstractButton)
                  else widget.sizeHint()).width()
        if widget.width() < needed:
            problems.append(f"{name}: {widget.width()} px wide, needs {needed}")
    for area in root.findChildren(QAbstractScrollArea):
        if area.isVisibleTo(root) and area.horizontalScrollBar().isVisible():
            problems.append(f"{type(area).__name__} in {type(area.parentWidget()).__name__} "
                            "scrolls sideways")
    return problems


@pytest.fixture(autouse=True, params=[False, True], ids=["light", "dark"])
def app_theme(request, qapp, monkeypatch):
    """The window as the app shows it: its style, palette and stylesheet (they change sizes: a
    card's control thumbnail needs a pixel more with the stylesheet), in the light and the dark
    scheme; the conftest puts the look before back."""
    from stylealigned_desktop.ui.support import apply_theme, theme

    monkeypatch.setattr(theme, "system_is_dark", lambda app: request.param)
    assert apply_theme(qapp) is request.param
    return request.param


def look(widget: QWidget, name: str) -> None:
    folder = os.environ.get("LAYOUT_SHOTS")
    if folder:
        widget.grab().save(os.path.join(folder, f"{name}.png"))


def settle(qtbot) -> None:
    qtbot.wait(50)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_window_fresh_and_with_everything_open_cuts_nothing(qtbot, make_window, size):
    window, _ = make_window(engine=FakeEngine())
    window.resize(*size)
    settle(qtbot)
    look(window, f"fresh-{size[0]}")
    assert cut_text(window) == []
    window.settings_panel.advanced_section.toggle.setChecked(True)
    settle(qtbot)
    look(window, f"advanced-{size[0]}")
    assert cut_text(window) == []


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_window_during_a_six_panel_run_cuts_nothing(qtbot, make_window, size):
    engine = FakeEngine(held=True)  # each step when the test has looked: all six are in the run
    window, _ = make_window(engine=engine)
    window.resize(*size)
    storyboard(window, prompts=tuple(f"a {animal} crossing a wide river at dusk" for animal in
                                     ("fox", "crow", "bear", "hare", "otter", "heron")),
               steps=20, width=64, height=64)
    with qtbot.waitSignal(window.worker.job_ended, timeout=60000):
        window.generate_action.trigger()
        during = []
        for step in range(1, 7):  # at several moments of the run: its texts change as it goes
            engine.allow_steps(1)
            qtbot.waitUntil(lambda step=step: f"Step {step}/20" in window.run_bar.progress.format(), timeout=60000)
            settle(qtbot)
            during += cut_text(window)
        look(window, f"running-{size[0]}")
        engine.let_go()
    settle(qtbot)
    look(window, f"done-{size[0]}")
    assert during == []
    assert cut_text(window) == []


def test_the_first_start_model_dialog_cuts_nothing_even_after_a_failed_download(qtbot):
    from stylealigned_desktop.ui.dialogs import ModelDialog

    def no_space(repo_id, ignore_patterns, tqdm_class):
        raise OSError("[Errno 28] No space left on device: '/home/artist/.cache/huggingface/hub/"
                      "models--stabilityai--stable-diffusion-xl-base-1.0/blobs/3a1c.incomplete'")

    dialog = ModelDialog("", None, download_fn=no_space, first_run=True)
    qtbot.addWidget(dialog)
    dialog.show()
    settle(qtbot)
    look(dialog, "model-dialog")
    assert cut_text(dialog) == []
    scroller = dialog.findChild(QAbstractScrollArea)
    assert not scroller.verticalScrollBar().isVisible()  # every choice in view at once
    with qtbot.waitSignal(dialog.download.failed, timeout=20000):
        dialog.download_button.click()
    settle(qtbot)
    look(dialog, "model-dialog-failed")
    assert "disk space" in dialog.message.text() and dialog.message.isVisible()
    assert cut_text(dialog) == []
    screen = dialog.screen().availableGeometry()
    assert screen.contains(dialog.frameGeometry())  # all of it on the 800 px high screen
    assert not scroller.verticalScrollBar().isVisible()  # the message took no choice's room


def test_the_characters_tab_and_a_shown_run_fit_1280_by_800(qtbot, make_window, tmp_path):
    """A character with the artist's picture on one anchor and a drawn one beside it, then a
    past run shown from the History: the window stays 1280 wide, nothing is cut, and the
    anchors stand in one row, top-aligned."""
    from .test_characters_window import add_mira
    from .test_history_characters import pick_run
    from .uifakes import drop_files, picture, run_and_wait

    window, _ = make_window(engine=FakeEngine())
    window.resize(1280, 800)
    storyboard(window, prompts=("[Mira] crosses a wide river at dusk", "a crow"))
    window.characters_dock.raise_()
    add_mira(qtbot, window, window.characters)
    slots = window.characters.slots
    drop_files(slots[0], [picture(tmp_path / "mira.png", colour=(240, 180, 40))])
    qtbot.waitUntil(lambda: window.session.character("Mira").picture(0) is not None, timeout=60000)
    settle(qtbot)
    look(window, "characters-1280")
    assert [slot.geometry().top() for slot in slots] == [slots[0].geometry().top()] * len(slots)
    assert cut_text(window) == []
    run_and_wait(qtbot, window)
    pick_run(qtbot, window)
    settle(qtbot)
    look(window, "shown-run-1280")
    assert window.width() == 1280 and window.minimumSizeHint().width() <= 1280
    assert cut_text(window) == []
