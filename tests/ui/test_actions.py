"""The window's commands: one table of handlers that take no arguments, so Qt's ``checked`` flag
never reaches one (File → Save as… and Export → Pictures once received it as their path).
After Save as, the grid shows the pictures from the session's new folder (the old one is gone)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from stylealigned_desktop.ui.support import connect_command
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard


def test_save_as_and_export_pictures_from_the_menu_write_their_files(
        qtbot, make_window, tmp_path, monkeypatch):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    run_and_wait(qtbot, window)
    target = tmp_path / "From the menu"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(tmp_path / "pictures")))
    (tmp_path / "pictures").mkdir()

    window.save_as_action.trigger()  # Qt sends triggered(False), as a menu click does
    assert session.folder == tmp_path / "From the menu.stylealigned"
    assert (session.folder / "session.json").is_file()

    window.export_pictures_action.trigger()
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == [
        "panel-01.png", "panel-02.png", "panel-03.png", "reference.png"]
    assert window.banner.isHidden()


class Sender(QObject):
    fired = Signal(bool)


def test_a_command_runs_without_the_signals_arguments(qtbot):
    calls = []

    def handler(folder=None):
        calls.append(folder)

    sender = Sender()
    connect_command(sender.fired, handler)
    sender.fired.emit(False)
    assert calls == [None]


def test_a_handler_that_needs_an_argument_is_refused_at_once():
    with pytest.raises(TypeError, match="no arguments"):
        connect_command(Sender().fired, lambda folder: None)
