"""Checking dropped pictures and copying them into a session folder under content-hashed names.

A copy is named ``<first 16 hex digits of its SHA-256><ext>``: the same picture dropped twice
is stored once, and the session keeps working when the original file moves or is deleted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..engine import images
from .errors import PictureError

HASH_DIGITS = 16
_USUAL_EXTENSIONS = {
    "PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif",
}


@dataclass(frozen=True)
class PictureInfo:
    """What a readable picture is: its PIL format, size and the file extension to store it under."""

    format: str
    width: int
    height: int
    extension: str


def picture_extensions() -> frozenset[str]:
    """File extensions PIL can open (lower case, with the dot), for filtering folder contents."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def inspect_picture_file(path: str | Path, name: str | Path | None = None) -> PictureInfo:
    """Check that ``path`` is a picture the engine can read (fully decoded, as the engine will).

    Uses :mod:`stylealigned_desktop.engine.images` (formats, EXIF, alpha, 16-bit, size limit),
    so a picture accepted here never fails later when a run reads it. Raises
    :class:`PictureError` naming ``name`` (default: the file's name).
    """
    path = Path(path)
    shown = Path(name) if name is not None else path
    try:
        info = images.probe_picture(path)
        images.load_picture(path)
    except images.PictureError as exc:
        raise PictureError(shown, _reason(exc, path)) from None
    except OSError as exc:
        raise PictureError(shown, f"the file cannot be read ({exc.strerror or exc})") from None
    return PictureInfo(info.format, info.width, info.height, _extension_for(info.format, shown.suffix))


def inspect_picture(data: bytes, name: str | Path) -> PictureInfo:
    """Like :func:`inspect_picture_file` for picture bytes (the clipboard, a dragged image)."""
    if not data:
        raise PictureError(name, "the file is empty")
    fd, tmp = tempfile.mkstemp(prefix="stylealigned-picture-", suffix=Path(name).suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return inspect_picture_file(tmp, name)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reason(exc: Exception, path: Path) -> str:
    """The engine's message without its leading ``<path>: `` (the caller names the file)."""
    message = str(exc)
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _extension_for(fmt: str, original_suffix: str) -> str:
    """Keep the original extension when it matches the real format, else the format's own one."""
    registered = Image.registered_extensions()
    suffix = original_suffix.lower()
    if registered.get(suffix) == fmt:
        return suffix
    if fmt in _USUAL_EXTENSIONS:
        return _USUAL_EXTENSIONS[fmt]
    for ext, ext_fmt in registered.items():
        if ext_fmt == fmt:
            return ext
    return suffix or ".img"


def read_picture_file(path: str | Path) -> bytes:
    """The bytes of a picture file; a clear :class:`PictureError` when it cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise PictureError(path, "is a folder, not a picture")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PictureError(path, "the file does not exist") from None
    except OSError as exc:
        raise PictureError(path, f"the file cannot be read ({exc.strerror or exc})") from None


def content_name(data: bytes, extension: str) -> str:
    """The content-hashed file name a picture is stored under."""
    return hashlib.sha256(data).hexdigest()[:HASH_DIGITS] + extension


def store_picture(data: bytes, folder: Path, name: str) -> Path:
    """Write ``data`` as ``folder/name`` unless that file already exists (same content, same name).

    Written through a temporary file and a rename, so an interrupted copy never leaves a
    half-written picture under the final name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.is_file() and target.stat().st_size == len(data):
        return target
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def copy_tree_contents(source: Path, target: Path) -> None:
    """Copy the files of ``source`` into ``target`` (created), keeping files already there."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, dirs_exist_ok=True)
