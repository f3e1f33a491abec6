"""A mixed-size storyboard blended from a mood board, in the window, on the real tiny engine:
the grid shows every reference and each panel at its own shape (spec sections 11 and 12)."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.ui.threads import JobState
from tests.ui import uifakes
from tests.ui.uifakes import picture, run_and_wait

pytestmark = pytest.mark.slow


def test_a_blended_mixed_size_storyboard_in_the_window(qtbot, make_window, tmp_path):
    window, _ = make_window()
    session = uifakes.storyboard(window, ("the harbour, wide", "the keeper", "a cup"), steps=2, width=64, height=64)
    mood = session.add_reference(picture(tmp_path / "mood.png"))
    session.set_source_active(None, True, weight=0.5)  # the generated reference joins the picture
    card = window.storyboard.card_at(0)
    card.size_choice.setFocus()
    while card.size_choice.currentData() != "custom":  # the keyboard, as a user picks "Custom…"
        QTest.keyClick(card.size_choice, Qt.Key.Key_Down)
    card.custom_width.selectAll()
    QTest.keyClicks(card.custom_width, "128")
    QTest.keyClick(card.custom_width, Qt.Key.Key_Return)
    card.custom_height.selectAll()
    QTest.keyClicks(card.custom_height, "64")
    QTest.keyClick(card.custom_height, Qt.Key.Key_Return)
    session.update_panel(1, size=(64, 128))
    assert [p.size for p in session.panels] == [(128, 64), (64, 128), None]

    # before the run: one tile per reference with its share, empty tiles in their panel's shape
    tiles = window.grid.tiles
    assert tiles[None].title.text() == "Reference (picture) · 67 %"
    assert tiles[("reference", 1)].title.text() == "Reference · 33 %"
    frame = tiles[0].view.image_rect()
    assert abs(frame.width() / frame.height() - 2) < 0.05

    shown = []  # (tile, live) of every preview and finished picture as the run goes
    for name, live in (("show_preview", True), ("show_final", False)):
        original = getattr(window.pictures, name)

        def spy(tile, *args, original=original, live=live):
            if live or args[-1] is None:  # a finished picture whose file is not written yet
                shown.append((tile, live))
            original(tile, *args)

        setattr(window.pictures, name, spy)
    job = run_and_wait(qtbot, window, window.runs.generate)
    assert job.state is JobState.finished, job.error
    every = {None, ("reference", 1), 0, 1, 2}
    assert {t for t, live in shown if live} == every and {t for t, live in shown if not live} == every
    record = session.history[-1]
    assert [x.image for x in record.references] == ["reference.png", "reference-02.png"]
    assert [(x.kind, round(x.weight, 3)) for x in record.references] == [("picture", 0.667), ("generated", 0.333)]
    for key, size in ((None, (64, 64)), (("reference", 1), (64, 64)), (0, (128, 64)), (1, (64, 128)), (2, (64, 64))):
        tile = tiles[key]
        assert tile.final and tile.path is not None and tile.path.is_file(), key
        with Image.open(tile.path) as image:
            assert image.size == size, key
        shown = tile.view.image_rect()  # painted with its own aspect: never stretched
        assert abs(shown.width() / shown.height() - size[0] / size[1]) < 0.05, key
    params = read_parameters(tiles[0].path)
    assert (params["width"], params["height"]) == (128, 64)
    assert [r["kind"] for r in params["references"]] == ["picture", "generated"]
    assert session.style.sources[0].picture == mood.id
    # the history shows that run with both references too
    from stylealigned_desktop.ui.grid.history import run_details

    details = run_details(record)
    assert "Reference: 67 % · picture references/" in details and "Reference: 33 % · generated from" in details
    assert "(seed" in details and "128×64)" in details
    window.pictures.show_run(record.id)
    assert tiles[("reference", 1)].path.name == "reference-02.png"
    assert [i.name for i in window.pictures.shown_items()] == ["reference.png", "reference-02.png", "panel-01.png",
                                                          "panel-02.png", "panel-03.png"]
