"""The one reader of files anyone could have put in the app's way (issue 23, items 6 and 7):
regular files only, never waiting, size-limited, never through a link out of its folder, and
every JSON failure one UnreadableFile."""

from __future__ import annotations

import os
import threading

import pytest

from stylealigned_desktop import userfiles
from stylealigned_desktop.userfiles import UnreadableFile


def read_in_thread(*args, **kwargs):
    """read_bytes in a thread, so a read that waits forever fails the test instead of hanging it."""
    outcome = {}

    def read():
        try:
            outcome["value"] = userfiles.read_bytes(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the read is still waiting"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_and_a_device_are_refused_without_waiting_or_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_in_thread(tmp_path / "pipe", 1024)
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_in_thread("/dev/zero", 1024)


def test_only_files_within_the_size_limit_are_read(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x" * 1000)
    assert userfiles.read_bytes(tmp_path / "a.txt", 1000) == b"x" * 1000
    with pytest.raises(UnreadableFile, match="too big"):
        userfiles.read_bytes(tmp_path / "a.txt", 999)
    with pytest.raises(UnreadableFile, match="a folder") as folder:
        userfiles.read_bytes(tmp_path, 1000)
    assert not folder.value.missing
    with pytest.raises(UnreadableFile, match="no such file") as missing:
        userfiles.read_bytes(tmp_path / "gone.txt", 1000)
    assert missing.value.missing


def test_a_link_out_of_the_folder_is_never_followed_a_link_inside_is(tmp_path):
    (tmp_path / "secret.txt").write_text("outside")
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "here.json").write_text('{"inside": true}')
    (folder / "out.json").symlink_to(tmp_path / "secret.txt")
    (folder / "alias.json").symlink_to("here.json")
    with pytest.raises(UnreadableFile, match="outside its folder"):
        userfiles.read_text(folder / "out.json", 1024, within=folder)
    assert userfiles.read_json(folder / "alias.json", 1024, within=folder) == {"inside": True}
    assert userfiles.read_text(folder / "out.json", 1024) == "outside"  # no folder named: followed


@pytest.mark.parametrize("text, reason", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"steps": ' + "9" * 10_000 + "}", "digits"),
    ("{broken", r"line 1, column 2"),
])
def test_every_json_failure_is_one_unreadable_file(tmp_path, text, reason):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(UnreadableFile, match=reason):
        userfiles.read_json(tmp_path / "bad.json", 1 << 20)
    (tmp_path / "latin1.json").write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(UnreadableFile, match="UTF-8"):
        userfiles.read_json(tmp_path / "latin1.json", 1024)
