"""The mouse wheel edits a value only in the focused field; elsewhere it scrolls what is around
(one notch over a card once changed a locked seed, or switched a control mode)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QScrollBar, QWidget

from stylealigned_desktop.ui.support.wheel import VALUE_WIDGETS
from tests.ui.uifakes import FakeEngine, picture, storyboard


def wheel(widget, notches: int) -> None:
    """A mouse-wheel event over the middle of ``widget`` (notches > 0: away from the user)."""
    from PySide6.QtGui import QWheelEvent

    middle = QPointF(widget.rect().center())
    event = QWheelEvent(middle, widget.mapToGlobal(middle), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def value_of(widget):
    if isinstance(widget, QAbstractSpinBox):
        return widget.text()
    if isinstance(widget, QComboBox):
        return widget.currentIndex()
    return widget.value()


def storyboard_with_a_locked_depth_panel(window, tmp_path):
    session = storyboard(window, prompts=[f"panel {i}" for i in range(8)])
    session.update_panel(2, seed=42, seed_locked=True)
    session.set_panel_control_picture(2, picture(tmp_path / "pose.png"))
    session.update_panel_control(2, mode="depth")
    return session


def test_the_wheel_over_an_unfocused_locked_seed_scrolls_the_storyboard(
        qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard_with_a_locked_depth_panel(window, tmp_path)
    card = window.storyboard.card_at(2)
    bar = window.storyboard.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    assert not card.seed.hasFocus()

    wheel(card.seed, -1)
    assert session.panels[2].seed == 42 and card.seed.value() == 42
    assert session.panels[2].seed_locked
    assert bar.value() > 0  # the storyboard scrolled instead
    wheel(card.mode, -1)
    wheel(card.mode, +1)
    assert session.panels[2].control.mode == "depth"
    assert card.mode.currentData() == "depth"

    # in the field the artist clicked into, the wheel does edit
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    card.seed.setFocus()
    qtbot.waitUntil(card.seed.hasFocus)
    wheel(card.seed, +1)
    assert session.panels[2].seed == 43


def test_no_value_in_the_window_changes_under_an_unfocused_wheel(qtbot, make_window, tmp_path):
    window, _ = make_window(engine=FakeEngine())
    storyboard_with_a_locked_depth_panel(window, tmp_path)
    window.settings_panel.advanced_section.toggle.setChecked(True)
    widgets = [w for w in window.findChildren(QWidget)
               if isinstance(w, VALUE_WIDGETS) and not isinstance(w, QScrollBar)]
    assert len(widgets) > 30  # settings, style, every card
    assert all(w.focusPolicy() == Qt.FocusPolicy.StrongFocus for w in widgets)
    window.grid.setFocus()
    for notches in (-1, +1, +1, -1):
        before = [value_of(w) for w in widgets]
        for widget in widgets:
            assert not widget.hasFocus()
            wheel(widget, notches)
        changed = [w.objectName() or type(w).__name__ for w, old in zip(widgets, before)
                   if value_of(w) != old]
        assert changed == []


def test_a_new_card_follows_the_rule(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=["one"])
    window.new_panel_action.trigger()
    card = window.storyboard.card_at(1)
    seed = session.panels[1].seed
    wheel(card.seed, +1)
    assert session.panels[1].seed == seed
    assert card.seed.focusPolicy() == Qt.FocusPolicy.StrongFocus
