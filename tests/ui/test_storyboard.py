"""The storyboard: add, edit, duplicate, delete, drag-reorder, seeds, control pictures."""

from __future__ import annotations

import random

from PySide6.QtCore import QMimeData
from PySide6.QtWidgets import QApplication

from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.storyboard import PANEL_MIME, StoryboardView
from tests.ui.uifakes import drop_files, drop_mime, picture


def make_view(qtbot, prompts=()):
    session = Session(rng=random.Random(7))
    for prompt in prompts:
        session.add_panel(prompt)
    view = StoryboardView()
    qtbot.addWidget(view)
    view.set_session(session)
    view.resize(420, 900)
    view.show()
    qtbot.waitExposed(view)
    return session, view


def test_add_and_type_a_prompt(qtbot):
    session, view = make_view(qtbot)
    assert not view.empty_hint.isHidden()
    view.add_button.click()
    assert len(session.panels) == 1 and view.empty_hint.isHidden()
    card = view.cards[session.panels[0].id]
    qtbot.keyClicks(card.prompt, "a fox on a hill")
    assert session.panels[0].prompt == "a fox on a hill"
    # the card kept its widget and cursor while the session notified the change
    assert view.cards[session.panels[0].id] is card
    assert card.prompt.textCursor().position() == len("a fox on a hill")


def test_seed_lock_and_new_seed(qtbot):
    session, view = make_view(qtbot, ["a"])
    card = view.card_at(0)
    card.seed.setValue(1234)
    assert session.panels[0].seed == 1234
    card.lock.click()
    assert session.panels[0].seed_locked
    card.new_seed.click()
    assert session.panels[0].seed != 1234 and card.seed.value() == session.panels[0].seed


def test_duplicate_and_delete(qtbot):
    session, view = make_view(qtbot, ["one", "two", "three"])
    view.card_at(1).duplicate_button.click()
    assert [p.prompt for p in session.panels] == ["one", "two", "two", "three"]
    assert session.panels[1].id != session.panels[2].id
    assert view.order() == [p.id for p in session.panels]
    view.card_at(0).delete_button.click()
    assert [p.prompt for p in session.panels] == ["two", "two", "three"]
    assert [c.title.text() for c in view.list.cards()] == ["Panel 1", "Panel 2", "Panel 3"]


def test_drag_reorder_with_drop_events(qtbot):
    session, view = make_view(qtbot, ["one", "two", "three", "four"])
    ids = [p.id for p in session.panels]
    cards = view.list.cards()

    def drag(panel_id, y):
        mime = QMimeData()
        mime.setData(PANEL_MIME, panel_id.encode())
        enter, drop = drop_mime(view.list, mime, pos=(30, y))
        assert enter.isAccepted() and drop.isAccepted()

    # "one" dropped below the last card goes to the end
    drag(ids[0], cards[3].geometry().bottom() - 2)
    assert [p.prompt for p in session.panels] == ["two", "three", "four", "one"]
    # "four" dropped above the first card goes to the front
    cards = view.list.cards()
    drag(ids[3], cards[0].geometry().top() + 2)
    assert [p.prompt for p in session.panels] == ["four", "two", "three", "one"]
    assert view.order() == [p.id for p in session.panels]
    QApplication.processEvents()


def test_keyboard_move(qtbot):
    session, view = make_view(qtbot, ["one", "two", "three"])
    view.select(session.panels[0].id)
    view.move_current(+1)
    assert [p.prompt for p in session.panels] == ["two", "one", "three"]
    view.move_current(-1)
    view.move_current(-1)  # already first: nothing happens
    assert [p.prompt for p in session.panels] == ["one", "two", "three"]


def test_dropping_a_control_picture_on_a_card(qtbot, tmp_path):
    session, view = make_view(qtbot, ["a", "b"])
    wanted = []
    view.control_map_wanted.connect(wanted.append)
    card = view.card_at(1)
    with qtbot.waitSignal(view.control_picture_settled, timeout=60000):
        enter, drop = drop_files(card, [picture(tmp_path / "pose.png")])
        assert enter.isAccepted() and drop.isAccepted()
        # read off the UI thread: the panel changes when the picture has been checked
        assert session.panels[1].control.image is None
        assert card.control_note.text() == "reading pose.png…"
    control = session.panels[1].control
    assert control.image and session.path(control.image).is_file()
    assert session.panels[0].control.image is None
    assert wanted == [session.panels[1].id]
    assert card.mode.isVisible() and card.strength.isVisible()
    card.mode.setCurrentIndex(card.mode.findData("depth"))
    card.strength.setValue(0.5)
    assert session.panels[1].control.mode == "depth"
    assert session.panels[1].control.scale == 0.5
    assert card.map_kind.isHidden()
    card.mode.setCurrentIndex(card.mode.findData("map"))
    assert not card.map_kind.isHidden()
    card.map_kind.setCurrentIndex(card.map_kind.findData("canny"))
    assert session.panels[1].control.mode == "map"
    assert session.panels[1].control.map_kind == "canny"
    card.mode.setCurrentIndex(card.mode.findData("depth"))
    card.clear_control.click()
    assert session.panels[1].control.image is None
    assert session.panels[1].control.mode == "depth"  # the mode is kept for the next picture


def test_a_bad_control_picture_is_refused_with_a_message(qtbot, tmp_path):
    session, view = make_view(qtbot, ["a"])
    before = session.to_dict()
    messages = []
    view.message.connect(lambda text, problem: messages.append((text, problem)))
    bad = tmp_path / "sketch.png"
    bad.write_text("not a picture")
    note = view.card_at(0).control_note.text()
    with qtbot.waitSignal(view.control_picture_settled, timeout=60000):
        drop_files(view.card_at(0), [bad])
    assert session.to_dict() == before
    assert messages and messages[-1][1] and "sketch.png" in messages[-1][0]
    assert view.card_at(0).control_note.text() == note  # "reading …" is gone again


def test_a_control_picture_dropped_on_a_panel_deleted_meanwhile_changes_nothing(qtbot, tmp_path):
    session, view = make_view(qtbot, ["a", "b"])
    gone = session.panels[0].id
    with qtbot.waitSignal(view.control_picture_settled, timeout=60000):
        drop_files(view.card_at(0), [picture(tmp_path / "pose.png")])
        session.remove_panel(0)  # before the picture has been read
    assert [p.control.image for p in session.panels] == [None]
    assert gone not in view.cards


def test_the_newest_of_two_quick_drops_on_a_panel_wins(qtbot, tmp_path):
    session, view = make_view(qtbot, ["a"])
    first = picture(tmp_path / "first.png", (250, 0, 0), size=(600, 400))
    second = picture(tmp_path / "second.png", (0, 0, 250))
    card = view.card_at(0)
    drop_files(card, [first])
    drop_files(card, [second])
    qtbot.waitUntil(lambda: not view.reading_controls and view.pool.pending == 0, timeout=60000)
    stored = session.path(session.panels[0].control.image)
    assert stored.read_bytes() == second.read_bytes()


def test_dragging_a_panel_to_the_end_of_a_long_storyboard(qtbot):
    """Held near the bottom, the list scrolls; dropped there, the panel goes last."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

    session, view = make_view(qtbot, [f"panel {i}" for i in range(10)])
    view.resize(420, 500)
    bar = view.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    first = session.panels[0].id
    mime = QMimeData()
    mime.setData(PANEL_MIME, first.encode("utf-8"))
    panel_list, viewport = view.list, view.scroll.viewport()

    def at_bottom_edge() -> QPoint:  # a few pixels above the visible bottom, in list coordinates
        return panel_list.mapFrom(viewport, QPoint(40, viewport.height() - 6))

    move, drop = Qt.DropAction.MoveAction, Qt.MouseButton.LeftButton
    none = Qt.KeyboardModifier.NoModifier
    QApplication.sendEvent(panel_list, QDragEnterEvent(at_bottom_edge(), move, mime, drop, none))
    QApplication.sendEvent(panel_list, QDragMoveEvent(at_bottom_edge(), move, mime, drop, none))
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=10000)
    QApplication.sendEvent(panel_list, QDropEvent(QPointF(at_bottom_edge()), move, mime, drop,
                                                  none))
    assert session.panels[-1].id == first
    assert [p.prompt for p in session.panels] == [f"panel {i}" for i in (*range(1, 10), 0)]


def _choose(qtbot, combo, data):
    """Open the combo's list and click the entry holding ``data``, as a user does."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    combo.showPopup()
    popup = combo.view()
    qtbot.waitUntil(popup.isVisible)
    index = popup.model().index(combo.findData(data), 0)
    popup.scrollTo(index)
    pos = popup.visualRect(index).center()
    QTest.mouseClick(popup.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: not popup.isVisible())


def test_each_panel_chooses_its_own_size(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from stylealigned_desktop.ui.storyboard.card import CUSTOM_SIZE, SET_SIZE

    session, view = make_view(qtbot, ["the harbour at dawn", "a face"])
    card = view.card_at(0)
    assert card.size_choice.currentData() == SET_SIZE and card.custom_width.isHidden()
    _choose(qtbot, card.size_choice, "1344x768")
    assert session.panels[0].size == (1344, 768) and session.panels[1].size is None
    assert "landscape" in card.size_choice.currentText()
    _choose(qtbot, card.size_choice, CUSTOM_SIZE)
    assert card.custom_width.isVisible() and card.custom_width.value() == 1344
    card.custom_width.selectAll()
    QTest.keyClicks(card.custom_width, "1000")  # not a multiple of 64: rounded when done
    QTest.keyClick(card.custom_width, Qt.Key.Key_Return)
    assert session.panels[0].size == (1024, 768) and card.custom_width.value() == 1024
    _choose(qtbot, card.size_choice, SET_SIZE)
    assert session.panels[0].size is None and card.custom_width.isHidden()
    session.update_panel(1, size=(832, 1216))  # an edit from elsewhere (restore, import) shows
    assert view.card_at(1).size_choice.currentData() == "832x1216"
    session.update_panel(1, size=(640, 640))
    assert view.card_at(1).size_choice.currentData() == CUSTOM_SIZE
    assert (view.card_at(1).custom_width.value(), view.card_at(1).custom_height.value()) == (640, 640)
