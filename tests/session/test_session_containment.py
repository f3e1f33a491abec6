"""Nothing outside a session is ever touched: hostile session layouts with a "victim" folder
beside the session, which must stay exactly as it was, byte for byte (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import SessionError, SessionLoadError
from stylealigned_desktop.session.model import Session

from .session_helpers import picture_bytes


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (links are not followed)."""
    found = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


@pytest.fixture
def victim(tmp_path) -> Path:
    """Somebody's folder beside the session: pictures, a thesis, a sub-folder."""
    folder = tmp_path / "victim"
    (folder / "deep").mkdir(parents=True)
    (folder / "holiday.png").write_bytes(picture_bytes("orange"))
    (folder / "thesis.txt").write_text("five years of work")
    (folder / "deep" / "notes.md").write_text("do not lose")
    (folder / "session.json").write_text('{"not": "a session of this app"}')
    return folder


@pytest.fixture
def saved(session, tmp_path, make_picture) -> Session:
    """A titled session with a gallery picture, a control picture and one recorded run."""
    session.add_panel("a lighthouse")
    session.add_reference(make_picture("sea.png", color="blue"))
    session.set_panel_control_picture(0, make_picture("edges.png", color="green"))
    store.save_session_as(session, tmp_path / "Story")
    record_fake_run(session)
    store.save_session(session)
    return session


def record_fake_run(session: Session):
    """A run as the GUI files it: the engine's files in the plan's folder, then record_run."""
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    for name in ("reference.png", "panel-01.png", "contact-sheet.png"):
        (plan.folder / name).write_bytes(picture_bytes("white"))
    (plan.folder / "run.json").write_text("{}")
    return session.record_run(plan)


def link(path: Path, to: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(to, target_is_directory=to.is_dir())


def test_a_references_folder_linked_elsewhere_is_never_cleaned_or_copied(saved, victim, tmp_path):
    before = snapshot(victim)
    link(saved.folder / "references", victim)
    saved.add_panel("another")
    store.save_session(saved)  # the clean-up of unused copies ran
    assert store.collect_garbage(saved) == []
    store.save_session_as(saved, tmp_path / "Copy")
    assert snapshot(victim) == before
    copy = tmp_path / "Copy.stylealigned"
    assert not (copy / "references").exists()
    assert "thesis.txt" not in {p.name for p in copy.rglob("*")}


def test_a_picture_linked_inside_references_is_left_alone(saved, victim):
    before = snapshot(victim)
    (saved.folder / "references" / "planted.png").symlink_to(victim / "holiday.png")
    assert store.collect_garbage(saved) == []
    assert (saved.folder / "references" / "planted.png").is_symlink()
    assert snapshot(victim) == before


@pytest.mark.parametrize("folder", [".", "references", "controls", "cache", "outputs",
                                    "outputs/x/..", "outputs/a/b", "../victim"])
def test_a_history_entry_naming_no_run_folder_is_refused_on_load(saved, folder):
    data = json.loads((saved.folder / "session.json").read_text())
    data["history"][0]["folder"] = folder
    (saved.folder / "session.json").write_text(json.dumps(data))
    with pytest.raises(SessionLoadError, match="history"):
        store.load_session(saved.folder)


def test_deleting_a_run_removes_only_the_files_its_record_lists(saved):
    record = saved.history[0]
    run = saved.folder / record.folder
    (run / "my-notes.txt").write_text("mine")
    everything_else = {k: v for k, v in snapshot(saved.folder).items()
                       if not k.startswith(record.folder)}
    saved.remove_run(record.id)
    assert sorted(p.name for p in run.iterdir()) == ["my-notes.txt"]
    after = {k: v for k, v in snapshot(saved.folder).items() if not k.startswith(record.folder)}
    assert after == everything_else


def test_deleting_a_run_whose_folder_is_a_link_touches_nothing(saved, victim):
    record = saved.history[0]
    for name in ("reference.png", "panel-01.png", "run.json", "contact-sheet.png"):
        (victim / name).write_bytes(b"the victim's own file " + name.encode())
    before = snapshot(victim)
    link(saved.folder / record.folder, victim)
    saved.remove_run(record.id)
    assert snapshot(victim) == before


@pytest.mark.parametrize("sub", ["outputs", "cache"])
def test_outputs_or_cache_linked_elsewhere_are_refused_before_any_write(saved, victim, tmp_path, sub):
    before = snapshot(victim)
    link(saved.folder / sub, victim)
    with pytest.raises(SessionError, match="link"):
        saved.prepare_generate()
    with pytest.raises(SessionError, match="link"):
        saved.build_request()
    store.save_session_as(saved, tmp_path / "Copy")
    assert not (tmp_path / "Copy.stylealigned" / sub).exists()
    assert snapshot(victim) == before


def test_a_gallery_picture_that_is_a_link_is_missing_and_never_copied(saved, victim, tmp_path):
    reference = saved.references[0]
    link(saved.path(reference.file), victim / "holiday.png")
    assert saved.missing_files() == [reference.file]
    with pytest.raises(SessionError, match="missing"):
        saved.build_request()
    store.save_session_as(saved, tmp_path / "Copy")
    copied = tmp_path / "Copy.stylealigned" / reference.file
    assert not copied.exists() and not copied.is_symlink()


def test_a_session_file_that_is_a_link_is_not_read(saved, victim):
    before = snapshot(victim)
    link(saved.folder / "session.json", victim / "session.json")
    with pytest.raises(SessionLoadError, match="link"):
        store.load_session(saved.folder)
    assert snapshot(victim) == before
