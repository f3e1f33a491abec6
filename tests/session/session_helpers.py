"""Helpers of the session tests (a module of its own so test files can import it)."""

from __future__ import annotations

import io
import subprocess
import sys

from PIL import Image, ImageDraw


def picture_bytes(color: str = "red", size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    """A small drawn picture: a colored disc on a grey square (different colors, different bytes)."""
    image = Image.new("RGB", size, (90, 90, 90))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, size[0] - 8, size[1] - 8), fill=color)
    draw.line((0, 0, size[0], size[1]), fill="white", width=3)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def crashed_lock(folder) -> None:
    """The lock a killed app leaves: its process id is gone, or now names a later program."""
    import json
    import socket

    (folder / "session.lock").write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": 1.0}))


HOLDER = """
import sys
from pathlib import Path
from stylealigned_desktop.session import folders
folders.acquire_lock(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()  # holds the lock until killed (or its test's process ends), however long the test takes
"""


def held_elsewhere(folder) -> subprocess.Popen:
    """Another running app holding the session lock of ``folder``; kill it when done."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder
