"""The History shows a run's characters as it shows its settings (the run's tooltip, its
anchors in the grid) and Restore brings them back (last session's note: the history did not
record a run's characters)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from .test_characters_window import add_mira, board, settled, type_into  # noqa: F401 (board: a fixture)
from .uifakes import run_and_wait


def pick_run(qtbot, window, row: int = 0) -> None:
    """Click a run in the History list, as the artist does."""
    window.history_dock.raise_()
    item = window.history.list.item(row)
    rect = window.history.list.visualItemRect(item)
    qtbot.mouseClick(window.history.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_a_runs_characters_show_in_the_history_and_restore_brings_them_back(
        qtbot, board, tmp_path, monkeypatch):  # noqa: F811 (board: the fixture imported above)
    window, session, panel = board
    add_mira(qtbot, window, panel)
    session.update_panel(0, prompt="[Mira] on the pier")
    qtbot.mouseClick(panel.lock, Qt.MouseButton.LeftButton)  # free seeds: the run draws its own
    settled(window)
    assert run_and_wait(qtbot, window).state.name == "finished"
    record = session.history[-1]
    drawn = session.character("Mira").anchor_seeds
    tip = window.history.list.item(0).toolTip()
    assert (f"Character Mira: a red-haired girl in a yellow raincoat · anchors: seed {drawn[0]}, "
            f"seed {drawn[1]}") in tip
    assert "Characters shared: dropout 0.5 in the up blocks · 2 anchors each" in tip
    type_into(qtbot, panel.name, "Ava")  # the storyboard moves on: renamed, new seeds
    qtbot.mouseClick(panel.reroll_button, Qt.MouseButton.LeftButton)
    settled(window)
    pick_run(qtbot, window)
    assert window.pictures.viewing_run == record.id
    for k in range(2):  # the run's anchors, by the name the run knew, from its folder
        tile = window.grid.tiles[("anchor", "Mira", k)]
        assert tile.title.text() == f"Mira · anchor {k + 1}"
        assert tile.path == session.path(f"{record.folder}/anchor-Mira-{k + 1}.png")
        qtbot.waitUntil(lambda tile=tile: tile.image() is not None, timeout=60000)
    assert ("anchor", "Ava", 0) not in window.grid.tiles
    out = tmp_path / "exported"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    window.export_pictures_action.trigger()  # the shown run's pictures, its anchors among them
    assert {"anchor-Mira-1.png", "anchor-Mira-2.png", "panel-01.png"} <= {p.name for p in out.iterdir()}
    qtbot.mouseClick(window.viewing_restore, Qt.MouseButton.LeftButton)
    mira = session.character("Mira")
    assert mira is not None and mira.anchor_seeds == drawn and mira.seeds_locked
    assert [window.characters.list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(window.characters.list.count())] == ["Ava", "Mira"]
    settled(window)
    window.undo_action.trigger()  # the restore is one step
    assert session.character("Mira") is None and session.character("Ava") is not None


def test_a_reopened_session_shows_its_newest_anchors_and_marks_them_when_the_character_changes(
        qtbot, board, tmp_path):  # noqa: F811 (board: the fixture imported above)
    window, session, panel = board
    add_mira(qtbot, window, panel)
    session.update_panel(0, prompt="[Mira] on the pier")
    assert run_and_wait(qtbot, window).state.name == "finished"
    record = session.history[-1]
    window.sessions.save_as(tmp_path / "Pier")
    window.new_action.trigger()
    window.sessions.open_session(tmp_path / "Pier.stylealigned")
    session = window.session
    assert window.pictures.anchors == {}  # the engine's pictures went with the window's session
    for k in range(2):
        tile = window.grid.tiles[("anchor", "Mira", k)]
        assert tile.path == session.path(f"{record.folder}/anchor-Mira-{k + 1}.png")
        qtbot.waitUntil(lambda tile=tile: tile.image() is not None, timeout=60000)  # read in the background
        assert tile.state.text() == ""
    type_into(qtbot, window.characters.description, "a girl in a green coat")
    assert [window.grid.tiles[("anchor", "Mira", k)].state.text() for k in range(2)] == ["outdated"] * 2
    window.undo_action.trigger()
    assert window.grid.tiles[("anchor", "Mira", 0)].state.text() == ""
