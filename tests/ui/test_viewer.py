"""Looking at pictures: the full-size viewer zooms past 100 % (wheel, + / −, fit), pans by dragging,
steps through the set with the arrow keys, and compares two panels or two runs side by side."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from stylealigned_desktop.ui.grid.viewer import ZOOM_STEP, ImageViewer
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard


def open_viewer(qtbot, window, tile) -> ImageViewer:
    before = set(window.findChildren(ImageViewer))
    qtbot.mouseClick(window.grid.tiles[tile].view, Qt.MouseButton.LeftButton)  # a click on it
    (viewer,) = set(window.findChildren(ImageViewer)) - before
    viewer.resize(420, 360)
    viewer.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is viewer)
    return viewer


def roll(view, notches: int) -> None:
    viewport = view.viewport()
    middle = QPointF(viewport.rect().center())
    QApplication.sendEvent(viewport, QWheelEvent(
        middle, viewport.mapToGlobal(middle), QPoint(0, 0), QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False))


def colour_at_centre(image):
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


@pytest.fixture
def two_runs(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    window.resize(1100, 800)
    session = storyboard(window, width=512, height=384)  # larger than the viewer: fit < 100 %
    run_and_wait(qtbot, window)
    first = [p.seed for p in session.panels]
    run_and_wait(qtbot, window)  # new seeds: other pictures
    assert [p.seed for p in session.panels] != first
    return window, session, first


def test_zoom_past_100_percent_with_the_wheel_keys_and_fit(qtbot, two_runs):
    window, _, _ = two_runs
    viewer = open_viewer(qtbot, window, 1)
    view = viewer.view
    fitted = view.zoom()
    assert view.fitting and fitted < 1.0
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert view.zoom() == pytest.approx(1.0)
    roll(view, +3)
    assert view.zoom() == pytest.approx(ZOOM_STEP ** 3)
    assert "195 %" in viewer.zoom_label.text()
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert view.zoom() == pytest.approx(ZOOM_STEP ** 4)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    qtbot.keyClick(viewer, Qt.Key.Key_Minus)
    assert view.zoom() == pytest.approx(ZOOM_STEP ** 2)
    roll(view, -1)
    assert view.zoom() == pytest.approx(ZOOM_STEP)
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert view.fitting and view.zoom() == pytest.approx(fitted)


def test_drag_pans_a_zoomed_picture(qtbot, two_runs):
    window, _, _ = two_runs
    viewer = open_viewer(qtbot, window, 0)
    view = viewer.view
    view.set_zoom(3.0)
    bars = view.horizontalScrollBar(), view.verticalScrollBar()
    assert all(bar.maximum() > 0 for bar in bars)
    before = [bar.value() for bar in bars]
    viewport = view.viewport()
    start = viewport.rect().center()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(viewport, start + QPoint(-12 * step, -9 * step))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=start + QPoint(-60, -45))
    after = [bar.value() for bar in bars]
    # dragging the picture up and left shows more of its right and bottom
    assert after[0] > before[0] and after[1] > before[1]


def test_arrow_keys_step_through_the_set(qtbot, two_runs):
    window, session, _ = two_runs
    viewer = open_viewer(qtbot, window, 0)
    assert viewer.caption.text().startswith("Panel 1 (2 of 4)")
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.caption.text().startswith("Panel 2 (3 of 4)")
    expected = FakeEngine.colour(session.panels[1].seed)
    assert colour_at_centre(viewer.view.image) == expected
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.caption.text().startswith("Reference (1 of 4)")
    assert not viewer.previous_action.isEnabled()
    qtbot.keyClick(viewer, Qt.Key.Key_Left)  # nothing before the first
    assert viewer.caption.text().startswith("Reference")


def test_compare_one_panel_from_two_runs_then_two_panels(qtbot, two_runs):
    window, session, first_seeds = two_runs
    viewer = open_viewer(qtbot, window, 1)
    qtbot.keyClick(viewer, Qt.Key.Key_C)
    assert viewer.compare_box.isVisible() and viewer.compare_action.isChecked()
    assert viewer.shown_title.isVisible() and viewer.shown_title.text().strip() == "Panel 2"
    # the same panel from the earlier run is offered first
    assert viewer.compare_choice.currentText().startswith("Panel 2 · run of ")
    assert colour_at_centre(viewer.view.image) == FakeEngine.colour(session.panels[1].seed)
    assert colour_at_centre(viewer.compare_view.image) == FakeEngine.colour(first_seeds[1])
    # both sides move together
    viewer.view.set_zoom(2.0)
    assert viewer.compare_view.zoom() == pytest.approx(2.0)
    viewer.view.horizontalScrollBar().setValue(100)
    assert viewer.compare_view.horizontalScrollBar().value() == 100
    # two panels of the set side by side
    viewer.compare_choice.setCurrentIndex(viewer.compare_choice.findText("Panel 3"))
    assert colour_at_centre(viewer.compare_view.image) == FakeEngine.colour(session.panels[2].seed)
    qtbot.keyClick(viewer, Qt.Key.Key_C)
    assert viewer.compare_box.isHidden()
    assert viewer.shown_title.isHidden()


def test_compare_keeps_the_zoom_of_the_picture_looked_at(qtbot, two_runs):
    window, _session, _ = two_runs
    viewer = open_viewer(qtbot, window, 1)
    roll(viewer.view, 6)
    zoom = viewer.view.zoom()
    assert zoom > 1 and not viewer.view.fitting
    qtbot.keyClick(viewer, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: viewer.compare_view.isVisible())
    qtbot.wait(50)  # the layout gives the two sides their room
    assert viewer.view.zoom() == pytest.approx(zoom) and not viewer.view.fitting
    assert viewer.compare_view.zoom() == pytest.approx(zoom)
    assert viewer.zoom_label.text() == f"{zoom * 100:.0f} %"
