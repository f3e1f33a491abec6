"""Hostile session.json entries of the characters (spec section 13, issue 25): an anchor picture
that is a link out of the session, a FIFO, a folder, a huge or truncated picture; names that are
empty, bracketed or taken twice; nesting deep enough to break a JSON reader. Each is one clear
message; nothing outside the session is touched and nothing of the session is lost."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from stylealigned_desktop.engine.images import PictureError
from stylealigned_desktop.engine.request_files import check_request_files
from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import MissingFilesError, SessionError, SessionLoadError

from .session_helpers import picture_bytes
from .test_session_containment import snapshot


@pytest.fixture
def victim(tmp_path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "holiday.png").write_bytes(picture_bytes("orange"))
    (folder / "thesis.txt").write_text("five years of work")
    return folder


@pytest.fixture
def cast(session, make_picture, tmp_path):
    """A saved session whose [Mira] has an anchor picture (anchor 1) and names her in a panel."""
    session.set_style_text("ink wash")
    session.add_character("Mira", "a red-haired girl in a yellow raincoat")
    session.set_character_picture("Mira", 0, make_picture("mira.png", color="green"))
    session.add_panel("[Mira] on the pier")
    store.save_session_as(session, tmp_path / "Pier")
    return session


def _swap_picture(session, make) -> Path:
    """Put ``make(path)`` where Mira's anchor picture was; the saved session.json is unchanged."""
    path = session.folder / session.character("Mira").picture(0)
    path.unlink()
    make(path)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["link out", "fifo", "folder"])
def test_an_anchor_picture_that_is_no_regular_file_inside_is_missing_never_read(cast, victim, tmp_path, kind):
    before = snapshot(victim)
    make = {"link out": lambda p: p.symlink_to(victim / "holiday.png"), "fifo": os.mkfifo, "folder": Path.mkdir}[kind]
    relative = cast.character("Mira").picture(0)
    _swap_picture(cast, make)
    with pytest.raises(MissingFilesError, match=f"missing from its folder: {relative}$"):
        store.load_session(cast.folder)  # said at once (a FIFO is never opened: no hang)
    loaded = store.load_session(cast.folder, allow_missing=True)  # the artist opens it anyway
    assert loaded.character("Mira").picture(0) == relative  # the record is kept, not dropped
    assert loaded.missing_files() == [relative]
    with pytest.raises(SessionError, match=r"Mira's anchor picture 1 is missing from the session folder"):
        loaded.build_request()
    store.save_session_as(loaded, tmp_path / "Copy")
    copied = tmp_path / "Copy.stylealigned" / relative
    assert not copied.is_file() and not copied.is_symlink()  # nothing read through it, no picture made of it
    assert snapshot(victim) == before


def _truncated(path: Path) -> None:
    path.write_bytes(picture_bytes("green")[:-30])


def _huge(path: Path) -> None:
    """A small PNG whose header says 12000 x 12000 pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = struct.pack(">II", 12000, 12000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    path.write_bytes(bytes(png))


@pytest.mark.parametrize("make, words", [(_truncated, "damaged"), (_huge, "12000x12000")])
def test_a_damaged_or_huge_anchor_picture_is_named_before_any_model_loads(cast, make, words):
    """The session opens and keeps the picture; the request's file check (what the command
    line runs before loading a model, and what the engine's read says too) names it."""
    _swap_picture(cast, make)
    loaded = store.load_session(cast.folder)
    request = loaded.build_request()
    with pytest.raises(PictureError, match=rf"an anchor picture of \[Mira\]: .*{words}") as refused:
        check_request_files(request)
    assert "\n" not in str(refused.value)
    assert loaded.character("Mira").picture(0) is not None


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["characters"][0].update(name=""), "needs a name"),
    (lambda d: d["characters"][0].update(name="   "), "needs a name"),
    (lambda d: d["characters"][0].update(name="[Mira]"), "starts with a capital letter"),
    (lambda d: d["characters"][0].update(name="Mi]ra"), "starts with a capital letter"),
    (lambda d: d["characters"].append(dict(d["characters"][0], description="someone else")), "share one name"),
    (lambda d: d["characters"][0].update(pictures=["/etc/passwd"]), "inside the session"),
    (lambda d: d["characters"][0].update(name=["Mira"]), "name must be text"),
    (lambda d: d.update(characters={"Mira": {}}), "characters"),
])
def test_bad_names_and_shapes_are_one_load_error_and_the_file_is_kept(cast, mutate, message):
    file = cast.folder / "session.json"
    data = json.loads(file.read_text())
    mutate(data)
    text = json.dumps(data)
    file.write_text(text)
    with pytest.raises(SessionLoadError, match=message) as refused:
        store.load_session(cast.folder)
    assert "\n" not in str(refused.value)
    assert file.read_text() == text  # nothing of the artist's file is lost


def test_characters_nested_too_deeply_are_one_load_error(cast):
    file = cast.folder / "session.json"
    text = file.read_text().replace('"characters": [', f'"characters": [{DEEP}, ', 1)
    file.write_text(text)
    with pytest.raises(SessionLoadError, match="nested too deeply"):
        store.load_session(cast.folder)
    assert file.read_text() == text
