"""Checking dropped pictures and copying them into a session folder under content-hashed names.

A copy is named ``<first 16 hex digits of its SHA-256><ext>``: the same picture dropped twice
is stored once, and the session keeps working when the original file moves or is deleted.

Checking a picture means decoding it fully, which takes a while for big photos. So adding one
is two steps: :func:`prepare_picture` (read, check, hash: slow, any thread, touches no session)
and ``Session.add_prepared`` / ``Session.set_panel_control_prepared`` (cheap, the session's
thread). A GUI runs the first step in a background thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .. import userfiles
from ..engine import images
from ..temporaries import with_default_mode
from .errors import PictureError

HASH_DIGITS = 16
MAX_PICTURE_FILE_BYTES = 1024 * userfiles.MIB
"""Above the largest picture the engine accepts (100 MP of 16-bit RGBA, uncompressed)."""
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


def display_name(path: str | Path) -> str:
    """A file's name to show and store in session.json: bytes that are not UTF-8 (surrogate
    escapes from the OS) become U+FFFD, so the session can always be saved."""
    name = Path(path).name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def picture_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named in ``paths``, each folder replaced by the picture files found in it
    (recursively, by extension, skipping hidden files and folders)."""
    extensions = picture_extensions()
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(
                f for f in sorted(item.rglob("*"))
                if f.is_file() and f.suffix.lower() in extensions
                and not any(part.startswith(".") for part in f.relative_to(item).parts)
            )
        else:
            found.append(item)
    return found


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
    try:
        return userfiles.read_bytes(path, MAX_PICTURE_FILE_BYTES)
    except userfiles.UnreadableFile as exc:
        if exc.missing:
            raise PictureError(path, "the file does not exist") from None
        raise PictureError(path, f"the file cannot be read: {exc}") from None


def content_name(data: bytes, extension: str) -> str:
    """The content-hashed file name a picture is stored under."""
    return hashlib.sha256(data).hexdigest()[:HASH_DIGITS] + extension


@dataclass(frozen=True)
class PreparedPicture:
    """A picture read, checked and hashed, ready to be added to a session cheaply.

    Made by :func:`prepare_picture` / :func:`prepare_picture_data`; it holds the file's bytes,
    so adding it only writes them under ``stored_name`` (nothing is decoded again).
    """

    name: str
    """The file name shown to the user (the original's, without folders)."""
    data: bytes = field(repr=False)
    info: PictureInfo
    stored_name: str
    """``content_name(data, info.extension)``: the copy's name inside the session folder."""
    source: Path | None = None
    """The file it was read from (None for pasted bytes)."""

    @property
    def content_id(self) -> str:
        """The content hash (``stored_name`` without its extension): a gallery picture's id."""
        return Path(self.stored_name).stem


def prepare_picture(path: str | Path) -> PreparedPicture:
    """Read, check (fully decoded by :mod:`engine.images`, as a run will) and hash a picture.

    Slow for big pictures and safe in any thread: it touches no session. Raises
    :class:`PictureError` naming the file when it is no picture the app can use.
    """
    path = Path(path)
    data = read_picture_file(path)
    info = inspect_picture_file(path)
    return PreparedPicture(display_name(path), data, info, content_name(data, info.extension), path)


def prepare_picture_data(data: bytes, name: str | Path = "pasted.png") -> PreparedPicture:
    """Like :func:`prepare_picture` for picture bytes (the clipboard, a dragged image)."""
    info = inspect_picture(data, name)
    return PreparedPicture(display_name(name), data, info, content_name(data, info.extension))


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
    with_default_mode(fd)
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
