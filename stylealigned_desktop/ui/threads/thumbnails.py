"""Thumbnails decoded off the UI thread (a :class:`~.background.BackgroundPool`), cached by
file, size and mtime. The window shares that pool with the gallery and the storyboard, which
check dropped pictures in it.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from .background import BackgroundPool

log = logging.getLogger(__name__)


def read_thumbnail(path: str | Path, size: int) -> QImage:
    """The picture at ``path`` scaled to fit ``size``×``size`` (EXIF orientation applied).

    Qt decodes most files directly (JPEG at reduced size, which is fast); anything it cannot
    read goes through PIL (16-bit TIFF, odd modes). Returns a null QImage when unreadable.
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    original = reader.size()
    if original.isValid() and (original.width() > size or original.height() > size):
        reader.setScaledSize(original.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        try:
            from PIL import Image, ImageOps

            from ..support import pil_to_qimage

            with Image.open(path) as picture:
                picture = ImageOps.exif_transpose(picture)
                picture.thumbnail((size, size))
                if picture.mode not in ("RGB", "RGBA"):
                    picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
                image = pil_to_qimage(picture)
        except Exception as exc:
            log.info("no thumbnail for %s: %s", path, exc)
            return QImage()
    if image.width() > size or image.height() > size:
        image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


class ThumbnailLoader(QObject):
    """``request(path, size)`` returns a cached thumbnail or None and emits ``ready`` later."""

    ready = Signal(str, int, QImage)
    """path, size, image (null when the file could not be read)."""

    def __init__(self, parent=None, capacity: int = 400,
                 pool: BackgroundPool | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[tuple, QImage] = OrderedDict()
        self._waiting: set[tuple] = set()
        self._capacity = capacity
        self.pool = pool or BackgroundPool(self)
        """The thread pool thumbnails decode in (also for other file work of the window)."""

    @staticmethod
    def _key(path: str, size: int) -> tuple:
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = 0
        return (path, size, stamp)

    def request(self, path: str | Path, size: int) -> QImage | None:
        path = str(path)
        key = self._key(path, size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if key not in self._waiting:
            self._waiting.add(key)
            self.pool.submit(read_thumbnail, path, size,
                             on_done=lambda image, error, key=key: self._store(
                                 key, image if error is None else QImage()))
        return None

    def load_now(self, path: str | Path, size: int) -> QImage:
        """Decode on the calling thread (small files, or when the picture is needed right away)."""
        path = str(path)
        key = self._key(path, size)
        if key not in self._cache:
            self._put(key, read_thumbnail(path, size))
        return self._cache[key]

    def wait(self, msecs: int = 5000) -> bool:
        """Wait for the pending decodes and deliver them (tests, shutdown)."""
        return self.pool.wait(msecs, until=lambda: not self._waiting)

    def shutdown(self) -> None:
        self.pool.shutdown()

    def _put(self, key: tuple, image: QImage) -> None:
        self._cache[key] = image
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def _store(self, key: tuple, image: QImage) -> None:
        self._waiting.discard(key)
        self._put(key, image)
        self.ready.emit(key[0], key[1], image)
