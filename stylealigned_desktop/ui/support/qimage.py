"""Conversions between PIL images and QImages (safe in any thread: no QPixmap here)."""

from __future__ import annotations

import io

from PIL import Image
from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QImage


def pil_to_qimage(image: Image.Image) -> QImage:
    """A deep copy of ``image`` as a QImage (RGB888 or RGBA8888)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    fmt = QImage.Format.Format_RGBA8888 if image.mode == "RGBA" else QImage.Format.Format_RGB888
    channels = 4 if image.mode == "RGBA" else 3
    data = image.tobytes()
    qimage = QImage(data, image.width, image.height, image.width * channels, fmt)
    return qimage.copy()  # detach from ``data``, which Python may free


def qimage_to_pil(qimage: QImage) -> Image.Image:
    """A PIL copy of ``qimage`` (RGBA when it has alpha, else RGB)."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.ReadWrite)
    qimage.save(buffer, "PNG")
    picture = Image.open(io.BytesIO(bytes(buffer.data())))
    picture.load()
    return picture.convert("RGBA" if qimage.hasAlphaChannel() else "RGB")
