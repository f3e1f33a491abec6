"""Pictures the artist brings in (dropped, pasted or chosen): the file dialog's filter, the
local files among dropped URLs, pasted picture data as PNG bytes, and the line that says why a
file could not be taken. Shared by the reference gallery, the storyboard's control pictures and
the LoRA list."""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QIODevice, QUrl
from PySide6.QtGui import QImage

from ...session.errors import PictureError

PICTURE_FILTER = "Pictures (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"


def local_paths(urls: list[QUrl]) -> tuple[list[str], list[str]]:
    """(local file paths, everything else as text) from dropped or pasted URLs."""
    local, other = [], []
    for url in urls:
        if url.isLocalFile():
            local.append(url.toLocalFile())
        else:
            other.append(url.toString())
    return local, other


def png_bytes(image: QImage) -> bytes:
    """Picture data (pasted, or dropped from another application) as the bytes of a PNG file."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def import_error(name: str, error: BaseException) -> str:
    """The line for a file that could not be added (PictureError already names the file)."""
    if isinstance(error, PictureError):
        return str(error)
    if isinstance(error, OSError):
        return f"{name}: it could not be copied into the session ({error.strerror or error})"
    return f"{name}: {error}"
