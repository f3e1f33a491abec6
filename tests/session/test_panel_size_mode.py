"""A panel's size mode (spec section 14): a panorama preset is stored with its size, kept by a
save, cleared by any other size, and the presets are 4:1 and 3:1 at the set's height."""

import pytest

from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import panorama_sizes
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
