"""Issue 30, item 10: the smaller defects an artist met on the second day."""

from __future__ import annotations

from .uifakes import storyboard


def test_custom_size_starts_at_the_sets_size(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window, prompts=("a fox", "a crow"), width=768, height=512)
    card = window.storyboard.card_at(1)
    card.size_choice.setCurrentIndex(card.size_choice.findText("Custom…"))
    assert (card.custom_width.value(), card.custom_height.value()) == (768, 512)
    assert session.panels[1].size == (768, 512)
    session.update_settings(width=640, height=896)  # the set changes: Custom… there now
    other = window.storyboard.card_at(0)
    other.size_choice.setCurrentIndex(other.size_choice.findText("Custom…"))
    assert session.panels[0].size == (640, 896)


def test_a_deleted_panel_is_named_by_whole_words_and_an_ellipsis(qtbot, make_window):
    window, _ = make_window()
    long_prompt = "a lighthouse keeper climbing the spiral stairs at midnight with a lantern"
    storyboard(window, prompts=("a fox", long_prompt))
    window.storyboard.card_at(1).delete_button.click()
    message = window.statusBar().currentMessage()
    shown = message.removeprefix("Deleted “").removesuffix("”")
    assert shown.endswith("…") and len(shown) <= 40
    assert long_prompt.startswith(shown[:-1].rstrip())
    assert long_prompt[len(shown[:-1].rstrip())] == " "  # the cut falls between two words


def test_a_selected_gallery_picture_keeps_its_colours_and_gets_a_frame(qtbot, make_window,
                                                                       tmp_path):
    from PySide6.QtWidgets import QApplication

    from stylealigned_desktop.ui.support import apply_theme

    apply_theme(QApplication.instance())  # the app's look and stylesheet, as at start (the fixture puts the one before back)
    _check_selection_frame(qtbot, make_window, tmp_path)


def _check_selection_frame(qtbot, make_window, tmp_path):
    from .uifakes import picture

    window, _ = make_window()
    storyboard(window, prompts=("a fox",))
    from stylealigned_desktop.ui.gallery.thumbnail_frames import THUMB

    colour = (40, 170, 90)  # no orange in it: a tint shows in every channel
    reference = window.session.add_reference(picture(tmp_path / "green.png", colour, size=(90, 90)))
    strip = window.gallery.list
    item = strip.item(strip.count() - 1)
    # the thumbnail is read in the background (a grey frame stands in for it until then)
    thumbnail = window.session.path(reference.file)
    qtbot.waitUntil(lambda: window.gallery.thumbnails.request(thumbnail, THUMB) is not None, timeout=60000)

    def looks() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        shot = strip.viewport().grab().toImage()
        rect = strip.visualItemRect(item)
        middle = shot.pixelColor(rect.center().x(), rect.top() + 30)
        edge = shot.pixelColor(rect.left() + 1, rect.center().y())
        return middle.getRgb()[:3], edge.getRgb()[:3]

    item.setSelected(False)
    middle_before, edge_before = looks()
    item.setSelected(True)
    middle_after, edge_after = looks()
    assert middle_after == middle_before  # the picture is not tinted
    assert edge_after != edge_before  # the selection shows as a frame around it


def test_one_click_on_mix_for_the_only_picture_changes_nothing_silently(qtbot, make_window,
                                                                        tmp_path):
    from PySide6.QtCore import Qt

    from stylealigned_desktop.session.values import StyleReference

    from .uifakes import picture

    window, _ = make_window()
    session = storyboard(window, prompts=("a fox",), width=128, height=64)
    gallery = window.gallery
    with qtbot.waitSignal(gallery.import_finished, timeout=20000):
        gallery.add_files([str(picture(tmp_path / "moss.png", (60, 120, 40)))])
    only = session.style.sources[0].picture
    assert only is not None and session.settings.guidance == 10.0  # the picture's defaults
    assert gallery.current_id() == only and gallery.mix_check.isChecked()
    qtbot.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    assert session.style.sources == (StyleReference(only, 1.0),)  # still the picture
    assert session.settings.guidance == 10.0
    assert gallery.mix_check.isChecked()  # the row shows what holds
    assert gallery.banner.isVisible() and "needs a reference" in gallery.banner.text()

    # the generated reference mixed in, the picture can go: the guidance that moves is said
    gallery.list.setCurrentRow(0)
    qtbot.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    gallery.list.setCurrentRow(1)
    qtbot.mouseClick(gallery.mix_check, Qt.MouseButton.LeftButton)
    assert session.style.sources == (StyleReference(None, 1.0),)
    assert session.settings.guidance == 5.0
    said = window.statusBar().currentMessage()
    assert "moss.png" in said and "guidance 10 → 5" in said


def test_a_rerolled_tile_looks_like_the_other_finished_tiles(qtbot, make_window, tmp_path):
    from PySide6.QtWidgets import QApplication

    from stylealigned_desktop.ui.support import apply_theme

    apply_theme(QApplication.instance())  # the app's stylesheet greys the title of an outdated picture (the fixture puts the one before back)
    _check_rerolled_title(qtbot, make_window, tmp_path)


def _title_ink(tile) -> tuple[int, int, int]:
    """The darkest colour drawn in a tile's title: the colour of its letters."""
    shot = tile.title.grab().toImage()
    colours = {shot.pixelColor(x, y).getRgb()[:3]
               for x in range(shot.width()) for y in range(shot.height())}
    return min(colours, key=sum)


def _check_rerolled_title(qtbot, make_window, tmp_path):
    from stylealigned_desktop.session import store

    from .uifakes import FakeEngine, run_and_wait

    window, _ = make_window(engine=FakeEngine())
    storyboard(window, prompts=("a fox", "a crow", "a bear"), width=128, height=64)
    run_and_wait(qtbot, window)
    window.session.update_panel(2, prompt="a bear asleep")  # its picture is outdated now
    store.save_session_as(window.session, tmp_path / "Board")
    other, _ = make_window(engine=FakeEngine())  # the artist opens it the next day
    window.close()
    assert other.sessions.open_session(tmp_path / "Board.stylealigned")
    tiles = other.grid.tiles
    qtbot.waitUntil(lambda: all(tiles[i].image() is not None for i in range(3)), timeout=60000)
    finished = _title_ink(tiles[0])
    assert _title_ink(tiles[1]) == finished and _title_ink(tiles[2]) != finished  # greyed
    job = run_and_wait(qtbot, other, tiles[2].reroll_button.click)
    assert job.request.only == (2,)
    qtbot.waitUntil(lambda: tiles[2].path is not None and tiles[2].state.text() == "", timeout=60000)
    assert _title_ink(tiles[2]) == finished
