"""The storyboard PDF: a title page, then the panels 1, 3 (notes beside) or 6 to a page, in
A4 or Letter, portrait or landscape, each with its scene / shot / panel numbers, camera and
duration, and its action, dialogue and notes; page numbers at the foot.

Written with fpdf2 (pure Python, no Qt, so ``stylealigned export --pdf`` works anywhere): it
embeds TrueType fonts as subsets with a Unicode map, so the text is real, selectable and
searchable, and it falls back glyph by glyph to a second font (the CJK one of ``fonts.py``).
Each picture keeps its own aspect ratio inside its frame (panoramas and portraits alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .board import Board, BoardPanel, ExportError
from .fonts import FontSet, system_fonts, uncovered

LAYOUTS = (1, 3, 6)
PAGES = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}
MARGIN = 12.0
GAP = 6.0
HEADER = 5.0  # the numbers line above a picture (mm)


@dataclass(frozen=True)
class PdfOptions:
    """``layout``: panels a page (1, 3 or 6); ``page``: A4 or Letter; ``landscape``;
    ``title_page``; ``fonts`` (None: this computer's, :func:`fonts.system_fonts`)."""

    layout: int = 3
    page: str = "A4"
    landscape: bool = True
    title_page: bool = True
    fonts: FontSet | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ExportError(f"a page holds 1, 3 or 6 panels, not {self.layout}")
        if self.page not in PAGES:
            raise ExportError(f"the page is {' or '.join(PAGES)}, not {self.page!r}")


@dataclass(frozen=True)
class Cell:
    """Where one panel goes on its page: the picture frame and the text box (mm)."""

    picture: tuple[float, float, float, float]
    text: tuple[float, float, float, float]
    centred: bool = True  # False: the picture keeps to the left, by its notes


def cells(layout: int, page_w: float, page_h: float) -> list[Cell]:
    """The panel cells of a page, in reading order."""
    top, bottom = MARGIN + 6.0, page_h - MARGIN - 6.0  # a running title above, page number below
    left, width, height = MARGIN, page_w - 2 * MARGIN, bottom - top
    if layout == 1:
        text_h = min(45.0, height * 0.3)
        return [Cell((left, top + HEADER, width, height - text_h - HEADER - GAP),
                     (left, top + height - text_h, width, text_h))]
    if layout == 3:  # rows: picture on the left, notes beside
        row_h = (height - 2 * GAP) / 3
        pic_w = width * 0.58
        return [Cell((left, top + k * (row_h + GAP) + HEADER, pic_w, row_h - HEADER),
                     (left + pic_w + GAP, top + k * (row_h + GAP), width - pic_w - GAP, row_h),
                     centred=False)
                for k in range(3)]
    columns, rows = (3, 2) if page_w > page_h else (2, 3)
    cell_w = (width - (columns - 1) * GAP) / columns
    cell_h = (height - (rows - 1) * GAP) / rows
    text_h = cell_h * 0.32
    out = []
    for r in range(rows):
        for c in range(columns):
            x, y = left + c * (cell_w + GAP), top + r * (cell_h + GAP)
            out.append(Cell((x, y + HEADER, cell_w, cell_h - text_h - HEADER - 1.5),
                            (x, y + cell_h - text_h, cell_w, text_h)))
    return out


def fit(size: tuple[int, int], box: tuple[float, float, float, float],
        centred: bool = True) -> tuple[float, float, float, float]:
    """A picture of ``size`` as large as fits in ``box`` at its own aspect ratio, centred (or
    at the box's left edge)."""
    x, y, w, h = box
    scale = min(w / size[0], h / size[1])
    pw, ph = size[0] * scale, size[1] * scale
    return x + ((w - pw) / 2 if centred else 0.0), y + (h - ph) / 2, pw, ph


def panel_heading(panel: BoardPanel) -> str:
    n = panel.number
    parts = [f"Scene {n.scene} · Shot {n.shot} · Panel {n.panel}"]
    if panel.notes.camera:
        parts.append(panel.notes.camera)
    parts.append(f"{panel.duration:g} s")
    return "   ".join(parts)


def write_pdf(board: Board, path: str | Path, options: PdfOptions = PdfOptions(),
              progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Write the storyboard PDF; returns warnings for the user (characters no font covers)."""
    from fpdf import FPDF

    fonts = options.fonts or system_fonts()
    page_w, page_h = PAGES[options.page]
    if options.landscape:
        page_w, page_h = page_h, page_w
    warnings: list[str] = []
    texts = [board.title, *(f"{p.notes.action} {p.notes.dialogue} {p.notes.notes} {p.notes.camera}"
                            for p in board.panels)]
    if fonts.cjk is not None and not any(uncovered(t, replace(fonts, cjk=None)) for t in texts):
        fonts = replace(fonts, cjk=None)  # not needed: a big CJK font takes seconds to read
    missing = set().union(*(uncovered(t, fonts) for t in texts))
    if missing:
        warnings.append(
            f"no font on this computer shows {''.join(sorted(missing))}: written as ? (install a font "
            "that covers them, e.g. Noto Sans CJK)")

    def clean(text: str) -> str:
        return "".join("?" if c in missing else c for c in text)

    title = clean(board.title)

    class Document(FPDF):
        def header(self) -> None:
            if self.page_no() > 1 or not options.title_page:
                self.set_font(family, "", 8)
                self.set_xy(MARGIN, MARGIN - 2)
                self.cell(page_w - 2 * MARGIN, 5, title, align="L")

        def footer(self) -> None:
            self.set_font(family, "", 8)
            self.set_xy(MARGIN, page_h - MARGIN - 3)
            self.cell(page_w - 2 * MARGIN, 5, f"{self.page_no()} / {{nb}}", align="C")

    pdf = Document(orientation="L" if options.landscape else "P", unit="mm", format=(
        min(page_w, page_h), max(page_w, page_h)))
    pdf.set_auto_page_break(False)
    pdf.set_creator("StyleAligned Desktop")
    pdf.set_title(title)
    family, bold = "Helvetica", "B"
    if fonts.text is not None:
        family = "Board"
        pdf.add_font(family, "", str(fonts.text))
        pdf.add_font(family, "B", str(fonts.bold or fonts.text))
        if fonts.cjk is not None:
            pdf.add_font("BoardCJK", "", str(fonts.cjk))
            pdf.set_fallback_fonts(["BoardCJK"], exact_match=False)

    if options.title_page:
        _title_page(pdf, board, family, title, page_w, page_h)
    layout = cells(options.layout, page_w, page_h)
    per_page = len(layout)
    for start in range(0, len(board.panels), per_page):
        pdf.add_page()
        for cell, panel in zip(layout, board.panels[start:start + per_page]):
            _panel(pdf, cell, panel, family, bold, clean)
        if progress is not None:
            progress(min(start + per_page, len(board.panels)), len(board.panels))
    if not board.panels:
        pdf.add_page()
    try:
        pdf.output(str(path))
    except OSError as error:
        raise ExportError(f"{path}: cannot be written ({error.strerror or error})") from None
    return warnings


def _title_page(pdf, board: Board, family: str, title: str, page_w: float, page_h: float) -> None:
    pdf.add_page()
    pdf.set_font(family, "B", 26)
    pdf.set_xy(MARGIN, page_h * 0.18)
    pdf.multi_cell(page_w - 2 * MARGIN, 12, title, align="C")
    pdf.set_font(family, "", 12)
    minutes, seconds = divmod(round(board.total_duration), 60)
    pdf.set_x(MARGIN)
    pdf.multi_cell(page_w - 2 * MARGIN, 7, f"{board.date}\n{len(board.panels)} panels · {minutes}:{seconds:02d}",
                   align="C")
    if board.references:
        pdf.set_font(family, "", 9)
        pdf.set_x(MARGIN)
        pdf.cell(page_w - 2 * MARGIN, 10, "Style reference", align="C")
        count = len(board.references)
        box_w = min(60.0, (page_w - 2 * MARGIN - (count - 1) * GAP) / count)
        x0 = (page_w - (count * box_w + (count - 1) * GAP)) / 2
        y = pdf.get_y() + 10
        for k, picture in enumerate(board.references):
            _image(pdf, picture, (x0 + k * (box_w + GAP), y, box_w, min(box_w, page_h - y - 25)))


def _image(pdf, picture: Path, box) -> None:
    from PIL import Image

    with Image.open(picture) as image:
        size = image.size
    x, y, w, h = fit(size, box)
    pdf.image(str(picture), x=x, y=y, w=w, h=h)


def _fitted_lines(pdf, width: float, text: str, max_lines: int) -> list[str]:
    """The lines of ``text`` wrapped to ``width``; the last of ``max_lines`` ends in an ellipsis
    when the text goes on (the built-in Helvetica has no "…")."""
    lines = pdf.multi_cell(width, 4, text, dry_run=True, output="LINES")
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip()[:-1] + ("..." if pdf.font_family == "helvetica" else "…")
    return lines


def _panel(pdf, cell: Cell, panel: BoardPanel, family: str, bold: str, clean) -> None:
    px, py, pw, ph = cell.picture
    pdf.set_font(family, bold, 8)
    pdf.set_xy(px, py - HEADER)
    pdf.cell(pw, HEADER - 0.5, clean(panel_heading(panel)))
    pdf.set_draw_color(80, 80, 80)
    x, y, w, h = fit(panel.size, cell.picture, cell.centred)
    if panel.picture is not None:
        pdf.image(str(panel.picture), x=x, y=y, w=w, h=h)
    pdf.rect(x, y, w, h)  # an empty frame for a panel not generated yet
    tx, ty, tw, th = cell.text
    line_h = 4.0
    budget = max(1, int(th // line_h))
    pdf.set_xy(tx, ty)
    for text, style in ((panel.notes.action, ""), (panel.notes.dialogue, bold), (panel.notes.notes, "")):
        if not text.strip() or budget <= 0:
            continue
        pdf.set_font(family, style, 8.5 if style else 8)
        lines = _fitted_lines(pdf, tw, clean(text), budget)
        for line in lines:
            pdf.set_x(tx)
            pdf.cell(tw, line_h, line, new_x="LMARGIN", new_y="NEXT")
        budget -= len(lines) + 1
        pdf.set_y(pdf.get_y() + 1.5)
