"""A read-only window with changes asks before they go, on every way of leaving (issue 30, item 1).

The questions are the window's real dialogs, answered by clicking their buttons.
"""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QMessageBox

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from tests.session.session_helpers import held_elsewhere


@pytest.fixture
def held_session(tmp_path):
    """A saved session (one panel, "a fox") that another running app holds."""
    first = Session()
    first.add_panel("a fox")
    store.save_session_as(first, tmp_path / "Fox")
    folder = tmp_path / "Fox.stylealigned"
    first.close()
    holder = held_elsewhere(folder)
    yield folder
    holder.kill()
    holder.wait()


def open_read_only_and_edit(make_window, folder):
    window, answers = make_window()
    answers.queue = ["Open read-only"]
    assert window.sessions.open_session(folder)
    assert window.session.read_only
    del window.ask  # from here on the window's own dialogs ask
    window.session.update_panel(0, prompt="a fox in the snow")
    return window


def answer(*steps):
    """Answer the modal dialogs that open next, in order: a button label of a QMessageBox, or a
    path typed into a QFileDialog (Qt's own dialog: the offscreen platform has no native one). Records what each message box said."""
    asked = []
    pending = list(steps)

    def poll():
        dialog = QApplication.activeModalWidget()
        if pending and isinstance(dialog, QMessageBox):
            label = pending.pop(0)
            asked.append(dialog.text())
            [button] = [b for b in dialog.buttons() if b.text() == label]
            button.click()
        elif pending and isinstance(dialog, QFileDialog):
            # typed into its name field, as the artist does (selectFile keeps the suggested name)
            dialog.findChild(QLineEdit, "fileNameEdit").setText(str(pending.pop(0)))
            dialog.accept()
        if pending:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)
    return asked


def panel_prompts(folder) -> list[str]:
    data = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    return [panel["prompt"] for panel in data["panels"]]


def test_ctrl_q_asks_and_cancel_keeps_the_window_then_save_a_copy_keeps_the_edit(
        qtbot, make_window, held_session, tmp_path):
    window = open_read_only_and_edit(make_window, held_session)
    asked = answer("Cancel")
    window.quit_action.trigger()
    assert asked and "read-only" in asked[0]
    assert window.isVisible()
    assert window.session.panels[0].prompt == "a fox in the snow"

    asked = answer("Save a copy…", tmp_path / "Fox kept")
    window.quit_action.trigger()
    assert asked and not window.isVisible()
    assert panel_prompts(tmp_path / "Fox kept.stylealigned") == ["a fox in the snow"]
    assert panel_prompts(held_session) == ["a fox"]  # the other app's folder is untouched


def test_closing_the_window_asks_and_discard_drops_the_edit(qtbot, make_window, held_session):
    window = open_read_only_and_edit(make_window, held_session)
    asked = answer("Discard")
    assert window.close()
    assert asked and "read-only" in asked[0]
    assert not window.isVisible()
    assert panel_prompts(held_session) == ["a fox"]


def test_new_session_asks_and_cancel_stays_in_the_read_only_session(qtbot, make_window,
                                                                      held_session):
    window = open_read_only_and_edit(make_window, held_session)
    session = window.session
    asked = answer("Cancel")
    window.new_action.trigger()
    assert asked and "read-only" in asked[0]
    assert window.session is session
    answer("Discard")  # leave the window closable for the fixture
    assert window.close()


def test_a_read_only_window_without_changes_closes_without_asking(qtbot, make_window,
                                                                  held_session):
    window, answers = make_window()
    answers.queue = ["Open read-only"]
    assert window.sessions.open_session(held_session)
    del window.ask
    asked = []
    window.ask = lambda *args, **kwargs: asked.append(args) or "Cancel"
    assert window.close()
    assert asked == [] and not window.isVisible()
