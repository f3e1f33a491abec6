"""What the desktop entry promises: a session folder given on the command line or dropped onto
the window opens; pictures dropped onto the window go to the reference gallery."""

from __future__ import annotations

import os
import subprocess
import sys

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session

from .uifakes import drop_mime, picture


def _drop_on(window, widget, paths):
    """Drop local files over ``widget`` the way the windowing system does: onto the window's
    QWindow at that spot, so Qt picks the widget that takes drops there (or a parent of it)."""
    from PySide6.QtCore import QMimeData, QUrl

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    spot = widget.mapTo(window, widget.rect().center())
    return drop_mime(window.windowHandle(), mime, (spot.x(), spot.y()))


def _saved_session(tmp_path, prompts=("a lighthouse in the storm", "a harbour at dawn")):
    session = Session()
    for prompt in prompts:
        session.add_panel(prompt)
    session.add_reference(picture(tmp_path / "painting.png"))
    folder = tmp_path / "Harbour.stylealigned"
    store.save_session_as(session, folder)
    session.close()
    return folder


def _prompts(session):
    return [panel.prompt for panel in session.panels]


def test_session_folder_dropped_onto_the_window_opens(qtbot, make_window, tmp_path):
    folder = _saved_session(tmp_path)
    window, _ = make_window(startup=True)
    before = window.session
    # over the picture grid, which takes no drops itself: the window does
    enter, drop = _drop_on(window, window.grid, [folder])
    assert enter.isAccepted() and drop.isAccepted()
    assert window.session is not before
    assert window.session.folder == folder.absolute()
    assert _prompts(window.session) == ["a lighthouse in the storm", "a harbour at dawn"]
    assert len(window.session.references) == 1  # its pictures were not added as new references


def test_session_folder_dropped_onto_the_gallery_opens_instead_of_adding_its_pictures(
        qtbot, make_window, tmp_path):
    folder = _saved_session(tmp_path, prompts=("a fox",))
    window, _ = make_window(startup=True)
    _drop_on(window, window.gallery.list.viewport(), [folder])
    assert window.session.folder == folder.absolute()
    assert _prompts(window.session) == ["a fox"]


def test_pictures_dropped_onto_the_window_go_to_the_gallery(qtbot, make_window, tmp_path):
    files = [picture(tmp_path / "a.png"), picture(tmp_path / "b.png", colour=(30, 160, 90))]
    window, _ = make_window(startup=True)
    session = window.session
    tiles = window.gallery.list.count()
    with qtbot.waitSignal(window.gallery.import_finished, timeout=10000):
        enter, drop = _drop_on(window, window.grid, files)
    assert drop.isAccepted()
    assert window.session is session
    assert [r.name for r in session.references] == ["a.png", "b.png"]
    assert window.gallery.list.count() == tiles + 2


def test_session_folder_on_the_command_line_opens(tmp_path):
    folder = _saved_session(tmp_path, prompts=("a crow",))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               STYLEALIGNED_CONFIG_DIR=str(tmp_path / "c"), STYLEALIGNED_DATA_DIR=str(tmp_path / "d"))
    result = subprocess.run([sys.executable, "-m", "stylealigned_desktop", "--quit-after-show",
                             str(folder)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "session: Harbour (1 panel" in result.stdout
