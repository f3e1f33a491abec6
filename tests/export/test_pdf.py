"""The storyboard PDF read back with pypdf: pages per layout, each panel's action and dialogue
on its page in reading order, pictures placed at their own aspect ratio, text a font covers."""

from __future__ import annotations

import pytest
from pypdf import PdfReader

from stylealigned_desktop.export.fonts import FontSet, system_fonts
from stylealigned_desktop.export.pdf import PdfOptions, write_pdf

from .conftest import SIZES


def placed_pictures(page) -> list[tuple[float, float]]:
    """(width, height) of every picture drawn on the page (the ``cm`` before each ``Do``)."""
    from pypdf.generic import ContentStream

    sizes, matrix = [], None
    for operands, operator in ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"cm":
            matrix = [float(x) for x in operands]
        elif operator == b"Do":
            sizes.append((abs(matrix[0]), abs(matrix[3])))
    return sizes


@pytest.mark.parametrize("layout, landscape, pages", [(1, False, 7), (3, True, 3), (6, True, 2),
                                                       (6, False, 2)])
def test_pages_text_order_and_picture_shapes(board, tmp_path, layout, landscape, pages):
    path = tmp_path / "board.pdf"
    write_pdf(board, path, PdfOptions(layout=layout, page="Letter", landscape=landscape))
    reader = PdfReader(path)
    assert len(reader.pages) == 1 + pages  # the title page first
    width, height = float(reader.pages[1].mediabox.width), float(reader.pages[1].mediabox.height)
    assert (width > height) == landscape and round(min(width, height) / 72 * 25.4, 1) == 215.9
    title = reader.pages[0].extract_text()
    assert "The Fox · Épisode 1" in title and "2026-12-05" in title
    assert len(placed_pictures(reader.pages[0])) == 1  # the style reference
    for k, panel in enumerate(board.panels):
        page = reader.pages[1 + k // layout]
        text = page.extract_text()
        action, dialogue = text.find(panel.notes.action), text.find(panel.notes.dialogue)
        assert 0 <= action < dialogue, (k, text)
        if k % layout:  # after the previous panel's text on the same page
            assert board.panels[k - 1].notes.dialogue in text[:action]
        assert f"Scene {panel.number.scene} · Shot {panel.number.shot} · Panel {k + 1}" in text
    for p in range(pages):
        shapes = placed_pictures(reader.pages[1 + p])
        expected = SIZES[p * layout:(p + 1) * layout]
        assert len(shapes) == len(expected)
        for (w, h), (pw, ph) in zip(shapes, expected):
            assert w / h == pytest.approx(pw / ph, rel=0.01)
        assert f"{p + 2} / {pages + 1}" in reader.pages[1 + p].extract_text()


def test_accents_and_cjk_are_text_or_named_in_a_warning(board, tmp_path):
    from dataclasses import replace

    fonts = system_fonts()
    if fonts.text is None:
        pytest.skip("no TrueType text font on this computer")
    panels = list(board.panels)
    panels[0] = replace(panels[0], notes=replace(panels[0].notes, dialogue="Où est 狐狸?",
                                                 notes="a long note " * 80))  # cut with an ellipsis
    board = replace(board, panels=tuple(panels))
    without_cjk = tmp_path / "latin.pdf"
    warnings = write_pdf(board, without_cjk, PdfOptions(layout=3, fonts=FontSet(fonts.text, fonts.bold)))
    assert len(warnings) == 1 and "狐" in warnings[0] and "狸" in warnings[0]
    assert "Où est ??" in PdfReader(without_cjk).pages[1].extract_text()
    builtin = tmp_path / "builtin.pdf"  # no TrueType font at all: Latin-1 only
    warnings = write_pdf(board, builtin, PdfOptions(layout=3, fonts=FontSet(None)))
    assert len(warnings) == 1 and "狐" in warnings[0] and "ù" not in warnings[0]
    assert "Où est ??" in PdfReader(builtin).pages[1].extract_text()
    if fonts.cjk is None:
        pytest.skip("no CJK font on this computer (e.g. Debian's fonts-noto-cjk)")
    with_cjk = tmp_path / "cjk.pdf"
    assert write_pdf(board, with_cjk, PdfOptions(layout=3, fonts=fonts)) == []
    assert "Où est 狐狸?" in PdfReader(with_cjk).pages[1].extract_text()


def test_panels_without_pictures_and_no_title_page(board, tmp_path):
    from dataclasses import replace

    board = replace(board, panels=(replace(board.panels[0], picture=None), *board.panels[1:3]))
    path = tmp_path / "b.pdf"
    write_pdf(board, path, PdfOptions(layout=6, title_page=False))
    reader = PdfReader(path)
    assert len(reader.pages) == 1 and len(placed_pictures(reader.pages[0])) == 2
