"""The animatic decoded with PyAV: its length is the sum of the durations (at most one frame
off per cut), the middle frame of each panel is that panel letterboxed, captions and numbers
show only when asked, the .srt times the dialogue, cross-fades blend at the cuts, cancel
leaves nothing."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop.export.animatic import AnimaticOptions, write_animatic
from stylealigned_desktop.export.board import Cancelled

SIZE, FPS = (160, 90), 12.0  # panels of 9.6, 8.4... frames: cuts are rounded


def frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def expected(panel) -> np.ndarray:
    """The panel's picture padded with black to the frame size (computed here with PIL's own
    fit, not the module's)."""
    with Image.open(panel.picture) as image:
        scale = min(SIZE[0] / image.width, SIZE[1] / image.height)
        w, h = round(image.width * scale), round(image.height * scale)
        canvas = Image.new("RGB", SIZE)
        canvas.paste(image.convert("RGB").resize((w, h), Image.Resampling.LANCZOS),
                     ((SIZE[0] - w) // 2, (SIZE[1] - h) // 2))
    return np.asarray(canvas, dtype=np.int16)


def middles(board) -> list[int]:
    starts = np.cumsum([0.0, *(p.duration for p in board.panels)])
    return [int((a + b) / 2 * FPS) for a, b in zip(starts[:-1], starts[1:])]


def test_length_and_each_panel_in_its_middle_frame(board, tmp_path):
    seen = []
    written = write_animatic(board, tmp_path / "a.mp4", AnimaticOptions(size=SIZE, fps=FPS),
                             progress=lambda done, total: seen.append((done, total)))
    assert [p.name for p in written] == ["a.mp4", "a.srt"]
    decoded = frames(tmp_path / "a.mp4")
    total = sum(p.duration for p in board.panels) * FPS
    assert abs(len(decoded) - total) <= len(board.panels) and decoded[0].shape == (90, 160, 3)
    assert abs(len(decoded) - total) <= 1  # rounded cuts do not drift
    assert seen[-1] == (len(decoded), len(decoded))
    pictures = [expected(p) for p in board.panels]
    for k, middle in enumerate(middles(board)):
        errors = [np.abs(decoded[middle] - picture).mean() for picture in pictures]
        assert errors[k] < 6, (k, errors)
        assert errors[k] == min(errors)
    # the panorama is letterboxed: black bars above and below
    assert decoded[middles(board)[0]][:10].max() < 30


def test_captions_and_numbers_only_when_asked(board, tmp_path):
    plain = frames(write_animatic(board, tmp_path / "p.mp4", AnimaticOptions(size=SIZE, fps=FPS))[0])
    captioned = frames(write_animatic(board, tmp_path / "c.mp4", AnimaticOptions(
        size=SIZE, fps=FPS, captions=True, srt=False))[0])
    numbered = frames(write_animatic(board, tmp_path / "n.mp4", AnimaticOptions(
        size=SIZE, fps=FPS, numbers=True, srt=False))[0])
    assert not (tmp_path / "c.srt").exists()
    middle = middles(board)[1]  # the portrait: black bars left and right, where text shows
    bottom, top = slice(60, 90), slice(0, 20)
    picture = expected(board.panels[1])
    assert np.abs(plain[middle] - picture).mean() < 6
    assert np.abs(captioned[middle][bottom] - plain[middle][bottom]).max() > 100  # the caption
    assert np.abs(captioned[middle][top] - plain[middle][top]).mean() < 3  # no number
    assert np.abs(numbered[middle][top] - plain[middle][top]).max() > 100  # the number
    assert np.abs(numbered[middle][bottom] - plain[middle][bottom]).mean() < 3  # no caption
    srt = (tmp_path / "p.srt").read_text("utf-8")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,500\nLine 1, café?\n")
    # panel 2 ends at 1.3 s, frame round(15.6) = 16 at 12 fps: 1.333 s
    assert "2\n00:00:00,500 --> 00:00:01,333\nLine 2, café?\n" in srt


def test_crossfade_blends_at_the_cut_and_keeps_the_middles(board, tmp_path):
    faded = frames(write_animatic(board, tmp_path / "f.mp4", AnimaticOptions(
        size=SIZE, fps=FPS, crossfade=0.2, srt=False))[0])
    first, second = expected(board.panels[0]), expected(board.panels[1])
    cut = 6  # panel 1 lasts 0.5 s at 12 fps; the fade is round(0.2 * 12) = 2 frames
    blend = (first + second) / 2
    # the two frames around the cut are a quarter and three quarters of the way
    assert np.abs(faded[cut - 1] - (0.75 * first + 0.25 * second)).mean() < 6
    assert np.abs(faded[cut] - (0.25 * first + 0.75 * second)).mean() < 6
    assert np.abs(faded[cut] - blend).mean() > 10
    assert np.abs(faded[middles(board)[2]] - expected(board.panels[2])).mean() < 6


def test_cancel_leaves_no_file(board, tmp_path):
    cancel = threading.Event()

    def progress(done, total):
        if done > 1:
            cancel.set()

    with pytest.raises(Cancelled):
        write_animatic(board, tmp_path / "x.mp4", AnimaticOptions(size=SIZE, fps=FPS), progress, cancel)
    assert list(tmp_path.glob("*.mp4")) == [] and list(tmp_path.glob(".*")) == []
