"""Characters in the window (spec section 13), driven as the artist does: the Characters dock's
buttons and fields, [Name] completion and chips on the storyboard cards, anchor pictures dropped
on an anchor, the subject-mask overlay toggled from the View menu, and undo / redo of each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from stylealigned_desktop.session import store
from stylealigned_desktop.ui.grid import is_anchor, mask_overlay
from stylealigned_desktop.ui.grid.mask_layer import MASK_ALPHA, mask_colour

from .uifakes import FakeEngine, drop_files, picture, run_and_wait, storyboard


def document(session) -> str:
    return json.dumps(session.edit_state(), sort_keys=True)


def settled(window) -> None:
    window.sessions.undo.flush()  # what the idle event loop does after a user's action


def type_into(qtbot, field, text: str) -> None:
    """Select what the field holds, type ``text`` over it and press Return (as a user does)."""
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Return)


@pytest.fixture
def board(make_window):
    window, _ = make_window()
    session = storyboard(window, prompts=("a harbour at dawn", "rain on the pier"))
    window.characters_dock.raise_()
    settled(window)
    window.sessions.undo.stack.clear()
    return window, session, window.characters


def add_mira(qtbot, window, panel) -> None:
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    type_into(qtbot, panel.name, "Mira")
    type_into(qtbot, panel.description, "a red-haired girl in a yellow raincoat")
    settled(window)


def test_adding_naming_and_describing_a_character_each_undone(qtbot, board):
    window, session, panel = board
    empty = document(session)
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert [c.name for c in session.characters] == ["Character 1"]
    settled(window)
    added = document(session)
    type_into(qtbot, panel.name, "Mira")
    settled(window)
    named = document(session)
    type_into(qtbot, panel.description, "a red-haired girl in a yellow raincoat")
    settled(window)
    mira = session.character("Mira")
    assert mira.description == "a red-haired girl in a yellow raincoat"
    assert panel.list.count() == 1 and "Mira" in panel.list.item(0).text()
    assert panel.words.placeholderText() == "default: red-haired, girl, yellow, raincoat"
    assert window.undo_action.text() == "&Undo characters"
    for state in (named, added, empty):
        window.undo_action.trigger()
        assert document(session) == state
    assert panel.list.count() == 0 and not panel.details.isVisible()
    window.redo_action.trigger()
    window.redo_action.trigger()
    assert document(session) == named and panel.name.text() == "Mira"


def test_a_card_completes_names_shows_chips_and_flags_an_unknown_one(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    card = window.storyboard.card_at(0)
    card.prompt.setFocus()
    card.prompt.moveCursor(card.prompt.textCursor().MoveOperation.Start)
    qtbot.keyClicks(card.prompt, "[mi")
    popup = card.prompt.completer.popup()
    qtbot.waitUntil(popup.isVisible)
    assert popup.model().data(popup.currentIndex()) == "Mira"
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert not popup.isVisible()
    assert session.panels[0].prompt == "[Mira]a harbour at dawn"
    assert [c.text() for c in card.chips.chips] == ["Mira"] and card.chips.unknown() == []
    qtbot.keyClicks(card.prompt, " meets [Bob] at ")
    assert [c.text() for c in card.chips.chips] == ["Mira", "Bob?"]
    assert card.chips.unknown() == ["Bob"] and card.chips.chips[1].property("unknown")
    window.generate_action.trigger()  # refused before anything runs
    assert window.banner.isVisible() and "[Bob]" in window.banner_text.text()
    assert window.runs.running_plan() is None
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    type_into(qtbot, panel.name, "Bob")  # the card learns the new name at once
    assert card.chips.unknown() == [] and [c.text() for c in card.chips.chips] == ["Mira", "Bob"]
    # each chip has its character's mask colour: the chips are the legend of the masks
    for position, chip in enumerate(card.chips.chips):
        shot = chip.grab().toImage()
        colour = shot.pixelColor(shot.width() // 2, 1)
        assert colour.name() == mask_colour(position).name(), chip.text()


def test_renaming_rewrites_the_prompts_and_one_undo_brings_both_back(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    session.update_panel(1, prompt="[Mira] runs through the rain")
    settled(window)
    before = document(session)
    type_into(qtbot, panel.name, "Ava")
    settled(window)
    assert session.panels[1].prompt == "[Ava] runs through the rain"
    assert window.storyboard.card_at(1).prompt.toPlainText() == "[Ava] runs through the rain"
    window.undo_action.trigger()
    assert document(session) == before
    assert [c.text() for c in window.storyboard.card_at(1).chips.chips] == ["Mira"]
    type_into(qtbot, panel.name, "[Ava]")  # refused, said, and the field shows the name again
    assert session.character("Mira") is not None and panel.name.text() == "Mira"
    assert "starts with a capital letter" in window.statusBar().currentMessage()


def test_anchor_seeds_re_roll_lock_and_typed_seed_each_undone(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    seeds = session.character("Mira").anchor_seeds
    assert [s.seed.value() for s in panel.slots] == list(seeds)
    before = document(session)
    qtbot.mouseClick(panel.reroll_button, Qt.MouseButton.LeftButton)
    settled(window)
    rerolled = session.character("Mira").anchor_seeds
    assert rerolled != seeds and [s.seed.value() for s in panel.slots] == list(rerolled)
    qtbot.mouseClick(panel.lock, Qt.MouseButton.LeftButton)
    settled(window)
    assert not session.character("Mira").seeds_locked
    type_into(qtbot, panel.slots[1].seed, "4242")
    settled(window)
    assert session.character("Mira").anchor_seeds[1] == 4242
    window.undo_action.trigger()
    assert session.character("Mira").anchor_seeds == rerolled
    window.undo_action.trigger()
    assert session.character("Mira").seeds_locked and panel.lock.isChecked()
    window.undo_action.trigger()
    assert document(session) == before and panel.slots[0].seed.value() == seeds[0]


def test_sharing_settings_and_anchor_count_are_edits(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    before = document(session)
    type_into(qtbot, panel.dropout, "0.3")
    settled(window)
    assert session.character_settings.character_dropout == pytest.approx(0.3)
    type_into(qtbot, panel.anchor_count, "3")
    settled(window)
    assert len(session.character("Mira").anchor_seeds) == 3 and len(panel.slots) == 3
    window.undo_action.trigger()
    assert len(panel.slots) == 2
    window.undo_action.trigger()
    assert document(session) == before and panel.dropout.value() == pytest.approx(0.5)


def test_a_picture_dropped_on_an_anchor_is_copied_and_undone(qtbot, board, tmp_path):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    design = picture(tmp_path / "mira-design.png", colour=(240, 180, 40))
    before = document(session)
    enter, drop = drop_files(panel.slots[1], [design], propose_move=True)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    qtbot.waitUntil(lambda: session.character("Mira").picture(1) is not None, timeout=60000)
    settled(window)
    relative = session.character("Mira").picture(1)
    assert relative.startswith("characters/") and design.is_file()  # the artist's file stays
    assert session.file(relative).read_bytes() == design.read_bytes()
    assert panel.slots[1].clear.isVisibleTo(panel) and not panel.slots[1].seed.isEnabled()
    qtbot.mouseClick(panel.slots[1].clear, Qt.MouseButton.LeftButton)
    settled(window)
    assert session.character("Mira").pictures == ()
    window.undo_action.trigger()
    assert session.character("Mira").picture(1) == relative
    window.undo_action.trigger()
    assert document(session) == before


def test_the_characters_come_back_when_the_session_is_opened_again(qtbot, board, tmp_path):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    drop_files(panel.slots[0], [picture(tmp_path / "m.png", colour=(10, 200, 90))])
    qtbot.waitUntil(lambda: session.character("Mira").picture(0) is not None, timeout=60000)
    window.sessions.save_as(tmp_path / "Pier")
    saved = session.to_dict()
    window.new_action.trigger()
    assert window.characters.list.count() == 0
    window.sessions.open_session(tmp_path / "Pier.stylealigned")
    reopened = window.session
    assert reopened is not session and reopened.to_dict() == saved
    assert window.characters.list.count() == 1 and window.characters.name.text() == "Mira"
    assert store.load_session(tmp_path / "Pier.stylealigned").missing_files() == []


def test_mask_overlay_colours_exactly_the_masked_cells():
    mira = np.zeros((4, 6), dtype=bool)
    mira[1:3, 2:5] = True
    tom = np.zeros((2, 3), dtype=np.float32)  # a coarser grid: brought to 4 x 6
    tom[0, 0] = 1.0
    overlay = mask_overlay({"Mira": mira, "Tom": tom})
    assert (overlay.width(), overlay.height()) == (6, 4)
    for y in range(4):
        for x in range(6):
            colour = overlay.pixelColor(x, y)
            if y < 2 and x < 2:
                expected = mask_colour(1)
            elif mira[y, x]:
                expected = mask_colour(0)
            else:
                assert colour.alpha() == 0, (x, y)
                continue
            assert (colour.red(), colour.green(), colour.blue(), colour.alpha()) == (
                expected.red(), expected.green(), expected.blue(), MASK_ALPHA), (x, y)
    assert mask_overlay({}) is None
    # a character keeps its colour (its place among the session's characters) in every picture
    alone = mask_overlay({"Tom": tom}, names=["Mira", "Tom"]).pixelColor(0, 0)
    assert (alone.red(), alone.green(), alone.blue()) == mask_colour(1).getRgb()[:3]


def test_generate_then_show_the_masks_from_the_view_menu_and_undo(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    session.update_panel(0, prompt="[Mira] on the pier")
    job = run_and_wait(qtbot, window)
    assert job.state.name == "finished"
    tile = window.grid.tiles[0]
    assert tile.image() is not None and tile.view.overlay() is None
    mask = np.zeros((8, 8), dtype=bool)
    mask[:, :4] = True  # the left half is Mira (a synthetic mask, as a panel's result gives)
    window.pictures.take_masks(session.panels[0].id, {"Mira": mask})
    assert tile.view.overlay() is None  # off until the artist asks
    settled(window)
    steps, before = window.sessions.undo.stack.count(), document(session)
    window.masks_action.trigger()
    assert window.masks_action.isChecked() and tile.view.overlay() is not None
    shot = tile.view.grab().toImage()
    rect = tile.view.image_rect()
    left = (rect.left() + rect.width() // 4, rect.center().y())  # masked
    right = (rect.left() + 3 * rect.width() // 4, rect.center().y())  # not masked
    window.masks_action.trigger()
    plain = tile.view.grab().toImage()
    window.masks_action.trigger()
    orange = mask_colour(0)

    def distance(colour):
        return sum(abs(a - b) for a, b in zip(colour.getRgb()[:3], orange.getRgb()[:3]))

    assert distance(shot.pixelColor(*left)) < distance(plain.pixelColor(*left))  # tinted
    assert shot.pixelColor(*right) == plain.pixelColor(*right)  # untouched
    assert window.grid.tiles[1].view.overlay() is None  # a panel without masks
    window.masks_action.trigger()
    assert tile.view.overlay() is None
    settled(window)  # showing masks is a view, not an edit of the storyboard
    assert window.sessions.undo.stack.count() == steps and document(session) == before
    while session.characters and window.undo_action.isEnabled():  # back to before Mira
        window.undo_action.trigger()
    assert session.characters == () and session.panels[0].prompt == "a harbour at dawn"
    assert window.storyboard.card_at(0).chips.chips == []
    assert tile.image() is not None


def anchor_tiles(window) -> dict:
    return {key: tile for key, tile in window.grid.tiles.items() if is_anchor(key)}


def test_the_grid_has_a_tile_for_each_anchor_beside_the_references(qtbot, board):
    window, session, panel = board
    add_mira(qtbot, window, panel)
    tiles = anchor_tiles(window)
    assert list(tiles) == [("anchor", "Mira", 0), ("anchor", "Mira", 1)]
    assert [t.title.text() for t in tiles.values()] == ["Mira · anchor 1", "Mira · anchor 2"]
    assert tiles[("anchor", "Mira", 0)].prompt.text() == "a red-haired girl in a yellow raincoat"
    assert not tiles[("anchor", "Mira", 0)].reroll_button.isVisibleTo(window)
    order = window.pictures._tile_order()
    assert order.index(("anchor", "Mira", 1)) < order.index(0)  # after the references
    type_into(qtbot, panel.anchor_count, "3")
    settled(window)
    assert len(anchor_tiles(window)) == 3
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    settled(window)
    assert anchor_tiles(window) == {} and session.characters == ()
    window.undo_action.trigger()
    assert len(anchor_tiles(window)) == 3


def test_anchors_and_masks_from_the_engine_show_in_the_grid(qtbot, make_window):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window, prompts=("[Mira] at the harbour", "rain on the pier"))
    session.add_character("Mira", "a red-haired girl in a yellow raincoat")
    job = run_and_wait(qtbot, window)
    assert job.state.name == "finished"
    seeds = session.character("Mira").anchor_seeds
    for k, tile in enumerate(anchor_tiles(window).values()):
        colour = tile.image().pixelColor(1, 1)
        assert (colour.red(), colour.green(), colour.blue()) == FakeEngine.colour(seeds[k])
    window.masks_action.trigger()
    panel_tile, other = window.grid.tiles[0], window.grid.tiles[1]
    top = panel_tile.view.overlay().pixelColor(0, 0)
    bottom = panel_tile.view.overlay().pixelColor(0, 3)
    assert top.alpha() == MASK_ALPHA and bottom.alpha() == 0  # the engine's mask, as sent
    assert other.view.overlay() is None  # names nobody
    anchor = anchor_tiles(window)[("anchor", "Mira", 0)].view.overlay()
    assert anchor.pixelColor(0, 0).alpha() == MASK_ALPHA and anchor.pixelColor(3, 0).alpha() == 0
    window.history.run_selected.emit(session.history[-1].id)  # a past run: its own anchors
    assert set(anchor_tiles(window)) == {("anchor", "Mira", 0), ("anchor", "Mira", 1)}
    assert all(t.view.overlay() is None for t in window.grid.tiles.values())  # masks not kept
    qtbot.mouseClick(window.viewing_back, Qt.MouseButton.LeftButton)  # the anchors come back
    back = anchor_tiles(window)[("anchor", "Mira", 1)].image()
    assert back is not None and back.pixelColor(1, 1).red() == FakeEngine.colour(seeds[1])[0]


def test_show_masks_says_which_panels_have_none_and_why(qtbot, board):
    """On tiny, 256 px is above twice its own size: the panels are drawn as panoramas, which
    keep no masks. The overlay cannot show; the window says so instead of showing nothing."""
    window, session, panel = board
    add_mira(qtbot, window, panel)
    session.update_panel(0, prompt="[Mira] on the pier")
    session.update_settings(width=256, height=128)
    assert run_and_wait(qtbot, window).state.name == "finished"
    window.masks_action.trigger()
    assert window.masks_action.isChecked() and window.grid.tiles[0].view.overlay() is None
    message = window.statusBar().currentMessage()
    assert message.startswith("No subject masks for panel 1:") and "panorama" in message
    window.masks_action.trigger()
    session.update_settings(width=128, height=128)  # tiny's own size: the panel has its masks
    assert run_and_wait(qtbot, window).state.name == "finished"
    window.statusBar().clearMessage()
    window.masks_action.trigger()
    assert window.grid.tiles[0].view.overlay() is not None
    assert "No subject masks" not in window.statusBar().currentMessage()
