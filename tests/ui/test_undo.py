"""Undo / redo (Edit menu, Ctrl+Z / Ctrl+Shift+Z) of every kind of document change: undone and
redone, each gives back the exact session JSON (issue 10)."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop import prompts_file

from .uifakes import picture, storyboard


def document(session) -> str:
    return json.dumps(session.to_dict(), sort_keys=True)


@pytest.fixture
def board(make_window, tmp_path):
    window, _ = make_window()
    session = storyboard(window, prompts=("a fox", "a crow", "a bear"))
    session.add_reference(picture(tmp_path / "sea.png", colour=(20, 60, 200)))
    session.set_panel_control_picture(0, picture(tmp_path / "edges.png", colour=(250, 250, 250)))
    window.sessions.undo.flush()
    window.sessions.undo.stack.clear()
    return window, session, tmp_path


CHANGES = {
    "add panel": lambda s, d: s.add_panel("a wolf"),
    "delete panel": lambda s, d: s.remove_panel(1),
    "move panel": lambda s, d: s.move_panel(0, 2),
    "duplicate panel": lambda s, d: s.duplicate_panel(2),
    "seed": lambda s, d: s.update_panel(1, seed=77, seed_locked=True),
    "control picture": lambda s, d: s.set_panel_control_picture(1, picture(d / "b.png", colour=(9, 9, 9))),
    "control settings": lambda s, d: s.update_panel_control(0, mode="depth", scale=0.5),
    "remove control picture": lambda s, d: s.clear_panel_control_picture(0),
    "add reference": lambda s, d: s.add_reference(picture(d / "sky.png", colour=(200, 200, 20))),
    "remove reference": lambda s, d: s.remove_reference(s.references[0].id),
    "activate reference": lambda s, d: s.set_active_reference(None),
    "settings": lambda s, d: s.update_settings(steps=7, guidance=3.5),
    "style": lambda s, d: s.update_style_aligned(shared_score_shift=0.4),
    "style text": lambda s, d: s.set_style_text("watercolour"),
    "storyboard import": lambda s, d: prompts_file.import_panels_text(s, "a moth\na bee | seed=5\n"),
    "panel notes": lambda s, d: s.update_panel_notes(2, scene=4, dialogue="Run!", duration=1.5),
    "default duration": lambda s, d: s.set_default_duration(3.25),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_each_change_undone_and_redone_gives_back_the_exact_document(board, change):
    window, session, tmp_path = board
    before = document(session)
    CHANGES[change](session, tmp_path)
    after = document(session)
    assert after != before
    window.undo_action.trigger()
    assert document(session) == before
    window.redo_action.trigger()
    assert document(session) == after
    window.undo_action.trigger()
    assert document(session) == before


def test_typing_is_one_step_and_other_edits_are_their_own(board):
    window, session, _ = board
    before = document(session)
    for text in ("a f", "a fo", "a fox in", "a fox in the snow"):
        session.update_panel(0, prompt=text)
        window.sessions.undo.flush()  # what the event loop does between key presses
    typed = document(session)
    session.update_panel(1, prompt="a crow at night")
    window.undo_action.trigger()
    assert document(session) == typed
    window.undo_action.trigger()
    assert document(session) == before
    assert not window.sessions.undo.stack.canUndo()


def test_undo_leaves_the_history_and_autosave_writes_the_undone_state(board, tmp_path):
    window, session, _ = board
    window.sessions.save_as(tmp_path / "Story")
    session.add_panel("a wolf")
    window.undo_action.trigger()
    window.sessions.autosaver.flush()
    saved = json.loads((session.folder / "session.json").read_text())
    assert [p["prompt"] for p in saved["panels"]] == [p.prompt for p in session.panels]
    assert "a wolf" not in [p["prompt"] for p in saved["panels"]]


def test_deleting_a_panel_is_instant_and_undone_by_ctrl_z(board):
    window, session, _ = board
    answers_before = len(window.ask.asked)
    crow = session.panels[1]
    window.storyboard.delete(crow.id)  # what the card's delete button does
    assert [p.id for p in session.panels].count(crow.id) == 0
    assert len(window.ask.asked) == answers_before  # no confirmation
    window.undo_action.trigger()
    assert session.panels[1] == crow
    assert "Ctrl+Z" in window.undo_action.shortcut().toString()


def test_the_edit_menu_says_what_undo_and_redo_would_do_and_only_when_they_can(board):
    window, session, _ = board
    undo, redo = window.undo_action, window.redo_action
    assert (undo.isEnabled(), redo.isEnabled()) == (False, False)
    assert (undo.text(), redo.text()) == ("&Undo", "&Redo")
    window.storyboard.delete(session.panels[1].id)
    assert undo.isEnabled() and not redo.isEnabled()  # at once, before the step is filed
    window.sessions.undo.flush()
    assert undo.text() == "&Undo delete panel"
    window.undo_action.trigger()
    assert not undo.isEnabled() and redo.isEnabled()
    assert redo.text() == "&Redo delete panel"
    window.redo_action.trigger()
    assert len(session.panels) == 2 and undo.isEnabled() and not redo.isEnabled()
    session.update_panel(0, seed=5)
    window.sessions.undo.flush()
    assert undo.text() == "&Undo panel edit"
    session.move_panel(0, 1)
    window.sessions.undo.flush()
    assert undo.text() == "&Undo move panel"
    window.sessions.set_session(type(session)())  # another session: nothing to undo
    assert (undo.isEnabled(), redo.isEnabled()) == (False, False)


def type_keys(qtbot, window, widget, text: str) -> None:
    """Type ``text`` key by key, the event loop turning between key presses as it does."""
    for char in text:
        qtbot.keyClick(widget, char)
        window.sessions.undo.flush()


def test_typing_in_the_style_text_or_a_setting_is_one_step_each(board, qtbot):
    window, session, _ = board
    before = document(session)
    field = window.style_panel.text
    field.end(False)
    type_keys(qtbot, window, field, " ink wash")
    assert session.style.text == "ink sketch. ink wash"
    typed = document(session)
    steps = window.settings_panel.steps
    steps.selectAll()
    type_keys(qtbot, window, steps, "37")
    assert session.settings.steps == 37
    window.undo_action.trigger()
    assert document(session) == typed
    window.undo_action.trigger()
    assert document(session) == before


def test_ctrl_z_typed_in_a_field_undoes_the_document_not_the_field(board, qtbot):
    """The field's own undo would take back its typing of long ago (a whole prompt) while the
    Edit menu says it undoes something else."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    window, session, _ = board
    ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    prompt = window.storyboard.card_at(0).prompt
    qtbot.mouseClick(prompt.viewport(), Qt.MouseButton.LeftButton)
    prompt.moveCursor(QTextCursor.MoveOperation.End)
    type_keys(qtbot, window, prompt, " at dawn")
    typed = document(session)
    session.update_settings(steps=9)  # a change made elsewhere, after the typing
    window.sessions.undo.flush()
    assert window.undo_action.text() == "&Undo settings"

    qtbot.keyClick(prompt, Qt.Key.Key_Z, ctrl)  # what the menu says: the settings
    assert document(session) == typed and prompt.toPlainText() == "a fox at dawn"
    qtbot.keyClick(prompt, Qt.Key.Key_Z, ctrl)  # then the typing, as one step
    assert session.panels[0].prompt == "a fox"
    qtbot.keyClick(prompt, Qt.Key.Key_Z, ctrl | shift)
    assert session.panels[0].prompt == "a fox at dawn"
    field = window.style_panel.text  # a line edit too
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Y, ctrl)  # redo
    assert session.settings.steps == 9
    field.end(False)
    type_keys(qtbot, window, field, "!")  # typing the field's own undo could take back
    window.sessions.undo.stack.clear()  # nothing left to undo: the field is left alone too
    qtbot.keyClick(field, Qt.Key.Key_Z, ctrl)
    assert field.text() == "ink sketch.!" and session.style.text == "ink sketch.!"
