"""Every QAction of every menu, triggered exactly as a click does (``action.trigger()``: Qt sends
``triggered(False)``), in three states: a fresh session; panels, references and a finished tiny
run; a run in progress. File dialogs are answered with paths in a temporary folder, modal
dialogs and questions are answered; no exception may reach ``sys.excepthook``, and the save and
export actions must have written their files.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.ui.dialogs import ModelDialog
from stylealigned_desktop.ui.dialogs.where_dialog import WhereDialog
from tests.ui.uifakes import FakeEngine, picture, run_and_wait, storyboard

LAST = ("new", "open", "recent", "quit")
"""Run after the others: they replace the session or close the window."""
ANSWERS = {
    "A generation is running": "Stop it",
    "Keep this session?": "Don't save",
    "Replace files?": "Replace",
    "Pictures are missing": "Open anyway",
    "Delete this run?": "Delete",
}


class FileDialogs:
    """Stands in for QFileDialog's static functions: a new path in ``folder`` for each call."""

    def __init__(self, folder: Path, open_session: Path, prompts: Path, pictures: list[Path]):
        self.folder = folder
        self.open_session = open_session
        self.prompts = prompts
        self.pictures = pictures
        self.asked: list[tuple[str, str]] = []
        self.count = itertools.count(1)

    def install(self, monkeypatch) -> None:
        for name in ("getSaveFileName", "getExistingDirectory", "getOpenFileName",
                     "getOpenFileNames"):
            monkeypatch.setattr(QFileDialog, name, staticmethod(getattr(self, name)))

    def getSaveFileName(self, parent=None, caption="", directory="", filter="", *args, **kw):  # noqa: N802, A002
        self.asked.append(("save", caption))
        extension = re.search(r"\*(\.\w+)", filter or "")
        name = f"saved-{next(self.count)}{extension.group(1) if extension else ''}"
        return str(self.folder / name), filter

    def getExistingDirectory(self, parent=None, caption="", directory="", *args, **kw):  # noqa: N802
        self.asked.append(("folder", caption))
        if "session" in caption.lower():
            return str(self.open_session)
        folder = self.folder / f"folder-{next(self.count)}"
        folder.mkdir()
        return str(folder)

    def getOpenFileName(self, parent=None, caption="", directory="", filter="", *args, **kw):  # noqa: N802, A002
        self.asked.append(("open", caption))
        chosen = self.prompts if "prompt" in caption.lower() else self.pictures[0]
        return str(chosen), filter

    def getOpenFileNames(self, parent=None, caption="", directory="", filter="", *args, **kw):  # noqa: N802, A002
        self.asked.append(("open many", caption))
        return [str(p) for p in self.pictures], filter


def answer_dialog(dialog: QDialog) -> int:
    """QDialog.exec as an artist answers: the tiny model; pictures made on this computer."""
    if isinstance(dialog, ModelDialog):
        dialog.tiny_radio.setChecked(True)
        dialog.try_accept()
    elif isinstance(dialog, WhereDialog):
        dialog.local_button.setChecked(True)
        dialog.accept()
    else:
        dialog.reject()
    return dialog.result()


def menu_actions(window) -> list[tuple[str, object]]:
    """(name, action) of every action reachable from the menu bar, as the menus are shown."""
    by_action = {getattr(window, name): name.removesuffix("_action") for name in dir(window)
                 if name.endswith("_action")}
    found = []

    def walk(menu) -> None:
        menu.aboutToShow.emit()  # what opening the menu does (File → Open recent fills itself)
        for action in menu.actions():
            if action.isSeparator():
                continue
            if action.menu() is not None:
                walk(action.menu())
                continue
            name = by_action.get(action)
            if name is None:
                name = "recent" if menu is window.recent_menu else action.text()
            found.append((name, action))

    for action in window.menuBar().actions():
        walk(action.menu())
    return sorted(found, key=lambda item: item[0] in LAST and LAST.index(item[0]) + 1)


def trigger_every_action(qtbot, window, answers, errors) -> dict[str, int]:
    window.ask = by_title(answers)
    triggered = {}
    for name, action in menu_actions(window):
        if not action.isEnabled():
            continue
        action.trigger()
        qtbot.wait(20)  # what the action started (imports in the background, previews) settles
        assert errors == [], f"{name} ({action.text()!r}) raised {errors[0][1]!r}"
        triggered[name] = triggered.get(name, 0) + 1
    return triggered


@pytest.fixture
def setup(qtbot, make_window, monkeypatch, tmp_path):
    errors = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: errors.append(info))
    monkeypatch.setattr(QDialog, "exec", answer_dialog)
    pictures = [picture(tmp_path / "mood.png"), picture(tmp_path / "pose.png", (0, 90, 0))]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox | seed=7\na crow\n", encoding="utf-8")
    other = Session()
    other.add_panel("from the other session")
    store.save_session_as(other, tmp_path / "other")
    other.close()
    dialogs = FileDialogs(tmp_path / "out", tmp_path / "other.stylealigned", prompts, pictures)
    dialogs.folder.mkdir()
    dialogs.install(monkeypatch)
    return errors, dialogs


def by_title(answers):
    """The window's questions answered as :data:`ANSWERS` says (recorded by ``answers``)."""

    def ask(title, text, buttons, default=None, detail=""):
        if ANSWERS.get(title) in buttons:
            answers.queue.insert(0, ANSWERS[title])
        return answers(title, text, buttons, default, detail)

    return ask


def test_every_action_in_a_fresh_session(qtbot, make_window, setup):
    errors, dialogs = setup
    window, answers = make_window(engine=FakeEngine())
    window.sessions.set_session(Session())
    assert not window.undo_action.isEnabled() and not window.redo_action.isEnabled()
    triggered = trigger_every_action(qtbot, window, answers, errors)
    assert {"save", "save_as", "export_png", "generate", "model", "quit",
            "paste", "import_prompts"} <= set(triggered)
    saved = [p for p in dialogs.folder.iterdir() if p.name.endswith(".stylealigned")]
    assert len(saved) >= 2 and all((folder / "session.json").is_file() for folder in saved)
    assert not window.isVisible()
    assert errors == []


def test_every_action_with_panels_references_and_a_finished_run(qtbot, make_window, setup):
    errors, dialogs = setup
    window, answers = make_window()  # the real tiny engine
    session = storyboard(window)
    session.add_reference(dialogs.pictures[0])
    session.set_panel_control_picture(1, dialogs.pictures[1])
    assert run_and_wait(qtbot, window).state.value == "finished"
    before = set(dialogs.folder.iterdir())
    triggered = trigger_every_action(qtbot, window, answers, errors)
    assert {"export_png", "export_pdf", "export_pictures", "export_prompts", "save",
            "save_as", "reroll", "duplicate_panel", "undo", "redo", "where"} <= set(triggered)
    written = {p.name: p for p in set(dialogs.folder.iterdir()) - before}
    sessions = [p for name, p in written.items() if name.endswith(".stylealigned")]
    assert len(sessions) >= 2  # Save (first time: as a new folder) and Save as
    assert all((p / "session.json").is_file() for p in sessions)
    sheets = [p for name, p in written.items() if name.endswith(".png")]
    assert sheets and all(p.stat().st_size > 0 for p in sheets)
    pdf = next(p for name, p in written.items() if name.endswith(".pdf"))
    assert pdf.read_bytes().startswith(b"%PDF")
    texts = [p for name, p in written.items() if name.endswith(".txt")]
    assert texts and "a fox" in texts[0].read_text(encoding="utf-8")
    exported = [p for name, p in written.items() if name.startswith("folder-") and any(p.iterdir())]
    assert exported and {"reference.png", "panel-01.png"} <= {f.name for f in exported[0].iterdir()}
    assert errors == []


def test_every_action_while_a_run_is_in_progress(qtbot, make_window, setup):
    errors, dialogs = setup
    engine = FakeEngine(held=True)  # its run goes on until cancelled, however long the actions take
    window, answers = make_window(engine=engine)
    storyboard(window, steps=400)
    window.runs.generate()
    engine.allow_steps(1)
    qtbot.waitUntil(lambda: "Step" in window.run_bar.progress.format(), timeout=60000)
    job = window.worker.current
    triggered = trigger_every_action(qtbot, window, answers, errors)
    assert {"cancel", "cancel_all", "generate", "save", "export_pictures"} <= set(triggered)
    assert job.cancel.is_set()
    assert not window.isVisible()
    assert errors == []


def test_every_button_of_the_cards_tiles_gallery_and_history(qtbot, make_window, setup):
    """The buttons too (they carry ``clicked(bool)``): a card's, a tile's, the gallery's, the
    history's, the run bar's, clicked as the mouse does, deleting ones last."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QAbstractButton
    from shiboken6 import isValid

    errors, dialogs = setup
    window, answers = make_window(engine=FakeEngine())
    window.ask = by_title(answers)
    session = storyboard(window)
    session.add_reference(dialogs.pictures[0])
    session.set_panel_control_picture(1, dialogs.pictures[1])
    run_and_wait(qtbot, window)
    window.history_dock.raise_()
    window.history.select_run(session.history[0].id)
    window.pictures.show_run(None)
    window.gallery.list.setCurrentRow(1)
    places = [window.storyboard.card_at(1), window.grid.tiles[1], window.gallery,
              window.history, window.storyboard, window.run_bar]
    buttons = [b for place in places for b in place.findChildren(QAbstractButton)]
    buttons.sort(key=lambda b: "delete" in b.toolTip().lower() or b.text() == "Remove")
    clicked = 0
    for button in buttons:
        if not isValid(button):
            continue  # a view rebuilt itself after an earlier click
        if not (button.isEnabled() and button.isVisible()) or getattr(button, "menu", None) and \
                button.menu() is not None:
            continue  # a button that pops a menu up: its entries are QActions (tested above)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.wait(20)
        assert errors == [], f"{button.toolTip() or button.text()!r} raised {errors[0][1]!r}"
        clicked += 1
    assert clicked >= 15
    for viewer in window.findChildren(QDialog):
        viewer.close()
