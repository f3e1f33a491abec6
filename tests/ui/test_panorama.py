"""A panorama panel in the window (spec section 14): the card's size menu offers 4:1 and 3:1 at
the model's height, the choice is one undo step, the grid shows the panel over several columns, and
Generate draws it as MultiDiffusion windows on the tiny model."""

from __future__ import annotations

import json

from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.ui.storyboard.card import PANORAMA, SET_SIZE
from stylealigned_desktop.ui.threads import JobState

from .test_storyboard import _choose
from .uifakes import run_and_wait, storyboard


def _columns_spanned(grid, index) -> int:
    return grid._grid.getItemPosition(grid._grid.indexOf(grid.tiles[index]))[3]


def test_a_panorama_preset_is_clicked_shown_wide_undone_and_generated(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window, prompts=("the bay at dawn", "a boat"), width=128, height=128)
    window.sessions.undo.flush()
    window.sessions.undo.stack.clear()
    card = window.storyboard.card_at(0)
    assert [card.size_choice.itemData(i) for i in range(card.size_choice.count())
            if str(card.size_choice.itemData(i)).startswith(PANORAMA)] == [PANORAMA + "512x128", PANORAMA + "384x128"]
    _choose(qtbot, card.size_choice, PANORAMA + "512x128")
    assert (session.panels[0].size, session.panels[0].size_mode) == ((512, 128), "panorama")
    assert card.size_choice.currentText().startswith("Panorama 4:1")
    qtbot.waitUntil(lambda: _columns_spanned(window.grid, 0) > 1)  # shown wide
    assert _columns_spanned(window.grid, 1) == 1

    window.undo_action.trigger()
    assert (session.panels[0].size, session.panels[0].size_mode) == (None, None)
    assert card.size_choice.currentData() == SET_SIZE
    qtbot.waitUntil(lambda: _columns_spanned(window.grid, 0) == 1)
    window.redo_action.trigger()
    assert (session.panels[0].size, session.panels[0].size_mode) == ((512, 128), "panorama")

    job = run_and_wait(qtbot, window, window.runs.generate)
    assert job.state is JobState.finished, job.error
    tile = window.grid.tiles[0]
    assert (tile.image().width(), tile.image().height()) == (512, 128)
    parameters = read_parameters(tile.path)
    assert (parameters["windows"], parameters["window_width"], parameters["window_stride"]) == (7, 128, 8)
    run = json.loads((tile.path.parent / "run.json").read_text(encoding="utf-8"))
    assert [(p["width"], p.get("windows")) for p in run["panels"]] == [(512, 7), (128, None)]

    session.update_settings(height=64)  # the presets are at the model's height, not the set's
    assert card.size_choice.findData(PANORAMA + "512x128") >= 0 and card.size_choice.findData(PANORAMA + "256x64") < 0
    assert card.size_choice.currentText().startswith("Panorama 4:1")


def _empty_band(tile) -> int:
    """The height of the view the tile's picture leaves empty (above and below it)."""
    return tile.view.height() - tile.view.image_rect().height()


def test_a_panoramas_row_is_as_high_as_its_picture_at_any_window_width(qtbot, make_window):
    """A 4:1 panorama spans the grid's columns; its row is its picture's height at that width
    (no empty band above and below it); a square panel's picture stays square beside it."""
    window, _ = make_window()
    storyboard(window, prompts=("the bay at dawn", "a boat", "a gull"), width=128, height=128)
    _choose(qtbot, window.storyboard.card_at(0).size_choice, PANORAMA + "512x128")
    panorama, square = window.grid.tiles[0], window.grid.tiles[1]
    for width in (1300, 1600, 1750):  # two, then four columns twice: the picture's height follows the width
        window.resize(width, 850)
        qtbot.waitUntil(lambda: _columns_spanned(window.grid, 0) > 1 and _empty_band(panorama) <= 2)
        picture = panorama.view.image_rect()
        assert picture.width() == panorama.view.width() and picture.width() > 3.9 * picture.height()
        assert abs(square.view.image_rect().height() - square.view.image_rect().width()) <= 1
