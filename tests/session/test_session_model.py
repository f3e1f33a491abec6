"""The Session document: panels, gallery, text import/export, request building, re-roll, history."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import pytest

from stylealigned_desktop import prompts_file
from stylealigned_desktop.engine.request import GeneratedReference, ReferencePicture, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.session import observer, store
from stylealigned_desktop.session.errors import PictureError, SessionError
from stylealigned_desktop.session.history import panel_file_name
from stylealigned_desktop.session.model import (
    MAX_SEED,
    Control,
    Session,
    compose_prompt,
    prepare_picture,
    prepare_picture_data,
)
from stylealigned_desktop.session.presets import StylePreset
from stylealigned_desktop.session.values import StyleReference

from .session_helpers import picture_bytes


def record_changes(session: Session) -> list[observer.Change]:
    changes: list[observer.Change] = []
    session.subscribe(changes.append)
    return changes


# --- panels --------------------------------------------------------------------------------


def test_panel_add_insert_remove_move(session):
    changes = record_changes(session)
    a = session.add_panel("a cat")
    b = session.add_panel("a dog")
    c = session.add_panel("a bird", index=0)
    assert [p.prompt for p in session.panels] == ["a bird", "a cat", "a dog"]
    assert len({a.id, b.id, c.id}) == 3
    assert all(0 <= p.seed <= MAX_SEED and not p.seed_locked for p in session.panels)
    session.move_panel(0, 2)
    assert [p.prompt for p in session.panels] == ["a cat", "a dog", "a bird"]
    session.move_panel(2, 0)
    assert [p.id for p in session.panels] == [c.id, a.id, b.id]
    removed = session.remove_panel(1)
    assert removed == a
    assert [p.id for p in session.panels] == [c.id, b.id]
    assert session.panel_index(b.id) == 1
    with pytest.raises(SessionError, match="deleted"):
        session.panel_index(a.id)
    assert [ch.kind for ch in changes] == [observer.PANELS] * 6
    assert session.dirty


def test_out_of_range_panel_operations_change_nothing(session):
    session.add_panel("one")
    before = session.panels
    changes = record_changes(session)
    for call in (
        lambda: session.remove_panel(3),
        lambda: session.move_panel(0, 5),
        lambda: session.duplicate_panel(-1),
        lambda: session.update_panel(0, seed=-4),
        lambda: session.update_panel(0, colour="red"),
        lambda: session.add_panel("x", index=7),
    ):
        with pytest.raises(SessionError):
            call()
    assert session.panels == before
    assert changes == []


def test_duplicate_panel_copies_everything_but_the_id(session, make_picture):
    session.add_panel("first")
    session.add_panel("second", seed=77, seed_locked=True)
    session.set_panel_control_picture(1, make_picture("edges.png"))
    session.update_panel_control(1, mode="depth", scale=0.5)
    copy = session.duplicate_panel(1)
    original = session.panels[1]
    assert session.panels[2] == copy
    assert copy.id != original.id
    assert (copy.prompt, copy.seed, copy.seed_locked, copy.control) == (
        original.prompt, original.seed, original.seed_locked, original.control)


def test_update_panel_notifies_with_index_and_id(session):
    session.add_panel("a")
    panel = session.add_panel("b")
    changes = record_changes(session)
    session.update_panel(1, prompt="b, at night", seed=5, seed_locked=True)
    assert session.panels[1].prompt == "b, at night"
    assert (session.panels[1].seed, session.panels[1].seed_locked) == (5, True)
    assert changes == [observer.Change(observer.PANEL, 1, panel.id)]
    session.update_panel(1, prompt="b, at night")  # no change, no notification
    assert len(changes) == 1


def test_panel_control_settings_are_validated_and_kept_without_picture(session, make_picture):
    session.add_panel("a house")
    with pytest.raises(SessionError, match="start/end"):
        session.update_panel_control(0, guidance_start=0.8, guidance_end=0.2)
    with pytest.raises(SessionError, match="mode"):
        session.update_panel_control(0, mode="pose")
    with pytest.raises(SessionError, match="canny"):
        session.update_panel_control(0, canny_low=200, canny_high=100)
    session.update_panel_control(0, mode="depth", scale=0.6, guidance_end=0.7)
    path = make_picture("depth.png", color="blue")
    panel = session.set_panel_control_picture(0, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert panel.control.image == f"controls/{digest}.png"
    assert session.path(panel.control.image).read_bytes() == path.read_bytes()
    cleared = session.clear_panel_control_picture(0)
    assert cleared.control.image is None
    assert (cleared.control.mode, cleared.control.scale, cleared.control.guidance_end) == (
        "depth", 0.6, 0.7)


def test_map_kind_says_which_controlnet_a_ready_made_map_feeds(session, make_picture):
    session.set_style_text("blueprint")
    session.add_panel("a tower")
    assert session.panels[0].control.map_kind == "depth"  # the default, as in PanelControl
    session.set_panel_control_picture(0, make_picture("edges.png", color="white"))
    session.update_panel_control(0, mode="map", map_kind="canny")
    changes = record_changes(session)
    with pytest.raises(SessionError, match="normal"):
        session.update_panel_control(0, map_kind="normal")
    with pytest.raises(SessionError, match="map"):
        session.update_panel_control(0, map_kind=None)
    assert changes == [] and session.panels[0].control.map_kind == "canny"
    control = session.build_request().panels[0].control
    assert (control.mode, control.map_kind, control.kind) == ("map", "canny", "canny")
    # in the other modes the kind is the mode's own; the map kind is kept for later
    session.update_panel_control(0, mode="depth")
    control = session.build_request().panels[0].control
    assert (control.map_kind, control.kind) == ("canny", "depth")
    assert session.panels[0].control.map_kind == "canny"


def test_bad_control_picture_is_refused(session, tmp_path):
    session.add_panel("a")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(PictureError, match="notes.png"):
        session.set_panel_control_picture(0, bad)
    assert session.panels[0].control.image is None


# --- plain-text storyboards ----------------------------------------------------------------


def test_text_import_ignores_blank_and_comment_lines(session):
    text = "# my story\n\n  a knight rides out  \n#skip me\n\t\na dragon wakes\r\nthe castle burns\n"
    new = prompts_file.import_panels_text(session, text)
    assert [p.prompt for p in new] == ["a knight rides out", "a dragon wakes", "the castle burns"]
    assert not any(p.seed_locked for p in new)
    assert all(p.control == Control() for p in new)


def test_text_import_export_round_trip(session, tmp_path):
    session.add_panel("existing")
    new = prompts_file.import_panels_text(session, "# comment\nfirst\n\nsecond\n")
    assert [p.prompt for p in new] == ["first", "second"]
    assert [p.prompt for p in session.panels] == ["existing", "first", "second"]
    session.update_panel(0, prompt="line one\nline two")
    session.add_panel("")  # an empty prompt would not survive as a line
    path = tmp_path / "board.txt"
    prompts_file.export_panels_file(session, path)
    assert path.read_text(encoding="utf-8") == "line one line two\nfirst\nsecond\n"
    other = Session()
    prompts_file.import_panels_file(other, path)
    assert [p.prompt for p in other.panels] == ["line one line two", "first", "second"]
    prompts_file.import_panels_text(other, "only\n", replace_all=True)
    assert [p.prompt for p in other.panels] == ["only"]


def test_text_import_export_keeps_panel_sizes(session):
    new = prompts_file.import_panels_text(session, "harbour | size=1344x768\nface | size=832x1216\ncup\n")
    assert [p.size for p in new] == [(1344, 768), (832, 1216), None]
    assert prompts_file.export_panels_text(session) == "harbour | size=1344x768\nface | size=832x1216\ncup\n"


def test_text_import_reads_bom_and_reports_bad_files(session, tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffa fox\nun renard\n".encode())
    prompts_file.import_panels_file(session, path)
    assert [p.prompt for p in session.panels] == ["a fox", "un renard"]
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(SessionError, match="latin1.txt.*UTF-8"):
        prompts_file.import_panels_file(session, latin)
    with pytest.raises(SessionError, match="nothere.txt"):
        prompts_file.import_panels_file(session, tmp_path / "nothere.txt")
    assert len(session.panels) == 2


def test_text_import_locks_given_seeds_and_copies_controls(session, tmp_path, make_picture):
    folder = tmp_path / "story"
    (folder / "maps").mkdir(parents=True)
    edges = folder / "maps" / "edges.png"
    edges.write_bytes(picture_bytes("white"))
    depth = make_picture("depth.png", color="gray")  # elsewhere: an absolute path
    board = folder / "board.txt"
    board.write_text(
        "a toy train | seed=42\n"
        "a toy boat | control=canny:maps/edges.png | low=80 | high=160 | start=0 | end=0.8\n"
        f"a toy car | seed=7 | control=map:{depth} | kind=canny | scale=0.5\n"
        "a toy plane \\| with wings | control=depth:maps/edges.png\n",
        encoding="utf-8",
    )
    train, boat, car, plane = prompts_file.import_panels_file(session, board)
    assert (train.seed, train.seed_locked, train.control) == (42, True, Control())
    assert not boat.seed_locked and car.seed_locked and car.seed == 7
    assert plane.prompt == "a toy plane | with wings"

    def copy_of(picture):
        return f"controls/{hashlib.sha256(picture.read_bytes()).hexdigest()[:16]}.png"

    assert boat.control == Control(image=copy_of(edges), mode="canny", canny_low=80,
                                   canny_high=160, guidance_start=0.0, guidance_end=0.8)
    assert car.control == Control(image=copy_of(depth), mode="map", map_kind="canny", scale=0.5)
    assert plane.control == Control(image=copy_of(edges), mode="depth")
    assert session.path(boat.control.image).read_bytes() == edges.read_bytes()
    assert session.path(car.control.image).read_bytes() == depth.read_bytes()
    assert session.panels == (train, boat, car, plane)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("a cat | colour=red", r"board.txt:3: unknown field 'colour'"),
        ("a cat | control=pose:edges.png", r"board.txt:3: control= must be MODE:PATH"),
        ("a cat | seed=many", r"board.txt:3: seed= needs a whole number"),
        ("a cat | seed=-4", r"board.txt:3: seed must be a whole number"),
        ("a cat | control=canny:edges.png | start=0.9 | end=0.1", r"board.txt:3: control start/end"),
        ("a cat | control=canny:edges.png | low=250 | high=100", r"board.txt:3: canny thresholds"),
        ("a cat | control=canny:edges.png | scale=-1", r"board.txt:3: control strength"),
        ("a cat | control=depth:gone.png", r"board.txt:3: control picture .*gone.png: the file does not exist"),
        ("a cat | control=depth:notes.png", r"board.txt:3: control picture .*notes.png: .*picture"),
        (" | seed=3", r"board.txt:3: the prompt is empty"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_imported(session, tmp_path, bad_line, message):
    session.add_panel("kept")
    before = session.panels
    (tmp_path / "edges.png").write_bytes(picture_bytes("white"))
    (tmp_path / "notes.png").write_text("not a picture")
    board = tmp_path / "board.txt"
    board.write_text(f"a dog | control=canny:edges.png\n# a comment\n{bad_line}\na bird\n")
    changes = record_changes(session)
    for replace_all in (False, True):
        with pytest.raises(SessionError, match=message):
            prompts_file.import_panels_file(session, board, replace_all=replace_all)
    assert session.panels == before and changes == []
    assert not (session.folder / "controls").exists()  # not even the good line's picture


def test_pasted_text_needs_absolute_control_paths(session, make_picture):
    picture = make_picture("edges.png")
    with pytest.raises(SessionError, match="storyboard text:2: .*relative path"):
        prompts_file.import_panels_text(session, "a cat\na dog | control=canny:edges.png\n")
    assert session.panels == ()
    new = prompts_file.import_panels_text(session, f"a dog | control=canny:{picture}\n")
    assert session.path(new[0].control.image).read_bytes() == picture.read_bytes()
    again = prompts_file.import_panels_text(session, "a dog | control=canny:edges.png", base=picture.parent)
    assert again[0].control == new[0].control


def test_text_export_writes_locked_seeds_and_session_copies(session, tmp_path, make_picture):
    session.add_panel("a fox | in the snow", seed=11, seed_locked=True)
    session.add_panel("a hen", seed=12)
    session.add_panel("a barn")
    session.add_panel("a well")
    session.set_panel_control_picture(1, make_picture("hen.png", color="white"))
    session.update_panel_control(1, mode="canny", scale=0.55, canny_low=80, canny_high=160)
    session.set_panel_control_picture(2, make_picture("barn.png", color="black"))
    session.update_panel_control(2, mode="map")
    session.set_panel_control_picture(3, make_picture("well.png", color="blue"))
    session.update_panel_control(3, mode="depth", guidance_end=0.6, map_kind="canny")
    hen = session.path(session.panels[1].control.image)
    barn = session.path(session.panels[2].control.image)
    well = session.path(session.panels[3].control.image)
    assert prompts_file.export_panels_text(session).splitlines() == [
        "a fox \\| in the snow | seed=11",
        f"a hen | control=canny:{hen} | scale=0.55 | low=80 | high=160",
        f"a barn | control=map:{barn} | kind=depth",
        f"a well | control=depth:{well} | end=0.6 | kind=canny",
    ]
    # and back, into another session: the same board
    path = tmp_path / "exported" / "board.txt"
    path.parent.mkdir()
    prompts_file.export_panels_file(session, path)
    other = Session()
    prompts_file.import_panels_file(other, path)
    assert [(p.prompt, p.seed_locked, p.control) for p in other.panels] == [
        (p.prompt, p.seed_locked, p.control) for p in session.panels]
    assert other.panels[0].seed == 11
    other.close()


def test_exported_text_is_what_the_cli_reads(session, tmp_path, make_picture):
    from stylealigned_desktop import cli

    session.set_style_text("macro photo")
    session.set_reference_prompt("a toy train")
    session.add_panel("a toy car", seed=5, seed_locked=True)
    session.add_panel("a toy boat", seed=6, seed_locked=True)
    session.set_panel_control_picture(1, make_picture("boat.png", color="white"))
    session.update_panel_control(1, mode="map", map_kind="canny", scale=0.3, guidance_start=0.2)
    path = tmp_path / "board.txt"
    prompts_file.export_panels_file(session, path)
    args = cli.build_parser().parse_args([
        "generate", "--model", "tiny", "--prompts-file", str(path), "--style", "macro photo",
        "--reference-prompt", "a toy train", "--out", str(tmp_path / "out"),
    ])
    from_cli = cli.build_generate_request(args)
    assert from_cli.panels == session.build_request().panels


# --- gallery -------------------------------------------------------------------------------


def test_add_reference_copies_under_content_hash_and_survives_original_moving(
    session, make_picture
):
    path = make_picture("My Painting.PNG", color="green")
    data = path.read_bytes()
    reference = session.add_reference(path)
    assert reference.id == hashlib.sha256(data).hexdigest()[:16]
    assert reference.file == f"references/{reference.id}.png"
    assert reference.name == "My Painting.PNG"
    assert (reference.width, reference.height) == (64, 48)
    path.unlink()  # the original goes away; the copy is what the session uses
    assert session.path(reference.file).read_bytes() == data
    assert session.missing_files() == []
    assert session.active_reference == reference  # the first picture becomes the style


def test_same_picture_twice_is_stored_once(session, make_picture):
    first = session.add_reference(make_picture("a.png", color="red"))
    again = session.add_reference(make_picture("copy-of-a.png", color="red"))
    other = session.add_reference(make_picture("b.png", color="yellow"))
    assert again == first
    assert [r.id for r in session.references] == [first.id, other.id]
    assert len(list((session.folder / "references").iterdir())) == 2
    assert session.active_reference == first  # later pictures do not take over


def test_picture_stored_with_its_real_format_extension(session, make_picture):
    jpeg_named_png = make_picture("photo.png", color="orange", fmt="JPEG")
    reference = session.add_reference(jpeg_named_png)
    assert reference.file.endswith(".jpg") or reference.file.endswith(".jpeg")


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.png", b"hello, I am text", "not a picture"),
        ("empty.jpg", b"", "empty"),
        ("cut.png", picture_bytes("red", (200, 200))[:300], "damaged|truncated"),
    ],
)
def test_unreadable_picture_is_refused_and_nothing_changes(session, tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    changes = record_changes(session)
    with pytest.raises(PictureError, match=reason) as info:
        session.add_reference(path)
    assert name in str(info.value)
    assert info.value.path == path
    assert session.references == ()
    assert changes == []
    assert not session.folder.exists()  # not even the untitled folder was created


def test_missing_file_and_folder_are_refused(session, tmp_path):
    with pytest.raises(PictureError, match="gone.png.*does not exist"):
        session.add_reference(tmp_path / "gone.png")
    with pytest.raises(PictureError, match="folder"):
        session.add_reference(tmp_path)


def test_add_references_from_files_and_folders_collects_errors(session, tmp_path, make_picture):
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.png").write_bytes(picture_bytes("red"))
    (folder / "sub" / "two.webp").write_bytes(picture_bytes("blue", fmt="WEBP"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    (folder / "readme.txt").write_text("not a picture, and not named like one")
    (folder / ".hidden.png").write_bytes(picture_bytes("pink"))
    loose = make_picture("loose.png", color="white")
    result = session.add_references([folder, loose, loose])
    assert sorted(r.name for r in result.added) == ["loose.png", "one.png", "two.webp"]
    assert [r.name for r in result.already_present] == ["loose.png"]
    assert [e.path.name for e in result.errors] == ["broken.jpg"]
    assert len(session.references) == 3


def test_add_reference_data_from_clipboard(session):
    reference = session.add_reference_data(picture_bytes("purple"), "clipboard.png")
    assert session.path(reference.file).is_file()
    with pytest.raises(PictureError, match="clipboard.png"):
        session.add_reference_data(b"garbage", "clipboard.png")
    assert len(session.references) == 1


def test_prepare_in_threads_then_add_prepared_matches_add_reference(session, make_picture,
                                                                    tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    files = [make_picture(f"p{k}.png", color=c) for k, c in enumerate(("red", "green", "blue"))]
    changes = record_changes(session)
    with ThreadPoolExecutor(max_workers=3) as pool:
        prepared = list(pool.map(prepare_picture, files))
    # preparing touched no session state and wrote nothing
    assert changes == [] and session.references == () and not session.folder.exists()
    for file, picture in zip(files, prepared, strict=True):
        data = file.read_bytes()
        assert picture.data == data and picture.source == file and picture.name == file.name
        assert picture.stored_name == hashlib.sha256(data).hexdigest()[:16] + ".png"
        assert (picture.info.width, picture.info.height) == (64, 48)

    added = [session.add_prepared(p) for p in prepared]
    assert [r.name for r in session.references] == ["p0.png", "p1.png", "p2.png"]
    assert session.style.active_reference == added[0].id
    for file, reference in zip(files, added, strict=True):
        assert session.path(reference.file).read_bytes() == file.read_bytes()
    # the one-step method gives the same entry (and finds it already there)
    other = Session(tmp_path / "other.stylealigned")
    assert other.add_reference(files[1]) == added[1]
    assert session.add_prepared(prepare_picture(files[1])) == added[1]
    assert len(session.references) == 3
    other.close()


def test_add_prepared_decodes_nothing(session, make_picture, monkeypatch):
    from stylealigned_desktop.engine import images

    prepared = prepare_picture(make_picture("big.png", color="teal"))
    control = prepare_picture_data(picture_bytes("navy"), "pasted.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("add_prepared must not decode the picture again")

    monkeypatch.setattr(images, "load_picture", no_decoding)
    monkeypatch.setattr(images, "probe_picture", no_decoding)
    reference = session.add_prepared(prepared)
    assert reference.width == 64 and session.path(reference.file).is_file()
    session.add_panel("a fox")
    panel = session.set_panel_control_prepared(0, control)
    assert panel.control.image == f"controls/{control.stored_name}"
    assert session.path(panel.control.image).read_bytes() == picture_bytes("navy")


def test_prepare_refuses_a_bad_file_naming_it(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(PictureError, match="notes.jpg") as info:
        prepare_picture(bad)
    assert info.value.path == bad
    with pytest.raises(PictureError, match="does not exist"):
        prepare_picture(tmp_path / "gone.png")
    with pytest.raises(PictureError, match="clip.png: .*not a picture"):
        prepare_picture_data(b"garbage", "clip.png")


def test_a_prepared_control_picture_for_a_panel_that_is_gone_is_refused(session):
    control = prepare_picture_data(picture_bytes("navy"), "pasted.png")
    session.add_panel("a fox")
    with pytest.raises(SessionError, match="panel 1 does not exist"):
        session.set_panel_control_prepared(1, control)
    assert not (session.folder / "controls").exists()


def test_active_reference_caption_and_removal(session, make_picture):
    a = session.add_reference(make_picture("a.png", color="red"))
    b = session.add_reference(make_picture("b.png", color="blue"))
    session.set_active_reference(b.id)
    session.set_reference_caption(b.id, "a lighthouse at dusk")
    assert session.active_reference.caption == "a lighthouse at dusk"
    with pytest.raises(SessionError, match="gallery"):
        session.set_active_reference("0000")
    session.remove_reference(b.id)
    assert session.style.active_reference is None  # back to a generated reference
    assert session.references == (a,)
    session.set_active_reference(None)
    assert session.active_reference is None


# --- settings --------------------------------------------------------------------------------


def test_invalid_settings_are_refused_and_nothing_changes(session):
    before = session.settings
    for bad in ({"width": 100}, {"steps": 0}, {"scheduler": "plms"}, {"guidance": "high"},
                {"micro_batch": 0}, {"inversion_offset": 4}, {"colour": 1}):
        with pytest.raises(SessionError):
            session.update_settings(**bad)
    with pytest.raises(SessionError, match="only_self_level"):
        session.update_style_aligned(only_self_level=2.0)
    assert session.settings == before
    session.update_style_aligned(shared_score_shift=0.5, adain_values=True)
    assert session.settings.style_aligned.shared_score_shift == 0.5
    assert session.settings.style_aligned.adain_values


def test_reset_style_aligned_follows_the_style_source(session, make_picture):
    session.update_style_aligned(shared_score_scale=0.5)
    session.reset_style_aligned()
    assert session.settings.style_aligned == StyleAlignedSettings()
    session.add_reference(make_picture())
    session.reset_style_aligned()
    sa = session.settings.style_aligned
    assert sa.share_group_norm and math.isclose(sa.shared_score_shift, math.log(2))


def test_switching_to_a_picture_takes_the_authors_picture_defaults(session, make_picture):
    generated = (5.0, StyleAlignedSettings())
    picture = (10.0, StyleAlignedSettings(shared_score_shift=math.log(2), share_group_norm=True))

    def now():
        return session.settings.guidance, session.settings.style_aligned

    assert now() == generated
    changes = record_changes(session)
    a = session.add_reference(make_picture("a.png", color="red"))  # the first becomes the style
    assert session.active_reference == a and now() == picture
    assert [c.kind for c in changes] == [observer.REFERENCES, observer.STYLE, observer.SETTINGS]
    session.add_panel("a tree")
    request = session.build_request()
    assert isinstance(request.style, ReferencePicture)
    assert (request.sampling.guidance, request.settings) == picture
    b = session.add_reference(make_picture("b.png", color="blue"))
    session.set_active_reference(b.id)  # picture to picture: nothing to switch
    assert now() == picture
    session.set_active_reference(None)
    assert now() == generated
    session.set_active_reference(a.id)
    session.remove_reference(a.id)  # the style goes back to a generated reference
    assert session.active_reference is None and now() == generated


def test_switching_source_keeps_what_the_user_changed(session, make_picture):
    session.update_settings(guidance=7.0)
    ref = session.add_reference(make_picture())
    assert session.settings.guidance == 7.0  # customised: kept
    assert session.settings.style_aligned == StyleAlignedSettings.for_reference_image()
    session.update_style_aligned(shared_score_shift=0.0, shared_score_scale=0.5)  # famous picture
    session.update_settings(guidance=10.0)
    session.set_active_reference(None)
    assert session.settings.guidance == 5.0  # was the picture default: follows the source
    assert session.settings.style_aligned.shared_score_scale == 0.5  # customised: kept
    # the GUI's spin boxes round the shift to 3 decimals: 0.693 still counts as ln 2
    session.set_active_reference(ref.id)
    session.set_style_aligned(StyleAlignedSettings(shared_score_shift=0.693, share_group_norm=True))
    session.set_active_reference(None)
    assert session.settings.style_aligned == StyleAlignedSettings()


def test_control_model_sources_are_optional_settings(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a fox")
    request = session.build_request()
    assert (request.controlnet_canny, request.controlnet_depth, request.depth_model) == (
        None, None, None)  # the engine's defaults for the model
    session.update_settings(controlnet_canny=" my/canny-net ", depth_model="/models/dpt")
    request = session.build_request()
    assert (request.controlnet_canny, request.controlnet_depth, request.depth_model) == (
        "my/canny-net", None, "/models/dpt")
    with pytest.raises(SessionError, match="controlnet_depth must be text"):
        session.update_settings(controlnet_depth=None)


# --- request building ----------------------------------------------------------------------


def test_compose_prompt():
    assert compose_prompt("a cat ", " macro photo.") == "a cat, macro photo."
    assert compose_prompt("", "macro photo.") == "macro photo."
    assert compose_prompt("a cat", "  ") == "a cat"


def test_build_request_from_a_prompts_only_session(session):
    session.set_style_text("minimal origami.")
    session.set_reference_prompt("a crane")
    session.set_reference_seed(11)
    for prompt in ("a frog", "a boat", "a star"):
        session.add_panel(prompt)
    session.update_settings(negative_prompt="blurry", micro_batch=2, guidance=7.0)
    request = session.build_request()
    assert isinstance(request, SetRequest)
    assert request.model == "tiny"
    assert request.style == GeneratedReference(prompt="a crane, minimal origami.", seed=11)
    assert [p.prompt for p in request.panels] == [
        f"{x}, minimal origami." for x in ("a frog", "a boat", "a star")]
    assert [p.seed for p in request.panels] == [p.seed for p in session.panels]
    assert request.only is None and request.selected == (0, 1, 2)
    assert request.sampling.negative_prompt == "blurry"
    assert (request.sampling.steps, request.sampling.width, request.sampling.guidance) == (4, 64, 7.0)
    assert request.micro_batch == 2
    assert request.settings == session.settings.style_aligned


def test_build_request_with_reference_picture_and_control(session, make_picture):
    session.set_style_text("ink sketch")
    ref = session.add_reference(make_picture("style.png", color="black"))
    session.set_reference_caption(ref.id, "a harbour")
    session.add_panel("a ship")
    session.add_panel("a gull")
    session.set_panel_control_picture(1, make_picture("gull-edges.png", color="white"))
    session.update_panel_control(1, mode="canny", scale=0.4, canny_low=50, canny_high=150)
    session.update_settings(inversion_guidance=3.0)
    request = session.build_request()
    assert isinstance(request.style, ReferencePicture)
    assert request.style.path == str(session.path(ref.file))
    assert request.style.caption == "a harbour"
    assert request.style.inversion_guidance == 3.0
    assert request.panels[0].control is None
    control = request.panels[1].control
    assert control.image == str(session.path(session.panels[1].control.image))
    assert (control.mode, control.scale, control.canny_low, control.canny_high) == (
        "canny", 0.4, 50, 150)


def test_the_inversion_offset_and_guidance_reach_every_reference_picture(session, make_picture, tmp_path):
    """The artist's "picture skipped steps" and inversion guidance go into the engine's request
    for each active picture, also after the session is saved and opened again; "Auto" (None)
    leaves the engine's default (5 of 50 steps, scaled)."""
    session.set_style_text("ink sketch")
    first = session.add_reference(make_picture("a.png", color="red"))
    second = session.add_reference(make_picture("b.png", color="blue"))
    session.set_active_reference(first.id)
    session.set_source_active(second.id, True, weight=2.0)
    session.add_panel("a ship")
    session.update_settings(steps=12, inversion_offset=7, inversion_guidance=3.5)
    expected = [(str(session.path(ref.file)), 7, 3.5) for ref in (first, second)]
    for request in (session.build_request(), session.prepare_generate().request):
        assert [(r.path, r.inversion_offset, r.inversion_guidance) for r in request.references] == expected
        assert request.references[1].offset_for(request.sampling.steps) == 7
    reopened = store.load_session(store.save_session_as(session, tmp_path / "Harbour"), read_only=True)
    try:
        request = reopened.build_request()
        assert [(r.inversion_offset, r.inversion_guidance) for r in request.references] == [(7, 3.5)] * 2
    finally:
        reopened.close()
    session.update_settings(inversion_offset=None)
    request = session.build_request()
    assert [r.inversion_offset for r in request.references] == [None, None]
    assert request.references[0].offset_for(12) == 1  # round(5 * 12 / 50)


def test_build_request_refuses_unusable_sessions(session, make_picture):
    with pytest.raises(SessionError, match="no panels"):
        session.build_request()
    session.add_panel("")
    with pytest.raises(SessionError, match="no style"):
        session.build_request()
    session.set_reference_prompt("a lamp")
    with pytest.raises(SessionError, match="panel 1 has no prompt"):
        session.build_request()
    session.update_panel(0, prompt="a chair")
    session.update_settings(model="")
    with pytest.raises(SessionError, match="model"):
        session.build_request()
    assert session.build_request(default_model="stabilityai/sdxl").model == "stabilityai/sdxl"
    session.update_settings(model="tiny")
    ref = session.add_reference(make_picture())
    session.path(ref.file).unlink()
    with pytest.raises(SessionError, match="missing"):
        session.build_request()


def test_generate_draws_fresh_seeds_for_unlocked_panels_only(session):
    session.set_style_text("claymation")
    session.add_panel("locked one", seed=42, seed_locked=True)
    session.add_panel("free one", seed=43)
    session.add_panel("locked two", seed=44, seed_locked=True)
    reference_seed = session.style.reference_seed
    plan = session.prepare_generate()
    seeds = [p.seed for p in plan.request.panels]
    assert seeds[0] == 42 and seeds[2] == 44
    assert seeds[1] != 43
    assert [p.seed for p in session.panels] == [42, 43, 44]  # not before the run finished
    assert plan.request.style.seed == reference_seed  # the reference seed is locked by default
    assert plan.panel_ids == tuple(p.id for p in session.panels)
    assert plan.folder == session.folder / "outputs" / plan.run_id
    second = session.prepare_generate()
    assert second.run_id != plan.run_id
    assert second.request.panels[1].seed != plan.request.panels[1].seed
    session.set_reference_seed(locked=False)
    third = session.prepare_generate()
    assert third.request.style.seed != reference_seed
    assert session.style.reference_seed == reference_seed
    write_run_files(third, [0, 1, 2])
    session.record_run(third, "finished")  # now the storyboard takes the run's seeds
    assert [p.seed for p in session.panels] == [p.seed for p in third.request.panels]
    assert session.style.reference_seed == third.request.style.seed
    assert [p.seed_locked for p in session.panels] == [True, False, True]


def test_failed_generate_changes_no_seed(session):
    session.add_panel("", seed=5)
    with pytest.raises(SessionError):
        session.prepare_generate()
    assert session.panels[0].seed == 5


def test_a_run_that_does_not_finish_changes_no_seed(session):
    session.set_style_text("ink")
    session.set_reference_seed(seed=7, locked=False)
    session.add_panel("one", seed=1)
    session.add_panel("two", seed=2)
    before = session.to_dict()
    cancelled = session.prepare_generate()
    session.discard_plan(cancelled)
    failed = session.prepare_generate()
    session.record_run(failed, "cancelled")
    assert [p.seed for p in session.panels] == [1, 2] and session.style.reference_seed == 7
    assert session.to_dict()["panels"] == before["panels"]


def test_a_seed_the_artist_changed_during_the_run_is_kept(session):
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    session.add_panel("two", seed=2)
    session.add_panel("three", seed=3)
    plan = session.prepare_generate()
    session.update_panel(0, seed=100)  # typed while the run went on
    session.update_panel(1, seed_locked=True)  # locked while the run went on
    session.remove_panel(2)
    write_run_files(plan, [0, 1, 2])
    session.record_run(plan, "finished")
    assert [(p.seed, p.seed_locked) for p in session.panels] == [(100, False), (2, True)]


@pytest.mark.parametrize("edit", ["typed", "locked", "none"])
def test_a_reference_seed_the_artist_changed_during_the_run_is_kept(session, edit):
    """The generated reference's seed follows the panels' rule: the run's seed is taken when
    the run finishes unless the artist typed or locked one meanwhile."""
    session.set_style_text("ink")
    session.set_reference_seed(seed=7, locked=False)
    session.add_panel("one", seed=1)
    plan = session.prepare_generate()
    drawn = plan.request.style.seed
    assert drawn != 7 and session.style.reference_seed == 7
    if edit == "typed":
        session.set_reference_seed(seed=70)
    elif edit == "locked":
        session.set_reference_seed(locked=True)
    write_run_files(plan, [0])
    session.record_run(plan, "finished")
    expected = {"typed": (70, False), "locked": (7, True), "none": (drawn, False)}[edit]
    assert (session.style.reference_seed, session.style.reference_seed_locked) == expected


def test_reroll_plans_one_panel_and_never_changes_a_locked_seed(session):
    session.set_style_text("BW logo. high contrast.")
    for i in range(4):
        session.add_panel(f"panel {i}", seed=100 + i, seed_locked=(i == 2))
    reference_seed = session.style.reference_seed
    plan = session.prepare_reroll(2)
    assert plan.request.only == (2,)
    assert plan.selected == (2,)
    assert plan.request.panels[2].seed == 102  # locked: drawn again with its seed
    assert plan.request.panels[2].prompt == "panel 2, BW logo. high contrast."
    unlocked = session.prepare_reroll(1)
    assert unlocked.request.panels[1].seed != 101
    assert [p.seed for p in unlocked.request.panels][::2] == [100, 102]
    assert [p.seed for p in session.panels] == [100, 101, 102, 103]
    write_run_files(unlocked, [1], reference=False)
    session.record_run(unlocked, "finished")
    assert [p.seed for p in session.panels] == [100, unlocked.request.panels[1].seed, 102, 103]
    assert session.panels[2].seed_locked  # the lock is kept
    assert session.style.reference_seed == reference_seed


def test_a_reroll_keeps_an_unlocked_reference_seed(session):
    """Re-rolling one panel draws only that panel's seed, even when Generate would draw the
    reference's too."""
    session.set_style_text("ink")
    session.set_reference_seed(seed=7, locked=False)
    session.add_panel("one", seed=1)
    plan = session.prepare_reroll(0)
    assert plan.request.style.seed == 7
    write_run_files(plan, [0], reference=False)
    session.record_run(plan, "finished")
    assert session.style.reference_seed == 7 and session.panels[0].seed == plan.request.panels[0].seed


def test_a_panel_removed_during_the_run_leaves_the_others_their_new_seeds(session):
    session.set_style_text("ink")
    for i in range(3):
        session.add_panel(f"panel {i}", seed=i + 1)
    plan = session.prepare_generate()
    session.remove_panel(0)  # the first of the run's panels is gone when it finishes
    write_run_files(plan, [0, 1, 2])
    session.record_run(plan, "finished")
    assert [p.seed for p in session.panels] == [p.seed for p in plan.request.panels[1:]]


def test_recording_a_run_again_replaces_its_record_and_changes_no_seed_twice(session):
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    plan = session.prepare_generate()
    write_run_files(plan, [0])
    session.record_run(plan, "finished")
    session.update_panel(0, seed=5)
    session.record_run(plan, "finished", message="again")
    assert [r.id for r in session.history] == [plan.run_id] and session.history[0].message == "again"
    assert session.panels[0].seed == 5


def test_the_device_and_dtype_asked_for_reach_the_run(session):
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    for plan in (session.prepare_generate(device="cpu", dtype="float32"),
                 session.prepare_reroll(0, device="cpu", dtype="float32")):
        assert (plan.request.device, plan.request.dtype) == ("cpu", "float32")


def test_the_apps_model_is_used_when_the_session_names_none(session):
    session.update_settings(model="")
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    for prepare in (session.prepare_generate, lambda **kw: session.prepare_reroll(0, **kw)):
        with pytest.raises(SessionError, match="no model is chosen"):
            prepare()
        assert prepare(default_model="tiny").request.model == "tiny"


def test_generate_only_some_panels_draws_and_takes_only_their_seeds(session):
    session.set_style_text("ink")
    for i in range(3):
        session.add_panel(f"panel {i}", seed=10 + i)
    with pytest.raises(SessionError):
        session.prepare_generate(only=[5])  # refused before a seed is drawn
    plan = session.prepare_generate(only=[2, 0, 2])
    assert plan.request.only == (0, 2)
    seeds = [p.seed for p in plan.request.panels]
    assert seeds[1] == 11 and seeds[0] != 10 and seeds[2] != 12
    write_run_files(plan, [0, 2])
    session.record_run(plan)
    assert [p.seed for p in session.panels] == seeds


def test_run_files_named_by_the_caller_are_recorded(session):
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    (plan.folder / "style.png").write_bytes(picture_bytes("gray"))
    (plan.folder / "first.png").write_bytes(picture_bytes("red"))
    record = session.record_run(plan, panel_files={0: "first.png"}, reference_file="style.png")
    assert record.images() == [(None, f"outputs/{plan.run_id}/style.png"), (0, f"outputs/{plan.run_id}/first.png")]
    assert record.message == ""


def test_a_discarded_plan_leaves_nothing_behind(session):
    session.set_style_text("ink")
    session.add_panel("one", seed=1)
    plan = session.prepare_generate()
    session.discard_plan(plan)
    assert session.runs_in_progress == 0
    write_run_files(plan, [0])
    session.record_run(plan, "finished")  # filed after all (a late picture): its seeds are gone
    assert session.panels[0].seed == 1


# --- history --------------------------------------------------------------------------------


def write_run_files(plan, indices, reference=True):
    plan.folder.mkdir(parents=True, exist_ok=True)
    if reference:
        (plan.folder / "reference.png").write_bytes(picture_bytes("gray"))
    for i in indices:
        (plan.folder / panel_file_name(i)).write_bytes(picture_bytes("red"))


def test_record_run_finds_the_run_files(session):
    session.set_style_text("sketch, character sheet.")
    session.set_reference_prompt("a robot")
    session.add_panel("a robot waving")
    session.add_panel("a robot sitting")
    plan = session.prepare_generate()
    write_run_files(plan, [0, 1])
    changes = record_changes(session)
    record = session.record_run(plan, consistency=0.8)
    # the run's new seeds reach the two panels, in the same notification batch
    assert changes == [observer.Change(observer.PANEL, i, p.id)
                       for i, p in enumerate(session.panels)] + [
        observer.Change(observer.HISTORY)]
    assert session.history == (record,)
    assert record.folder == f"outputs/{plan.run_id}"
    assert record.images() == [
        (None, f"outputs/{plan.run_id}/reference.png"),
        (0, f"outputs/{plan.run_id}/panel-01.png"),
        (1, f"outputs/{plan.run_id}/panel-02.png"),
    ]
    assert all(session.path(f).is_file() for _, f in record.images())
    assert [p.seed for p in record.panels] == [p.seed for p in session.panels]
    assert record.style.prompt == "a robot, sketch, character sheet."
    assert record.consistency == 0.8

    reroll = session.prepare_reroll(1)
    write_run_files(reroll, [1], reference=False)
    record2 = session.record_run(reroll, status="finished")
    assert [p.index for p in record2.generated] == [1]
    assert record2.only == (1,)
    session.set_run_consistency(record2.id, 0.5)
    assert session.run(record2.id).consistency == 0.5


def test_cancelled_run_records_the_images_it_made(session):
    session.set_style_text("watercolor")
    for prompt in ("a", "b", "c"):
        session.add_panel(prompt)
    plan = session.prepare_generate()
    write_run_files(plan, [0], reference=False)
    record = session.record_run(plan, status="cancelled")
    assert [p.index for p in record.generated] == [0]
    assert record.reference_file is None
    with pytest.raises(SessionError, match="status"):
        session.record_run(plan, status="exploded")


def test_restore_settings_and_seeds_from_history(session):
    session.set_style_text("macro photo. 3d game asset.")
    session.set_reference_prompt("a toy train")
    for prompt in ("a toy car", "a toy boat", "a toy plane"):
        session.add_panel(prompt)
    session.update_settings(guidance=6.5, steps=5)
    plan = session.prepare_generate()
    write_run_files(plan, [0, 1, 2])
    record = session.record_run(plan)
    run_seeds = {p.panel_id: p.seed for p in record.panels}

    # the artist moves on: other settings, other seeds, a reordered board, a new panel
    session.update_settings(guidance=9.0, steps=8, width=128)
    session.update_style_aligned(shared_score_shift=1.0)
    session.set_style_text("BW logo.")
    session.reroll_reference()
    later = session.prepare_generate()
    write_run_files(later, [0, 1, 2])
    session.record_run(later)
    session.move_panel(0, 2)
    extra = session.add_panel("a toy bus")
    assert all(session.panel(pid).seed != seed for pid, seed in run_seeds.items())

    notes = session.restore_run(record.id)
    assert notes == []
    assert session.settings == record.settings
    assert session.style.text == "macro photo. 3d game asset."
    assert session.style.reference_seed == record.style.seed
    assert session.style.reference_prompt == "a toy train"
    for pid, seed in run_seeds.items():
        assert session.panel(pid).seed == seed and session.panel(pid).seed_locked
    assert not session.panel(extra.id).seed_locked
    # the same request as then, for every panel that still exists
    again = session.build_request()
    by_id = dict(zip((p.id for p in session.panels), again.panels, strict=True))
    for i, pid in enumerate(plan.panel_ids):
        assert by_id[pid] == plan.request.panels[i]
    assert again.style == plan.request.style
    session.clear_panels()
    session.add_panel("a toy bus")
    assert session.restore_run(record.id, settings=False) == [
        "none of the run's panels is still in the storyboard"]


def test_restore_whole_board_from_history(session, make_picture):
    session.set_style_text("flat vector")
    session.add_panel("a fox")
    session.add_panel("a hen")
    session.set_panel_control_picture(1, make_picture("hen.png"))
    plan = session.prepare_generate()
    record = session.record_run(plan)
    session.clear_panels()
    session.add_panel("something else")
    changes = record_changes(session)
    session.restore_run(record.id, settings=False, panels=True)
    assert [c.kind for c in changes] == [observer.PANELS]
    assert [p.prompt for p in session.panels] == ["a fox", "a hen"]
    assert [p.id for p in session.panels] == list(plan.panel_ids)
    assert [(p.seed, p.seed_locked) for p in session.panels] == [(p.seed, True) for p in plan.request.panels]
    assert session.panels[1].control.image is not None
    assert session.build_request().panels == plan.request.panels


def test_restoring_a_board_whose_control_picture_is_gone_says_so(session, make_picture):
    session.set_style_text("flat vector")
    session.add_panel("a fox")
    session.set_panel_control_picture(0, make_picture("fox.png"))
    plan = session.prepare_generate()
    record = session.record_run(plan)
    session.file(session.panels[0].control.image).unlink()
    notes = session.restore_run(record.id, panels=True)
    assert notes == ["panel 1's control picture is gone; left without one"]
    assert session.panels[0].control.image is None


def test_restore_brings_back_a_removed_picture_with_the_runs_own_settings(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a fox")
    ref = session.add_reference(make_picture())
    session.update_settings(guidance=5.0)  # the user's choice for this picture, not the default
    record = session.record_run(session.prepare_generate())
    session.remove_reference(ref.id)  # back to a generated reference; the copy stays on disk
    assert session.references == () and session.settings.guidance == 5.0
    assert session.restore_run(record.id) == []
    assert session.active_reference.id == ref.id
    assert session.settings == record.settings  # not moved to the picture default of 10


def test_remove_run_deletes_its_folder(session):
    session.set_style_text("origami")
    session.add_panel("a swan")
    plan = session.prepare_generate()
    write_run_files(plan, [0])
    record = session.record_run(plan)
    session.remove_run(record.id)
    assert session.history == ()
    assert not plan.folder.exists()
    with pytest.raises(SessionError, match="no run"):
        session.run(record.id)


def test_batch_groups_notifications(session):
    changes = record_changes(session)
    with session.batch():
        session.add_panel("a")
        session.add_panel("b")
        session.set_style_text("noir")
    assert [c.kind for c in changes] == [observer.PANELS, observer.STYLE]


def test_a_failing_listener_does_not_stop_others(session):
    heard = []

    def broken(change):
        raise RuntimeError("view bug")

    session.subscribe(broken)
    unsubscribe = session.subscribe(heard.append)
    session.add_panel("a")
    assert len(heard) == 1
    unsubscribe()
    session.add_panel("b")
    assert len(heard) == 1


def test_a_subscription_follows_one_session_at_a_time(session):
    heard = []
    other = Session()
    subscription = observer.Subscription(heard.append)
    subscription.follow(session)
    session.add_panel("a")
    subscription.follow(other)  # a view switching sessions stops hearing the old one
    session.add_panel("b")
    other.add_panel("c")
    subscription.follow(None)
    other.add_panel("d")
    assert [c.kind for c in heard] == [observer.PANELS, observer.PANELS]
    other.close()


def test_wrong_types_from_widgets_are_refused(session):
    session.add_panel("a")
    before = (session.style, session.panels, session.settings)
    for call in (
        lambda: session.set_style_text(None),
        lambda: session.update_panel(0, prompt=3),
        lambda: session.update_panel_control(0, scale="0.5"),
        lambda: session.update_panel_control(0, canny_low=10.5),
        lambda: session.update_settings(model=None),
        lambda: session.update_settings(guidance=float("nan")),
        lambda: session.set_reference_seed(2**70),
    ):
        with pytest.raises(SessionError):
            call()
    assert (session.style, session.panels, session.settings) == before
    session.update_panel_control(0, scale=1)  # an int from a slider is stored as a float
    assert isinstance(session.panels[0].control.scale, float)


def test_restore_notes_a_reference_picture_that_is_gone(session, make_picture):
    session.add_panel("a")
    ref = session.add_reference(make_picture())
    record = session.record_run(session.prepare_generate())
    session.remove_reference(ref.id)
    assert store.collect_garbage(session) == []  # the history still refers to the copy
    session.path(ref.file).unlink()  # lost anyway (deleted by hand)
    notes = session.restore_run(record.id)
    assert notes == ["the run's reference picture is gone; the style source is unchanged"]
    assert session.active_reference is None


def test_restore_brings_back_the_generated_references_prompt_and_seed_locked(session):
    session.set_style_text("ink")
    session.set_reference_prompt("a lighthouse")
    session.add_panel("a boat")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    record = session.record_run(plan)
    session.set_reference_prompt("a windmill")
    session.set_reference_seed(seed=7, locked=False)
    assert session.restore_run(record.id) == []
    style = session.style
    assert (style.reference_prompt, style.reference_seed, style.reference_seed_locked) == (
        "a lighthouse", plan.request.style.seed, True)


def test_restore_brings_back_the_runs_pictures_with_their_captions_and_weights(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a boat")
    kept = session.add_reference(make_picture("kept.png", color="blue"))
    gone = session.add_reference(make_picture("gone.png", color="red"))
    session.set_reference_caption(kept.id, "a blue disc")
    session.set_reference_caption(gone.id, "a red disc")
    session.set_source_active(None, True, weight=4.0)
    session.set_source_active(gone.id, True, weight=3.0)  # after the generated reference
    plan = session.prepare_generate()
    record = session.record_run(plan)
    # the artist moves on: another caption, one picture out of the gallery, another style
    session.set_reference_caption(kept.id, "a sad blue disc")
    session.remove_reference(gone.id)
    session.set_source_active(None, False)
    assert session.restore_run(record.id) == []
    assert session.style.sources == (StyleReference(kept.id, 0.125), StyleReference(None, 0.5),
                                     StyleReference(gone.id, 0.375))
    assert [session.reference(r).caption for r in (kept.id, gone.id)] == ["a blue disc", "a red disc"]
    # what the pictures are inverted from is the run's again: its captions, its shares of the style
    again = session.build_request()
    assert again.weights == plan.request.weights
    assert [replace(r, weight=1) for r in again.references] == [replace(r, weight=1) for r in plan.request.references]


def test_restore_takes_a_gallery_picture_whose_copy_is_missing_as_the_gallery_has_it(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a boat")
    ref = session.add_reference(make_picture())
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    record = session.record_run(plan)
    session.set_source_active(None, True)
    session.set_source_active(ref.id, False)
    session.path(ref.file).unlink()  # deleted by hand: the gallery lists it as missing
    assert session.restore_run(record.id) == []
    assert session.style.sources == (StyleReference(ref.id, 1.0),) and session.missing_files() == [ref.file]


def test_restore_notes_how_many_of_the_runs_pictures_are_gone(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a boat")
    a = session.add_reference(make_picture("a.png", color="red"))
    b = session.add_reference(make_picture("b.png", color="blue"))
    session.set_source_active(b.id, True)
    session.set_source_active(None, True, weight=0.0)  # listed but unused
    record = session.record_run(session.prepare_generate())
    session.set_source_weight(None, 1.0)
    for ref in (a, b):
        session.remove_reference(ref.id)
        session.path(ref.file).unlink()
    session.set_reference_prompt("a windmill")
    before = session.style.sources
    notes = session.restore_run(record.id)
    assert notes == ["2 reference picture(s) of the run are gone; left out of the style"]
    assert session.style.sources == before  # an unused generated reference alone is no style


def test_restore_names_the_style_preset_only_while_its_text_is_the_runs(session):
    noir = StylePreset(name="Noir", style_text="film noir, high contrast")
    session.add_panel("a detective")
    session.apply_preset(noir)
    record = session.record_run(session.prepare_generate())
    session.restore_run(record.id)
    assert (session.style.text, session.style.preset) == ("film noir, high contrast", "Noir")
    session.set_style_text("ink")
    inked = session.record_run(session.prepare_generate())
    session.apply_preset(noir)
    session.restore_run(inked.id)
    assert (session.style.text, session.style.preset) == ("ink", None)


# --- several references and panel sizes (spec sections 11 and 12) -----------------------------


def test_several_weighted_references_go_into_the_request_in_order(session, make_picture):
    session.set_style_text("ink")
    session.set_reference_prompt("a lighthouse")
    session.add_panel("a boat")
    a = session.add_reference(make_picture("a.png", color="red"))  # the first picture becomes the style
    assert session.style.sources == (StyleReference(a.id, 1.0),)
    b = session.add_reference(make_picture("b.png", color="blue"))
    session.set_source_active(b.id, True, weight=3.0)
    session.set_source_active(None, True, weight=0.0)  # the generated reference, listed but unused
    request = session.build_request()
    assert [type(r) for r in request.references] == [ReferencePicture, ReferencePicture, GeneratedReference]
    assert request.references[0].path == str(session.path(a.file))
    assert request.weights == (0.25, 0.75, 0.0)
    assert request.references[2].prompt == "a lighthouse, ink"
    plan = session.prepare_generate()
    assert [(x.kind, x.weight) for x in plan.references] == [("picture", 0.25), ("picture", 0.75), ("generated", 0.0)]
    session.set_source_weight(a.id, 1.0)
    session.set_source_weight(None, 2.0)
    assert session.build_request().weights == (1 / 6, 3 / 6, 2 / 6)
    assert [w for _, w in session.active_sources] == [1.0, 3.0, 2.0]
    assert session.style.active_reference is None and session.style.uses_picture


def test_reference_weights_are_checked(session, make_picture):
    a = session.add_reference(make_picture("a.png"))
    with pytest.raises(SessionError, match="weight"):
        session.set_source_weight(a.id, -1)
    with pytest.raises(SessionError, match="weight above 0"):
        session.set_source_weight(a.id, 0)  # the only active reference
    with pytest.raises(SessionError, match="not active"):
        session.set_source_weight(None, 1)
    with pytest.raises(SessionError, match="gallery"):
        session.set_source_active("0000", True)
    assert session.style.sources == (StyleReference(a.id, 1.0),)


def test_taking_references_out_and_removing_pictures(session, make_picture):
    a = session.add_reference(make_picture("a.png", color="red"))
    b = session.add_reference(make_picture("b.png", color="blue"))
    session.set_source_active(b.id, True, weight=2.0)
    assert session.settings.guidance == 10.0  # pictures: the authors' picture defaults
    session.remove_reference(a.id)
    assert session.style.sources == (StyleReference(b.id, 2.0),)
    with pytest.raises(SessionError, match="needs a reference"):
        session.set_source_active(b.id, False)  # the last one: no silent fallback
    assert session.style.sources == (StyleReference(b.id, 2.0),)
    assert session.settings.guidance == 10.0
    session.set_source_weight(b.id, 0.5)
    session.set_source_active(None, True)
    session.remove_reference(b.id)
    assert session.style.sources == (StyleReference(None, 1.0),) and session.settings.guidance == 5.0


def test_panel_sizes_reach_the_request_and_survive_a_save(session, tmp_path):
    session.set_style_text("ink")
    session.add_panel("an establishing shot")
    session.add_panel("a close-up")
    session.update_panel(0, size=(1344, 768))
    with pytest.raises(SessionError, match="multiple of 64"):
        session.update_panel(1, size=(1000, 768))
    request = session.build_request()
    assert request.panels[0].size == (1344, 768) and request.panels[1].size is None
    assert request.panel_size(1) == (64, 64)
    store.save_session_as(session, tmp_path / "Sizes")
    loaded = store.load_session(tmp_path / "Sizes.stylealigned")
    assert [p.size for p in loaded.panels] == [(1344, 768), None]
    loaded.close()


def test_restore_brings_back_the_runs_references_weights_and_sizes(session, make_picture):
    session.set_style_text("ink")
    session.set_reference_prompt("a lighthouse")
    session.add_panel("a boat")
    session.update_panel(0, size=(128, 64))
    a = session.add_reference(make_picture("a.png", color="red"))
    session.set_source_active(None, True, weight=3.0)
    plan = session.prepare_generate()
    record = session.record_run(plan)
    assert [(x.kind, x.weight) for x in record.references] == [("picture", 0.25), ("generated", 0.75)]
    assert record.panels[0].size == (128, 64)
    session.set_active_reference(None)
    session.update_panel(0, size=None)
    session.restore_run(record.id, panels=True)
    assert session.style.sources == (StyleReference(a.id, 0.25), StyleReference(None, 0.75))
    assert session.panels[0].size == (128, 64)


def test_record_run_finds_every_reference_picture(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a boat")
    session.add_reference(make_picture("a.png", color="red"))
    session.set_source_active(None, True)
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    for name in ("reference.png", "reference-02.png", "panel-01.png"):
        (plan.folder / name).write_bytes(b"png")
    record = session.record_run(plan)
    assert [x.image for x in record.references] == ["reference.png", "reference-02.png"]
    assert record.reference_images() == [(0, f"{record.folder}/reference.png"),
                                         (1, f"{record.folder}/reference-02.png")]
