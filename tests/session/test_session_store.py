"""Session folders on disk: round trips, atomic writes, load errors, crash recovery, recent list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stylealigned_desktop import paths
from stylealigned_desktop.session import atomic, folders, store
from stylealigned_desktop.session.errors import (
    MissingFilesError,
    SchemaTooNewError,
    SessionError,
    SessionLoadError,
    SessionSaveError,
)
from stylealigned_desktop.session.history import panel_file_name
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.session.values import StyleReference

from .session_helpers import crashed_lock, picture_bytes


def build_rich_session(session: Session, make_picture) -> Session:
    """A session using every part of the document."""
    session.set_style_text("ink storyboard sketch, loose linework, grey wash")
    session.set_reference_prompt("a lighthouse")
    session.set_reference_seed(321, locked=False)
    a = session.add_reference(make_picture("cliffs.png", color="navy"))
    b = session.add_reference(make_picture("storm.webp", color="teal", fmt="WEBP"))
    session.set_reference_caption(b.id, "waves against rocks, night")
    session.set_active_reference(a.id)
    session.add_panel("a boat leaves the harbour", seed=11, seed_locked=True)
    session.add_panel("the storm hits", seed=12)
    session.add_panel("the keeper lights the lamp")
    session.set_panel_control_picture(1, make_picture("storm-edges.png", color="white"))
    session.update_panel_control(1, mode="canny", scale=0.55, guidance_start=0.1,
                                 guidance_end=0.9, canny_low=80, canny_high=160)
    session.set_panel_control_picture(2, make_picture("lamp-edges.png", color="yellow"))
    session.update_panel_control(2, mode="map", map_kind="canny")
    session.update_settings(steps=6, guidance=7.5, width=128, height=64, scheduler="euler",
                            negative_prompt="text, watermark", micro_batch=2,
                            inversion_guidance=2.5, inversion_offset=1,
                            controlnet_canny="diffusers/controlnet-canny-sdxl-1.0")
    session.update_style_aligned(shared_score_shift=0.69, share_group_norm=True, adain_values=True)
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    (plan.folder / "reference.png").write_bytes(picture_bytes("gray"))
    for i in range(3):
        (plan.folder / panel_file_name(i)).write_bytes(picture_bytes("olive"))
    (plan.folder / "run.json").write_text("{}")
    session.record_run(plan, consistency=0.73, message="micro-batch halved once")
    return session


def test_round_trip_save_load_is_equal(session, make_picture, tmp_path):
    build_rich_session(session, make_picture)
    untitled_folder = session.folder
    assert session.untitled and untitled_folder.parent == folders.autosave_root()
    file = store.save_session_as(session, tmp_path / "Lighthouse")
    folder = tmp_path / "Lighthouse.stylealigned"
    assert file == folder / "session.json"
    assert session.folder == folder and not session.untitled and not session.dirty
    assert session.title == "Lighthouse"
    assert not untitled_folder.exists()  # the autosave copy is gone once saved under a name

    loaded = store.load_session(folder)
    assert loaded.to_dict() == session.to_dict()
    assert loaded.panels == session.panels
    assert loaded.references == session.references
    assert loaded.settings == session.settings
    assert loaded.history == session.history
    assert loaded.style == session.style
    assert not loaded.untitled and not loaded.dirty
    # the files the document refers to came along
    for _, image in loaded.history[0].images():
        assert loaded.path(image).is_file()
    assert loaded.missing_files() == []
    assert loaded.build_request() == session.build_request()
    data = json.loads(file.read_text(encoding="utf-8"))
    assert data["format"] == "stylealigned-session"
    assert data["schema_version"] == store.SCHEMA_VERSION


def test_session_json_is_readable_plain_data(session, make_picture, tmp_path):
    build_rich_session(session, make_picture)
    store.save_session_as(session, tmp_path / "Plain")
    data = json.loads((tmp_path / "Plain.stylealigned" / "session.json").read_text())
    assert data["settings"]["style_aligned"]["share_group_norm"] is True
    assert data["panels"][1]["control"]["image"].startswith("controls/")
    assert data["history"][0]["folder"].startswith("outputs/")
    assert data["style"]["text"] == "ink storyboard sketch, loose linework, grey wash"


def test_a_write_failing_halfway_keeps_the_previous_file(session, tmp_path, monkeypatch):
    session.set_style_text("watercolor")
    session.add_panel("a garden")
    folder = tmp_path / "Garden.stylealigned"
    store.save_session_as(session, folder)
    before = (folder / "session.json").read_bytes()

    for _ in range(20):  # big enough to need many chunks (prompts are at most 2000 characters)
        session.add_panel("a pond " * 280)
    session.set_style_text("charcoal")

    def half_then_crash(handle, data):
        handle.write(data[: len(data) // 2])
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(atomic, "_write_payload", half_then_crash)
    with pytest.raises(RuntimeError, match="killed"):
        store.save_session(session)
    assert (folder / "session.json").read_bytes() == before
    assert [p.name for p in folder.iterdir() if p.name.startswith(".tmp")] == []
    assert session.dirty  # the change is still waiting to be saved
    monkeypatch.undo()
    reloaded = store.load_session(folder)
    assert reloaded.style.text == "watercolor"
    assert [p.prompt for p in reloaded.panels] == ["a garden"]

    store.save_session(session)
    assert store.load_session(folder).style.text == "charcoal"


def test_disk_errors_become_a_save_error(session, tmp_path, monkeypatch):
    session.set_style_text("pastel")
    session.add_panel("a bee")
    folder = tmp_path / "Bee.stylealigned"
    store.save_session_as(session, folder)
    before = (folder / "session.json").read_bytes()

    def disk_full(handle, data):
        handle.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_write_payload", disk_full)
    session.add_panel("a wasp")
    with pytest.raises(SessionSaveError, match="No space left"):
        store.save_session(session)
    assert (folder / "session.json").read_bytes() == before


def test_a_killed_writer_leaves_old_or_new_file_and_stale_temporaries_are_cleaned(
    session, tmp_path
):
    session.set_style_text("clay")
    session.add_panel("a snail")
    folder = tmp_path / "Snail.stylealigned"
    store.save_session_as(session, folder)
    # a process killed between writing the temporary and the rename
    script = textwrap.dedent(f"""
        import os
        from stylealigned_desktop.session import atomic
        def killed(handle, data):
            handle.write(data[:len(data) // 3])
            handle.flush()
            os._exit(9)
        atomic._write_payload = killed
        atomic.write_json_atomic({str(folder / 'session.json')!r}, {{"whatever": 1}})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert result.returncode == 9
    left = [p for p in folder.iterdir() if p.name.startswith(".tmp-session.json")]
    assert len(left) == 1
    assert store.load_session(folder).style.text == "clay"
    two_minutes_ago = time.time() - 120  # the killed write is long gone: its temporary is stale
    os.utime(left[0], (two_minutes_ago, two_minutes_ago))
    session.add_panel("a slug")
    store.save_session(session)
    assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())


def saved_folder(session: Session, tmp_path: Path, name: str = "Story") -> Path:
    session.set_style_text("noir")
    session.add_panel("a detective")
    store.save_session_as(session, tmp_path / name)
    return tmp_path / f"{name}.stylealigned"


def assert_untouched(file: Path, content: bytes, mtime: int) -> None:
    assert file.read_bytes() == content
    assert file.stat().st_mtime_ns == mtime


def test_broken_json_is_a_clear_error_and_never_overwritten(session, tmp_path):
    folder = saved_folder(session, tmp_path)
    file = folder / "session.json"
    file.write_text('{"format": "stylealigned-session", "schema_version": 1, "panels": [', "utf-8")
    content, mtime = file.read_bytes(), file.stat().st_mtime_ns
    with pytest.raises(SessionLoadError, match=r"session.json is damaged: not valid JSON \(line 1"):
        store.load_session(folder)
    assert_untouched(file, content, mtime)


def test_newer_schema_is_refused_and_never_overwritten(session, tmp_path):
    folder = saved_folder(session, tmp_path)
    file = folder / "session.json"
    data = json.loads(file.read_text())
    data["schema_version"] = store.SCHEMA_VERSION + 1
    data["something_new"] = {"x": 1}
    file.write_text(json.dumps(data))
    content, mtime = file.read_bytes(), file.stat().st_mtime_ns
    with pytest.raises(SchemaTooNewError, match="newer version") as info:
        store.load_session(folder / "session.json")  # the file path works too
    assert info.value.found == store.SCHEMA_VERSION + 1
    assert_untouched(file, content, mtime)


def test_missing_pictures_are_reported_and_can_be_opened_anyway(session, tmp_path, make_picture):
    session.set_style_text("noir")
    ref = session.add_reference(make_picture("alley.png"))
    session.add_panel("a detective")
    session.set_panel_control_picture(0, make_picture("pose.png", color="white"))
    control = session.panels[0].control.image
    store.save_session_as(session, tmp_path / "Story")
    folder = tmp_path / "Story.stylealigned"
    file = folder / "session.json"
    (folder / ref.file).unlink()
    (folder / control).unlink()
    content, mtime = file.read_bytes(), file.stat().st_mtime_ns
    with pytest.raises(MissingFilesError, match="2 file") as info:
        store.load_session(folder)
    assert sorted(info.value.missing) == sorted([ref.file, control])
    assert_untouched(file, content, mtime)

    opened = store.load_session(folder, allow_missing=True)
    assert sorted(opened.missing_files()) == sorted([ref.file, control])
    assert opened.references == (ref,)  # nothing is dropped silently
    with pytest.raises(SessionError, match="missing"):
        opened.build_request()
    assert_untouched(file, content, mtime)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["panels"][0].update(seed="seven"), r"panels\[0\].seed must be a whole number"),
        (lambda d: d["settings"].update(width=100), "multiple of 8"),
        (lambda d: d["settings"]["style_aligned"].update(sharing=True), "unknown StyleAligned"),
        (lambda d: d["panels"][0]["control"].update(image="../../etc/passwd"), "inside the session"),
        (lambda d: d["panels"][0]["control"].update(map_kind="normal"), "control map"),
        (lambda d: d.update(format="something-else"), "not a StyleAligned session"),
        (lambda d: d.update(schema_version="1"), "schema_version is not valid"),
        (lambda d: d["style"].update(sources=[{"picture": "deadbeef", "weight": 1}]), "not in the gallery"),
        (lambda d: d["style"].update(sources=[{"picture": None, "weight": -1}]), "weight"),
        (lambda d: d["panels"][0].update(size=[1000, 1024]), "multiple of 64"),
        (lambda d: d.update(panels={"a": 1}), "panels must be a list"),
    ],
)
def test_bad_values_are_named_in_the_error(session, tmp_path, mutate, message):
    folder = saved_folder(session, tmp_path)
    file = folder / "session.json"
    data = json.loads(file.read_text())
    mutate(data)
    file.write_text(json.dumps(data))
    content = file.read_bytes()
    with pytest.raises(SessionLoadError, match=message):
        store.load_session(folder)
    assert file.read_bytes() == content


def test_sessions_saved_before_newer_fields_existed_load_with_defaults(
    session, tmp_path, make_picture
):
    session.set_style_text("noir")
    session.update_settings(controlnet_depth="my/depth-net")
    session.add_panel("a street")
    session.set_panel_control_picture(0, make_picture("street.png"))
    session.update_panel_control(0, mode="map", map_kind="canny")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)  # the run's folder, as the engine leaves it
    session.record_run(plan)
    store.save_session_as(session, tmp_path / "Old")
    folder = tmp_path / "Old.stylealigned"
    file = folder / "session.json"
    data = json.loads(file.read_text())
    assert data["panels"][0]["control"]["map_kind"] == "canny"
    del data["panels"][0]["control"]["map_kind"]
    del data["history"][0]["panels"][0]["control"]["map_kind"]
    for settings in (data["settings"], data["history"][0]["settings"]):
        assert settings["controlnet_depth"] == "my/depth-net"
        for name in ("controlnet_canny", "controlnet_depth", "depth_model"):
            del settings[name]
    file.write_text(json.dumps(data))
    loaded = store.load_session(folder)
    assert loaded.panels[0].control.map_kind == "depth"
    assert loaded.history[0].panels[0].control.map_kind == "depth"
    assert loaded.build_request().panels[0].control.kind == "depth"
    assert loaded.settings.controlnet_depth == loaded.history[0].settings.controlnet_depth == ""
    assert loaded.build_request().controlnet_depth is None


def test_not_a_session_folder(tmp_path):
    with pytest.raises(SessionLoadError, match="does not exist"):
        store.load_session(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionLoadError, match="no session.json"):
        store.load_session(tmp_path / "empty")


def test_migrations_upgrade_old_files(session, tmp_path, monkeypatch):
    folder = saved_folder(session, tmp_path)

    def rename_style_text(data):
        data["style"]["text"] = data["style"]["text"].upper()
        return data

    current = store.SCHEMA_VERSION
    monkeypatch.setattr(store, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store.MIGRATIONS, current, rename_style_text)
    loaded = store.load_session(folder)
    assert loaded.style.text == "NOIR"
    file = folder / "session.json"
    assert json.loads(file.read_text())["schema_version"] == current  # loading wrote nothing
    loaded.set_style_text("NOIR!")
    store.save_session(loaded)
    assert json.loads(file.read_text())["schema_version"] == current + 1


def test_sessions_of_one_reference_load_with_that_reference_as_the_only_source(session, tmp_path, make_picture):
    """Schema 1 had one ``active_reference`` and one ``style`` / ``reference_file`` per run."""
    picture = session.add_reference(make_picture("mood.png"))
    session.add_panel("a street")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    (plan.folder / "reference.png").write_bytes(b"png")
    session.record_run(plan)
    folder = saved_folder(session, tmp_path)
    file = folder / "session.json"
    data = json.loads(file.read_text())
    data["schema_version"] = 1
    data["style"].pop("sources")
    data["style"]["active_reference"] = picture.id
    run = data["history"][0]
    reference = run.pop("references")[0]
    reference.pop("weight"), reference.pop("image")
    run.update(style=reference, reference_file="reference.png")
    file.write_text(json.dumps(data))
    loaded = store.load_session(folder)
    assert loaded.style.active_reference == picture.id and loaded.style.sources[0].weight == 1.0
    record = loaded.history[0]
    assert record.style.reference_id == picture.id and record.reference_file == "reference.png"
    assert record.references[0].weight == 1.0
    data["style"]["active_reference"] = None
    file.write_text(json.dumps(data))
    assert store.load_session(folder).style.sources == (StyleReference(None, 1.0),)


def test_save_rules(session, tmp_path):
    session.add_panel("a")
    with pytest.raises(SessionError, match="Save As"):
        store.save_session(session)
    occupied = tmp_path / "Taken.stylealigned"
    occupied.mkdir()
    (occupied / "other.txt").write_text("someone's file")
    with pytest.raises(SessionSaveError, match="not empty"):
        store.save_session_as(session, occupied)
    assert (occupied / "other.txt").read_text() == "someone's file"
    assert session.untitled


def test_save_as_copies_a_titled_session_and_leaves_the_old_one(session, tmp_path, make_picture):
    build_rich_session(session, make_picture)
    store.save_session_as(session, tmp_path / "One")
    store.save_session_as(session, tmp_path / "Two")
    one, two = tmp_path / "One.stylealigned", tmp_path / "Two.stylealigned"
    assert store.load_session(one).to_dict() == store.load_session(two).to_dict()
    run = session.history[0]
    assert (two / run.folder / "run.json").is_file() and (one / run.folder / "run.json").is_file()
    assert store.recent_sessions()[:2] == [two, one]


def test_explicit_save_removes_unused_copies_but_keeps_history_pictures(
    session, tmp_path, make_picture
):
    session.set_style_text("noir")
    kept = session.add_reference(make_picture("kept.png", color="red"))
    dropped = session.add_reference(make_picture("dropped.png", color="blue"))
    used_by_run = session.add_reference(make_picture("run.png", color="green"))
    session.set_active_reference(used_by_run.id)
    session.add_panel("a")
    session.record_run(session.prepare_generate())
    session.remove_reference(dropped.id)
    session.remove_reference(used_by_run.id)
    store.save_session_as(session, tmp_path / "Tidy")
    assert session.path(kept.file).is_file()
    assert session.path(used_by_run.file).is_file()  # the history still points at it
    assert not session.path(dropped.file).exists()
    notes = session.restore_run(session.history[0].id)
    assert notes == [] and session.active_reference.id == used_by_run.id


def test_save_as_while_a_run_is_going_keeps_its_images(session, tmp_path):
    session.set_style_text("ink")
    session.add_panel("a kite")
    session.add_panel("a cloud")
    store.autosave_session(session)
    untitled = session.folder
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    (plan.folder / "reference.png").write_bytes(picture_bytes("gray"))
    store.save_session_as(session, tmp_path / "Windy")  # the engine is still writing into the old folder
    assert untitled.exists()
    (plan.folder / "panel-01.png").write_bytes(picture_bytes("red"))
    (plan.folder / "panel-02.png").write_bytes(picture_bytes("blue"))
    record = session.record_run(plan)
    assert [p.file for p in record.panels] == ["panel-01.png", "panel-02.png"]
    assert all(session.path(f).is_file() for _, f in record.images())
    assert session.path(record.folder).parent == tmp_path / "Windy.stylealigned" / "outputs"
    assert not untitled.exists()  # gone once its last run was filed


def test_requests_cache_inversions_in_the_session_folder(session, tmp_path, make_picture):
    session.set_style_text("ink")
    session.add_reference(make_picture("style.png"))
    session.add_panel("a kite")
    assert session.build_request().cache_dir == str(session.folder / "cache")
    plan = session.prepare_generate()
    assert plan.request.cache_dir == str(session.cache_folder)
    # what the engine leaves there: a trajectory, and a temporary of one being written
    cache = session.folder / "cache"
    cache.mkdir()
    (cache / "trajectory-ab12.safetensors").write_bytes(b"trajectory")
    (cache / "trajectory-cd34.safetensors.x1y2.tmp").write_bytes(b"half")
    session.record_run(plan)
    store.save_session_as(session, tmp_path / "Kites")
    new_cache = tmp_path / "Kites.stylealigned" / "cache"
    assert session.cache_folder == new_cache
    assert session.build_request().cache_dir == str(new_cache)
    assert sorted(p.name for p in new_cache.iterdir()) == ["trajectory-ab12.safetensors"]
    store.save_session(session)  # an explicit save's clean-up leaves the cache alone
    assert (new_cache / "trajectory-ab12.safetensors").read_bytes() == b"trajectory"


def test_the_cache_is_optional_and_never_a_missing_file(session, tmp_path, make_picture):
    session.set_style_text("ink")
    session.add_reference(make_picture("style.png"))
    session.add_panel("a kite")
    store.save_session_as(session, tmp_path / "Kites")
    (session.cache_folder / "sub").mkdir(parents=True)
    (session.cache_folder / "trajectory-ab12.safetensors").write_bytes(b"x")
    assert session.missing_files() == []
    shutil.rmtree(session.cache_folder)
    loaded = store.load_session(session.folder)  # no allow_missing needed
    assert loaded.missing_files() == []
    assert loaded.build_request().cache_dir == str(session.folder / "cache")


def test_an_inversion_written_during_save_as_is_kept(session, tmp_path, make_picture):
    session.set_style_text("ink")
    session.add_reference(make_picture("style.png"))
    session.add_panel("a kite")
    store.autosave_session(session)
    untitled = session.folder
    plan = session.prepare_generate()
    store.save_session_as(session, tmp_path / "Windy")
    # the engine inverts the reference into the cache the request named: the old folder's
    old_cache = untitled / "cache"
    assert plan.request.cache_dir == str(old_cache)
    old_cache.mkdir()
    (old_cache / "trajectory-ab12.safetensors").write_bytes(b"trajectory")
    session.record_run(plan)
    assert not untitled.exists()
    assert (session.cache_folder / "trajectory-ab12.safetensors").read_bytes() == b"trajectory"
    assert session.build_request().cache_dir == str(tmp_path / "Windy.stylealigned" / "cache")


def test_discarded_plan_leaves_no_empty_folder(session):
    session.set_style_text("ink")
    session.add_panel("a kite")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    assert session.runs_in_progress == 1
    session.discard_plan(plan)
    assert not plan.folder.exists() and session.runs_in_progress == 0


def test_autosave_writes_only_when_dirty(session):
    assert not store.autosave_session(session)  # a fresh session writes nothing
    assert not session.folder.exists()
    session.add_panel("a")
    assert store.autosave_session(session)
    assert (session.folder / "session.json").is_file()
    assert not store.autosave_session(session)


CRASHING_APP = """
import os, random, sys
from stylealigned_desktop.session.model import Session
from stylealigned_desktop.session import store
s = Session(rng=random.Random(5))
s.set_style_text("claymation")
for prompt in sys.argv[1:]:
    s.add_panel(prompt)
store.autosave_session(s)
print(s.folder)
os._exit(1)  # crash: no close, no save
"""


def test_crash_recovery_lists_restores_and_discards(session, tmp_path):
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_APP, "a clay owl", "a clay moon"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    crashed = Path(result.stdout.strip())
    assert crashed.parent == folders.autosave_root()

    # our own open untitled session is not offered for recovery
    session.add_panel("mine")
    store.autosave_session(session)
    entries = store.list_recoverable()
    assert [e.folder for e in entries] == [crashed]
    entry = entries[0]
    assert (entry.panels, entry.first_prompts, entry.error) == (2, ("a clay owl", "a clay moon"), None)
    assert "2 panel(s)" in entry.summary

    recovered = store.recover_session(entry)
    assert recovered.untitled and recovered.folder == crashed
    assert [p.prompt for p in recovered.panels] == ["a clay owl", "a clay moon"]
    assert recovered.style.text == "claymation"
    assert store.list_recoverable() == []  # now it is ours again
    recovered.close()
    assert store.list_recoverable() == []  # closed cleanly: never offered again

    store.discard_recoverable(crashed)
    assert not crashed.exists()
    assert store.list_recoverable() == []
    with pytest.raises(SessionError, match="not an autosaved"):
        store.discard_recoverable(tmp_path)


def test_a_damaged_autosave_is_listed_with_its_problem(tmp_path):
    folder = folders.autosave_root() / "untitled-20200101-000000-abcdef.stylealigned"
    folder.mkdir()
    (folder / "session.json").write_text("{broken")
    crashed_lock(folder)
    entries = store.list_recoverable()
    assert [e.folder.name for e in entries] == [folder.name + store.BROKEN_SUFFIX]
    assert "not valid JSON" in entries[0].error
    store.discard_recoverable(entries[0])
    assert not folder.exists() and not entries[0].folder.exists()


def test_discard_untitled_and_close(session):
    session.add_panel("a")
    store.autosave_session(session)
    assert (session.folder / folders.LOCK_FILE).is_file()
    session.close()
    assert not (session.folder / folders.LOCK_FILE).exists()
    store.discard_untitled(session)
    assert not session.folder.exists()


def test_recent_sessions(session, tmp_path):
    folder = saved_folder(session, tmp_path, "Recent")
    assert store.recent_sessions()[0] == folder
    store.forget_recent(folder)
    assert folder not in store.recent_sessions()
    store.load_session(folder)
    assert store.recent_sessions()[0] == folder
    (paths.config_dir() / "recent-sessions.json").write_text("nonsense")
    assert store.recent_sessions() == []


def test_a_run_deleted_just_before_a_crash_is_reported_and_dropped_on_open(session, tmp_path):
    """Issue 23, item 4: History > Delete removes the run's files at once, but the history
    without it reaches session.json only at the next autosave; a crash in between left an
    entry whose pictures are gone, and nothing said so."""
    session.set_style_text("paper cut")
    session.add_panel("a kite")
    kept, deleted = session.prepare_generate(), None
    for plan in (kept, session.prepare_generate()):
        plan.folder.mkdir(parents=True)
        (plan.folder / panel_file_name(0)).write_bytes(picture_bytes("red"))
        record = session.record_run(plan)
        deleted = record
    store.save_session_as(session, tmp_path / "Kites")
    folder = tmp_path / "Kites.stylealigned"
    assert session.missing_files() == []
    session.remove_run(deleted.id)  # History > Delete: the files go now...
    assert not (folder / deleted.folder).exists()
    session.close()  # ... and the app dies before its autosave (session.json still lists it)
    assert deleted.id in (folder / "session.json").read_text()

    with pytest.raises(MissingFilesError, match=deleted.folder):
        store.load_session(folder)
    reopened = store.load_session(folder, allow_missing=True)  # "Open anyway"
    assert [r.id for r in reopened.history] == [kept.run_id] and reopened.missing_files() == []
    assert reopened.dirty  # the history without it is saved with the next autosave
    reopened.close()


@pytest.mark.parametrize("text", [
    '{"sessions": ["/home/artist/Harbour.stylealigned"',  # cut off mid-write: not JSON
    '{"sessions": "/home/artist/Harbour.stylealigned"}',  # a string, not a list
    '["/home/artist/Harbour.stylealigned"]',  # a list, not an object
])
def test_a_broken_recent_list_is_set_aside_and_started_again(session, tmp_path, text):
    recent = paths.config_dir() / "recent-sessions.json"
    recent.parent.mkdir(parents=True, exist_ok=True)
    recent.write_text(text, encoding="utf-8")
    assert store.recent_sessions() == []
    assert (recent.parent / "recent-sessions.json.broken").read_text(encoding="utf-8") == text
    folder = saved_folder(session, tmp_path, "Harbour")  # saving remembers it in a new list
    assert store.recent_sessions() == [folder]
    recent.write_text("{", encoding="utf-8")  # broken again: the first copy set aside stays
    assert store.recent_sessions() == []
    assert (recent.parent / "recent-sessions.json.broken").read_text(encoding="utf-8") == text
    assert (recent.parent / "recent-sessions.json.broken-2").read_text(encoding="utf-8") == "{"


def test_names_no_folder_can_have_are_skipped_in_the_recent_list(session, tmp_path):
    folder = saved_folder(session, tmp_path, "Harbour")
    recent = paths.config_dir() / "recent-sessions.json"
    recent.write_text(json.dumps({"sessions": ["x" * 5000, "nul\u0000byte", 7, str(folder)]}),
                      encoding="utf-8")
    assert store.recent_sessions() == [folder]
    assert not (recent.parent / "recent-sessions.json.broken").exists()  # the list itself is fine
