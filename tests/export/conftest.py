"""A small storyboard of pictures drawn with PIL: mixed sizes (a panorama, a portrait, squares),
each panel its own colours, notes with accents and CJK, one panel without a picture."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from stylealigned_desktop.export.board import Board, make_panels
from stylealigned_desktop.session.notes import PanelNotes

SIZES = [(192, 64), (64, 128), (128, 128), (128, 64), (96, 64), (64, 64), (128, 96)]
COLOURS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40), (160, 40, 160),
           (40, 190, 190), (240, 130, 30)]


def draw_panel(path, size, colour):
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2),
                                    fill=tuple(255 - c for c in colour))
    image.save(path)
    return path


@pytest.fixture
def board(tmp_path) -> Board:
    pictures = [draw_panel(tmp_path / f"panel-{k + 1:02d}.png", size, colour)
                for k, (size, colour) in enumerate(zip(SIZES, COLOURS))]
    reference = draw_panel(tmp_path / "reference.png", (96, 64), (90, 90, 90))
    notes = [PanelNotes(action=f"Action {k + 1}: the fox runs", dialogue=f"Line {k + 1}, café?",
                        notes=f"note {k + 1}", camera="wide" if k % 2 else "close-up",
                        duration=[0.5, 0.8, None, 0.3, 0.6, None, 0.4][k],
                        scene=2 if k == 3 else None)
             for k in range(len(SIZES))]
    return Board(title="The Fox · Épisode 1", date="2026-12-05", references=(reference,),
                 panels=make_panels([f"prompt {k + 1}" for k in range(len(SIZES))], notes, SIZES,
                                    pictures, 0.7),
                 default_duration=0.7)
