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
