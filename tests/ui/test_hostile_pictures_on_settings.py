"""A PNG dropped on Settings that someone else made (issue 23, items 3 and 9): its text is read
without decoding a pixel, every failure is one banner line, and the LoRAs and VAE it names are
checked as the command line checks them before the session takes them."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from stylealigned_desktop.engine.request import Lora
from tests.loras import tiny_lora_state, write_diffusers_lora
from tests.ui.uifakes import FakeEngine, drop_files, storyboard


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_settings(path: Path, settings: str, width: int, height: int, pixels: bytes = b"") -> Path:
    """A PNG of ``width`` x ``height`` whose ``stylealigned`` text chunk is ``settings`` and
    whose pixel data is only ``pixels`` (a header-only picture unless a caller gives more)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"tEXt", b"stylealigned\0" + settings.encode("latin-1"))
                     + _chunk(b"IDAT", zlib.compress(pixels)) + _chunk(b"IEND", b""))
    return path


def _window(make_window):
    window, _ = make_window(engine=FakeEngine())
    return window, storyboard(window)


SETTINGS = json.dumps({"steps": 31, "guidance": 6.5, "width": 128, "height": 64})


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (12_000, 12_000)])
def test_the_settings_of_a_huge_picture_are_read_without_decoding_it(qtbot, make_window, tmp_path,
                                                                     width, height):
    # 10^10 pixels (Pillow refuses to open it) and 144 MP: the drop reads the text chunk only
    # (the pixel data here is one row: decoding it would fail as truncated)
    dropped = png_with_settings(tmp_path / "huge.png", SETTINGS, width, height, b"\0" * 64)
    window, session = _window(make_window)
    enter, drop = drop_files(window.settings_panel, [dropped])
    assert drop.isAccepted()
    assert (session.settings.steps, session.settings.guidance) == (31, 6.5)
    assert window.banner.isHidden()


@pytest.mark.parametrize("settings, words", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"steps": ' + "9" * 5000 + "}", "digits"),
])
def test_hostile_settings_text_is_one_banner_line(qtbot, make_window, tmp_path, settings, words):
    dropped = png_with_settings(tmp_path / "deep.png", settings, 64, 32)
    window, session = _window(make_window)
    before = session.settings
    drop_files(window.settings_panel, [dropped])
    text = window.banner_text.text()
    assert not window.banner.isHidden() and "deep.png" in text and words in text and "\n" not in text
    assert session.settings == before


def test_loras_and_vae_a_picture_names_are_checked_as_the_cli_checks_them(qtbot, make_window, tmp_path):
    good = write_diffusers_lora(tmp_path / "ink.safetensors", tiny_lora_state())
    text_file = tmp_path / "notes.safetensors"
    text_file.write_text("root:x:0:0:root:/root:/bin/bash\n")
    secret = tmp_path / "shadow"
    secret.write_text("root:*:19000:0:99999:7:::\n")
    settings = json.dumps({
        "steps": 29,
        "loras": [{"file": "passwd", "path": str(secret), "weight": 1.0},
                  {"file": "notes.safetensors", "path": str(text_file), "weight": 0.5},
                  {"file": "ink.safetensors", "path": str(good), "weight": 1e308},
                  {"file": "ink.safetensors", "path": str(good), "weight": 0.6}],
        "vae": str(secret),
    })
    dropped = png_with_settings(tmp_path / "made-elsewhere.png", settings, 64, 32)
    window, session = _window(make_window)
    drop_files(window.settings_panel, [dropped])
    assert session.settings.steps == 29  # what can be used is taken
    assert session.settings.loras == (Lora(str(good), 0.6),)
    assert session.settings.vae == ""
    text = window.banner_text.text()
    assert not window.banner.isHidden()
    for refused in ("shadow", "notes.safetensors", "1e+308"):
        assert refused in text, text
