"""A panel's size mode (spec section 14): a panorama preset is stored with its size, kept by a
save, cleared by any other size, and the presets are 4:1 and 3:1 at the height given (the model's)."""

import pytest

from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import (
    SDXL_SIZES,
    is_panorama_size,
    panorama_sizes,
    size_presets,
)
from stylealigned_desktop.session.values import Panel


def test_a_panorama_panel_keeps_its_mode_through_a_save_and_loses_it_to_another_size(session, tmp_path):
    session.set_style_text("ink")
    session.add_panel("the bay at dawn")
    session.add_panel("a boat")
    session.update_panel(0, size=(4096, 1024), size_mode="panorama")
    assert session.build_request().panels[0].size == (4096, 1024)
    store.save_session_as(session, tmp_path / "Wide")
    loaded = store.load_session(tmp_path / "Wide.stylealigned")
    assert [(p.size, p.size_mode) for p in loaded.panels] == [((4096, 1024), "panorama"), (None, None)]
    loaded.update_panel(0, size=(1344, 768))  # any other size is no panorama
    assert loaded.panels[0].size_mode is None
    loaded.close()


def test_a_size_mode_is_panorama_or_none_and_a_panorama_has_its_own_size():
    with pytest.raises(SessionError, match="panel size mode must be 'panorama' or none, got 'wide'"):
        Panel("p1", size=(4096, 1024), size_mode="wide")
    with pytest.raises(SessionError, match="a panorama panel needs its own size"):
        Panel("p1", size_mode="panorama")
    old = Panel("p1", size=(4096, 1024)).to_dict()
    del old["size_mode"]  # sessions saved before panoramas
    assert Panel.from_dict(old).size_mode is None


@pytest.mark.parametrize("height, expected", [
    (1024, ((4096, 1024), (3072, 1024))), (512, ((2048, 512), (1536, 512))), (1216, ((3648, 1216),)),
    (768, ((3072, 768), (2304, 768)))])
def test_the_panorama_presets_are_four_and_three_to_one_at_the_height_where_they_fit(height, expected):
    assert panorama_sizes(height) == expected


def test_restoring_a_runs_panels_brings_a_panorama_back_as_one(session):
    session.set_style_text("ink")
    session.add_panel("the bay at dawn")
    session.add_panel("a boat")
    session.update_panel(0, size=(256, 64), size_mode="panorama")  # 4:1 at the set's 64 px
    session.update_panel(1, size=(128, 64))
    record = session.record_run(session.prepare_generate())
    session.update_panel(0, size=None)
    session.restore_run(record.id, panels=True)
    assert [(p.size, p.size_mode) for p in session.panels] == [((256, 64), "panorama"), ((128, 64), None)]


@pytest.mark.parametrize("native, expected", [
    (512, ((512, 512), (576, 448), (448, 576), (640, 448), (448, 640), (704, 384), (384, 704), (768, 320), (320, 768))),
    (768, ((768, 768), (896, 704), (704, 896), (896, 640), (640, 896), (1024, 576), (576, 1024), (1152, 512), (512, 1152))),
    (128, ((128, 128), (192, 128), (128, 192), (192, 64), (64, 192))),  # the tiny models: rounding onto 128 x 128 drops two
])
def test_the_size_presets_are_sdxls_aspects_at_the_models_native_side(native, expected):
    presets = size_presets(native)
    assert presets == expected
    assert size_presets(1024) == SDXL_SIZES
    for width, height in presets:  # whole multiples of 64, about the native area (64 px steps are coarse at 128)
        assert width % 64 == 0 and height % 64 == 0
        assert 0.7 < width * height / native**2 < (1.3 if native >= 512 else 1.6)


def test_a_panorama_is_told_by_its_shape_at_any_height():
    assert is_panorama_size((2048, 512)) and is_panorama_size((384, 128)) and is_panorama_size((3072, 1024))
    assert not is_panorama_size((1536, 640)) and not is_panorama_size((2560, 512)) and not is_panorama_size(None) and not is_panorama_size((512, 512))
