"""Sizes follow the model to another base (spec section 14): a preset of the old base moves to
the new base's preset of the same aspect, a panorama preset to the new base's height, a typed
size stays; the set and the panels move in one change."""

import pytest

from stylealigned_desktop.session.base_sizes import (
    SizeMove,
    describe_moves,
    panorama_on_base,
    preset_on_base,
)


@pytest.mark.parametrize("size, old, new, expected", [
    ((1024, 1024), 1024, 512, (512, 512)),
    ((1152, 896), 1024, 512, (576, 448)),  # 1152 / 2 = 576, 896 / 2 = 448
    ((832, 1216), 1024, 768, (640, 896)),  # 832 * 3/4 = 624 -> 640 (nearest 64), 1216 * 3/4 = 912 -> 896
    ((1344, 768), 1024, 128, (192, 128)),  # 168 -> 192, 96 -> 128 (halves up)
    ((1536, 640), 1024, 128, (192, 64)),  # 192, 80 -> 64
    ((1152, 896), 1024, 128, (128, 128)),  # 144 -> 128, 112 -> 128
    ((704, 384), 512, 1024, (1344, 768)),  # SD 1.5's 16:9 back to SDXL's
    ((1024, 576), 768, 512, (704, 384)),  # SD 2.1-768's 16:9 to SD 1.5's
    ((128, 128), 128, 1024, (1024, 1024)),  # the first aspect onto 128 x 128 is the square
    ((64, 192), 128, 768, (512, 1152)),  # 640 x 1536's aspect: 480 -> 512, 1152
])
def test_a_preset_of_the_old_base_moves_to_the_new_bases_preset_of_its_aspect(size, old, new, expected):
    assert preset_on_base(size, old, new) == expected


@pytest.mark.parametrize("size, old", [((1000, 600), 1024), ((960, 640), 1024), ((512, 512), 1024),
                                       ((1024, 1024), 512), ((256, 128), 128), ((2048, 512), 512)])
def test_a_size_that_is_no_preset_of_the_old_base_stays(size, old):
    assert preset_on_base(size, old, 768) is None


@pytest.mark.parametrize("size, old, new, expected", [
    ((4096, 1024), 1024, 512, (2048, 512)), ((3072, 1024), 1024, 128, (384, 128)),
    ((1536, 512), 512, 768, (2304, 768)), ((512, 128), 128, 1024, (4096, 1024)),
    ((2048, 512), 1024, 512, None),  # a panorama at another height than the old base's: typed
    ((3072, 768), 768, 1216, None),  # 4:1 and 3:1 at 1216 are too wide for a panel
])
def test_a_panorama_preset_moves_to_the_new_bases_height(size, old, new, expected):
    assert panorama_on_base(size, old, new) == expected


def test_the_set_and_its_preset_panels_move_in_one_change_and_typed_sizes_stay(session):
    session.set_style_text("ink")
    for prompt in ("the bay", "a boat", "the harbour", "a gull", "the quay"):
        session.add_panel(prompt)
    session.update_settings(width=1152, height=896)
    session.update_panel(0, size=(1344, 768))
    session.update_panel(1, size=(960, 640))  # typed
    session.update_panel(2, size=(3072, 1024), size_mode="panorama")
    session.update_panel(3, size=(4096, 1024))  # a panorama's shape typed as a size: no panorama preset
    changes = []
    session.subscribe(changes.append)

    moves = session.follow_base(1024, 128)

    assert (session.settings.width, session.settings.height) == (128, 128)
    assert [(p.size, p.size_mode) for p in session.panels] == [
        ((192, 128), None), ((960, 640), None), ((384, 128), "panorama"), ((4096, 1024), None), (None, None)]
    ids = [p.id for p in session.panels]
    assert moves == (SizeMove(None, (1152, 896), (128, 128)), SizeMove(ids[0], (1344, 768), (192, 128)),
                     SizeMove(ids[2], (3072, 1024), (384, 128)))
    assert sorted(c.kind for c in changes) == ["panel", "panel", "settings"]
    assert describe_moves(moves, "SD 1.5") == (
        "Set size 1152×896 → 128×128; 2 panels 1344×768 → 192×128, 3072×1024 → 384×128 for SD 1.5")
    assert session.follow_base(128, 128) == ()


def test_the_words_say_one_panel_and_nothing_when_nothing_moved():
    assert describe_moves((SizeMove("p1", (1344, 768), (704, 384)),), "SD 2.x") == "1 panel 1344×768 → 704×384 for SD 2.x"
    assert describe_moves((SizeMove(None, (1024, 1024), (512, 512)),), "SD 1.5") == "Set size 1024×1024 → 512×512 for SD 1.5"
    assert describe_moves((), "SD 1.5") == ""
