"""Exports of the shown set: a contact sheet (PNG, or PDF through Qt's PDF writer) and the
pictures themselves, copied byte for byte so each PNG keeps its ``parameters`` text chunk."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMarginsF, QRect, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
)

from ...engine.runfolder import contact_sheet


@dataclass(frozen=True)
class SheetItem:
    """One picture of an export: ``name`` is its file name in an export folder."""

    label: str
    caption: str
    path: Path
    name: str


def export_contact_sheet_png(items: list[SheetItem], path: str | Path, tile: int = 384) -> Path:
    """A labelled grid of the pictures as one PNG."""
    if not items:
        raise ValueError("there are no pictures to put on a contact sheet")
    tiles = []
    for item in items:
        with Image.open(item.path) as image:
            label = f"{item.label}: {item.caption}" if item.caption else item.label
            tiles.append((label, image.copy()))
    sheet = contact_sheet(tiles, tile_size=tile)
    path = Path(path)
    sheet.save(path, format="PNG")
    return path


def export_contact_sheet_pdf(items: list[SheetItem], path: str | Path, title: str,
                             subtitle: str = "") -> Path:
    """The pictures on landscape A4 pages: a title, then a grid with a label under each."""
    if not items:
        raise ValueError("there are no pictures to put on a contact sheet")
    path = Path(path)
    writer = QPdfWriter(str(path))
    writer.setResolution(200)
    writer.setTitle(title)
    writer.setCreator("StyleAligned Desktop")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Landscape,
                                     QMarginsF(12, 12, 12, 12), QPageLayout.Unit.Millimeter))
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot write {path}")
    try:
        area = writer.pageLayout().paintRectPixels(writer.resolution())
        page = QRect(0, 0, area.width(), area.height())
        title_font = QFont()
        title_font.setPixelSize(max(16, page.height() // 28))
        title_font.setBold(True)
        text_font = QFont()
        text_font.setPixelSize(max(10, page.height() // 60))
        columns = min(4, len(items))
        rows_per_page = 2 if len(items) > columns else 1
        per_page = columns * rows_per_page
        pages = [items[i:i + per_page] for i in range(0, len(items), per_page)]
        for number, chunk in enumerate(pages):
            if number:
                writer.newPage()
            top = _draw_page_frame(painter, page, (title_font, text_font), (title, subtitle),
                                   f"{number + 1} / {len(pages)}")
            _draw_picture_grid(painter, chunk, page, top, (columns, rows_per_page), text_font)
    finally:
        painter.end()
    return path


def _draw_page_frame(painter: QPainter, page: QRect, fonts: tuple[QFont, QFont],
                     titles: tuple[str, str], footer: str) -> int:
    """A page's title (and subtitle) at the top and its number at the bottom right; returns
    where the pictures start."""
    title_font, text_font = fonts
    title, subtitle = titles
    painter.setFont(title_font)
    painter.setPen(QColor("#202020"))
    title_height = QFontMetrics(title_font).height()
    painter.drawText(QRect(0, 0, page.width(), title_height),
                     Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
    top = title_height + 4
    if subtitle:
        painter.setFont(text_font)
        sub_height = QFontMetrics(text_font).height()
        painter.drawText(QRect(0, top, page.width(), sub_height),
                         Qt.AlignmentFlag.AlignLeft, subtitle)
        top += sub_height + 4
    painter.setFont(text_font)
    metrics = QFontMetrics(text_font)
    painter.drawText(QRect(0, page.height() - metrics.height(), page.width(),
                           metrics.height()), Qt.AlignmentFlag.AlignRight, footer)
    return top


def _draw_picture_grid(painter: QPainter, chunk: list[SheetItem], page: QRect, top: int,
                       shape: tuple[int, int], text_font: QFont) -> None:
    """A page's pictures in ``shape`` (columns, rows) cells between ``top`` and the footer."""
    columns, rows = shape
    metrics = QFontMetrics(text_font)
    grid_height = page.height() - top - metrics.height() - 8
    gap = page.width() // 80
    cell_w = (page.width() - gap * (columns - 1)) // columns
    cell_h = (grid_height - gap * (rows - 1)) // rows
    label_h = metrics.height() * 2 + 4
    for k, item in enumerate(chunk):
        x = (k % columns) * (cell_w + gap)
        y = top + (k // columns) * (cell_h + gap)
        _draw_cell(painter, item, QRect(x, y, cell_w, cell_h), label_h, text_font)


def _draw_cell(painter: QPainter, item: SheetItem, cell: QRect, label_h: int,
               text_font: QFont) -> None:
    """One picture fitted into its cell (a frame if it cannot be read), its label in bold and
    its caption cut to the cell's width under it."""
    metrics = QFontMetrics(text_font)
    x, cell_w = cell.x(), cell.width()
    image = QImage(str(item.path))
    box = QRectF(x, cell.y(), cell_w, cell.height() - label_h)
    if not image.isNull():
        size = QSizeF(image.size()).scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF(box.x() + (box.width() - size.width()) / 2, box.y(),
                        size.width(), size.height())
        painter.drawImage(target, image)
        text_top = int(target.bottom()) + 4
    else:
        painter.drawRect(box)
        text_top = int(box.bottom()) + 4
    painter.setFont(text_font)
    bold = QFont(text_font)
    bold.setBold(True)
    painter.setFont(bold)
    painter.drawText(QRect(x, text_top, cell_w, metrics.height()),
                     Qt.AlignmentFlag.AlignLeft, item.label)
    painter.setFont(text_font)
    caption = metrics.elidedText(item.caption, Qt.TextElideMode.ElideRight, cell_w)
    painter.drawText(QRect(x, text_top + metrics.height(), cell_w, metrics.height()),
                     Qt.AlignmentFlag.AlignLeft, caption)


def export_pictures(items: list[SheetItem], folder: str | Path) -> list[Path]:
    """Copy the pictures into ``folder`` (created if needed) under their ``name``.

    The copies are the run's own PNG files, so their ``parameters`` chunk (prompt, seed,
    settings) comes along unchanged.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in items:
        target = folder / item.name
        shutil.copyfile(item.path, target)
        written.append(target)
    return written


def default_title(session_title: str) -> str:
    return f"{session_title} · {datetime.now().strftime('%Y-%m-%d %H:%M')}"
