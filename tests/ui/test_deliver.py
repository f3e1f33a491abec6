"""The storyboard's deliverables in the window (issue 28): the notes folded on each card,
edited there, renumbering the panels after, undone with Edit → Undo; the set's default
duration; File → Export → Storyboard PDF / Animatic / Timeline / Storyboarder, each through its
options dialog, which opens with the choices made last time."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from pypdf import PdfReader
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QPushButton

from stylealigned_desktop.export.animatic import AnimaticOptions
from stylealigned_desktop.ui.dialogs import (
    AnimaticOptionsDialog,
    PdfOptionsDialog,
    StoryboarderOptionsDialog,
    TimelineOptionsDialog,
)
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard


def test_notes_on_the_card(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    window.sessions.undo.flush()
    card, after = window.storyboard.card_at(1), window.storyboard.card_at(2)
    notes = card.notes_editor
    assert not notes.body.isVisibleTo(card)  # folded: one line
    qtbot.mouseClick(notes.toggle, Qt.MouseButton.LeftButton)
    assert notes.body.isVisibleTo(card)
    qtbot.keyClicks(notes.dialogue, "Caw!")
    qtbot.keyClicks(notes.action, "The crow lands.")
    notes.camera.setCurrentText("close-up")
    notes.scene.setValue(2)
    notes.duration.setValue(1.5)
    assert session.panels[1].notes.dialogue == "Caw!" and session.panels[1].notes.scene == 2
    assert session.panels[1].notes.action == "The crow lands."
    assert session.panels[1].notes.camera == "close-up" and session.panels[1].notes.duration == 1.5
    # the next panel follows into scene 2, shot 2; its duration is the set's default
    assert after.notes_editor.scene.text() == "auto (2)" and after.notes_editor.shot.text() == "auto (2)"
    assert notes.summary.text() == "2-1 · close-up · 1.5 s · “Caw!”"
    window.sessions.undo.flush()  # what the event loop does between the artist's edits
    window.storyboard.default_duration.setValue(3.5)
    assert session.board.default_duration == 3.5
    assert after.notes_editor.duration.text() == "default (3.5 s)"
    window.sessions.undo.flush()
    window.undo_action.trigger()
    assert session.board.default_duration == 2.0
    assert window.storyboard.default_duration.value() == 2.0
    window.undo_action.trigger()
    assert session.panels[1].notes.dialogue == "" and notes.dialogue.toPlainText() == ""
    assert notes.scene.value() == 0 and after.notes_editor.scene.text() == "auto (1)"
    window.redo_action.trigger()
    assert session.panels[1].notes.dialogue == "Caw!" and notes.dialogue.toPlainText() == "Caw!"


class Dialogs:
    """Answers the export dialogs as an artist would: ``choose[type]`` sets the widgets, OK;
    records what each dialog showed when it opened."""

    def __init__(self, monkeypatch, folder: Path):
        self.opened: list[tuple[type, object]] = []
        self.choose = {}
        self.folder = folder
        monkeypatch.setattr(QDialog, "exec", lambda dialog: self.exec(dialog))
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(self.save))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(self.directory))

    def exec(self, dialog):
        self.opened.append((type(dialog), dialog.options()))
        self.choose.get(type(dialog), lambda d: None)(dialog)
        dialog.accept()
        return dialog.result()

    def save(self, parent=None, caption="", directory="", filter="", *args, **kw):  # noqa: A002
        return str(self.folder / Path(directory).name), filter

    def directory(self, parent=None, caption="", directory="", *args, **kw):
        return str(self.folder)


@pytest.fixture
def generated(qtbot, make_window, tmp_path, monkeypatch):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, width=128, height=64)
    session.update_panel_notes(0, dialogue="Where is everyone?", action="The fox looks up.")
    session.update_panel_notes(2, scene=2, duration=0.5, notes="hold")
    session.set_default_duration(0.75)
    assert run_and_wait(qtbot, window).state.value == "finished"
    (tmp_path / "out").mkdir()
    return window, session, Dialogs(monkeypatch, tmp_path / "out")


def test_storyboard_pdf_from_the_menu_remembers_its_options(generated):
    window, session, dialogs = generated

    def six_portrait(dialog):
        dialog.layout_choice.setCurrentIndex(dialog.layout_choice.findData(6))
        dialog.landscape.setChecked(False)

    dialogs.choose[PdfOptionsDialog] = six_portrait
    window.export_storyboard_pdf_action.trigger()
    path = dialogs.folder / f"{session.title}.pdf"
    pages = PdfReader(path).pages
    assert len(pages) == 2 and pages[1].mediabox.height > pages[1].mediabox.width
    text = pages[1].extract_text()
    assert text.index("The fox looks up.") < text.index("Where is everyone?") < text.index("hold")
    assert "Scene 2 · Shot 1 · Panel 3" in text
    window.export_storyboard_pdf_action.trigger()  # opens with last time's choices
    shown = dialogs.opened[-1][1]
    assert (shown.layout, shown.landscape) == (6, False)
    assert window.config.deliverables["pdf"]["layout"] == 6


def test_animatic_timeline_and_storyboarder_from_the_menu(qtbot, generated):
    window, session, dialogs = generated

    def small(dialog):
        dialog.size_choice.setCurrentIndex(dialog.size_choice.findData("custom"))
        dialog.width.setValue(96)
        dialog.height.setValue(48)
        dialog.fps.setValue(10)
        dialog.captions.setChecked(True)

    dialogs.choose[AnimaticOptionsDialog] = small
    dialogs.choose[TimelineOptionsDialog] = lambda d: d.fps.setValue(10)
    dialogs.choose[StoryboarderOptionsDialog] = lambda d: d.fps.setValue(12)
    window.export_animatic_action.trigger()
    assert window.deliver.wait()
    film = dialogs.folder / f"{session.title}.mp4"
    with av.open(str(film)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == round((0.75 + 0.75 + 0.5) * 10) and frames[0].shape == (48, 96, 3)
    assert (dialogs.folder / f"{session.title}.srt").read_text().count("-->") == 1
    colour = FakeEngine.colour(session.panels[2].seed)
    assert np.abs(frames[-2][24, 48].astype(int) - colour).max() < 12  # panel 3 at the end
    window.export_timeline_action.trigger()
    clips = list(otio.adapters.read_from_file(str(dialogs.folder / f"{session.title}.otio")).find_clips())
    assert [round(c.duration().to_seconds(), 2) for c in clips] == [0.8, 0.7, 0.5]  # 10 fps cuts
    assert (dialogs.folder / f"{session.title}.csv").is_file()
    window.export_storyboarder_action.trigger()
    project = json.loads((dialogs.folder / session.title / f"{session.title}.storyboarder").read_text())
    assert project["fps"] == 12 and [b["duration"] for b in project["boards"]] == [750, 750, 500]
    assert window.config.deliverables["animatic"]["size"] == [96, 48]


def test_an_animatic_cancelled_leaves_nothing(qtbot, generated):
    window, session, dialogs = generated
    session.set_default_duration(600)
    window.deliver.export_animatic(str(dialogs.folder / "long.mp4"),
                                   AnimaticOptions(size=(64, 32), fps=10.0))
    qtbot.waitUntil(lambda: window.deliver.progress is not None and window.deliver.progress.value() > 0,
                    timeout=20000)
    qtbot.mouseClick(window.deliver.progress.findChild(QPushButton), Qt.MouseButton.LeftButton)
    assert window.deliver.wait()
    assert list(dialogs.folder.iterdir()) == []
    assert "cancelled" in window.statusBar().currentMessage()
