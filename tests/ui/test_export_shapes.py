"""Contact sheets of panels of different sizes (spec section 12): the PNG and the PDF export lay
out every picture in its own shape, never stretched."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from PySide6.QtPdf import QPdfDocument

from stylealigned_desktop.ui.window.export import (
    SheetItem,
    export_contact_sheet_pdf,
    export_contact_sheet_png,
)

COLOURS = {"wide": (220, 30, 30), "tall": (30, 30, 220), "square": (30, 200, 30)}
SIZES = {"wide": (336, 192), "tall": (104, 152), "square": (128, 128)}  # 7:4, 13:19, 1:1


def _items(tmp_path):
    items = []
    for name, size in SIZES.items():
        path = tmp_path / f"{name}.png"
        Image.new("RGB", size, COLOURS[name]).save(path)
        items.append(SheetItem(name, f"a {name} panel", path, path.name))
    return items


def _box(image: QImage, colour) -> tuple[int, int]:
    """Width and height of the region painted (close to) ``colour``."""
    xs, ys = [], []
    for y in range(0, image.height()):
        for x in range(0, image.width()):
            pixel = image.pixelColor(x, y)
            if all(abs(a - b) < 40 for a, b in zip((pixel.red(), pixel.green(), pixel.blue()), colour)):
                xs.append(x)
                ys.append(y)
    return max(xs) - min(xs) + 1, max(ys) - min(ys) + 1


def _check_shapes(image: QImage) -> None:
    for name, (w, h) in SIZES.items():
        got_w, got_h = _box(image, COLOURS[name])
        assert abs(got_w / got_h - w / h) < 0.04 * w / h, (name, got_w, got_h)


def test_png_contact_sheet_keeps_each_shape(qtbot, tmp_path):
    path = export_contact_sheet_png(_items(tmp_path), tmp_path / "sheet.png", tile=160)
    _check_shapes(QImage(str(path)))


def test_pdf_contact_sheet_keeps_each_shape(qtbot, tmp_path):
    path = export_contact_sheet_pdf(_items(tmp_path), tmp_path / "sheet.pdf", "Mixed sizes")
    document = QPdfDocument()
    assert document.load(str(path)) == QPdfDocument.Error.None_
    page = document.render(0, QSize(900, 636))
    _check_shapes(page.convertToFormat(QImage.Format.Format_RGB32))
