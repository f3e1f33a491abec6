"""The animatic: an MP4 of the panels, each held for its duration, written with PyAV.

Each panel is letterboxed (black bars) into the chosen frame size at its own aspect ratio.
Cuts fall on frame ``round(start_seconds * fps)``, so the film lasts ``round(total * fps)``
frames and no cut drifts. A cross-fade of F seconds blends the frames around each cut
(centred on it). Captions (the dialogue) and panel numbers are burned in only when asked; an
``.srt`` of the dialogue is written beside the film either way (editors add it as a track).
The video codec is H.264 (libx264) where this PyAV build has it, else MPEG-4 Part 2.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .board import Board, BoardPanel, Cancelled, ExportError, check_fps
from .fonts import FontSet, covered, system_fonts

CODECS = ("libx264", "h264", "mpeg4")


@dataclass(frozen=True)
class AnimaticOptions:
    """``size`` (width, height; even numbers), ``fps``, ``crossfade`` (seconds, 0: cuts),
    ``captions`` (burn in the dialogue), ``numbers`` (burn in scene-shot · panel), ``srt``
    (write the dialogue's subtitles beside the film)."""

    size: tuple[int, int] = (1280, 720)
    fps: float = 24.0
    crossfade: float = 0.0
    captions: bool = False
    numbers: bool = False
    srt: bool = True
    fonts: FontSet | None = None

    def __post_init__(self) -> None:
        w, h = self.size
        if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
            raise ExportError(f"the frame size must be even numbers from 16x16 to 7680x4320, got {w}x{h}")
        check_fps(self.fps)
        if not 0 <= self.crossfade <= 5:
            raise ExportError(f"a cross-fade lasts 0 to 5 seconds, got {self.crossfade}")


def cut_frames(board: Board, fps: float) -> list[int]:
    """The first frame of each panel, then the frame count of the film."""
    fps = check_fps(fps)
    cuts, start = [0], 0.0
    for panel in board.panels:
        start += panel.duration
        cuts.append(round(start * fps))
    return cuts


def letterboxed(panel: BoardPanel, size: tuple[int, int]) -> Image.Image:
    """The panel's picture (black when there is none) fitted into ``size`` with black bars."""
    if panel.picture is None:
        return Image.new("RGB", size)
    with Image.open(panel.picture) as image:
        return ImageOps.pad(image.convert("RGB"), size, method=Image.Resampling.LANCZOS, color=(0, 0, 0))


def _font(text: str, fonts: FontSet, pixels: int):
    """A font that shows ``text`` (the CJK fallback when the text font lacks a character)."""
    path = fonts.text
    if path is not None and fonts.cjk is not None and any(
            ord(c) not in covered(path) for c in text if not c.isspace()):
        path = fonts.cjk
    if path is None:
        return ImageFont.load_default(pixels)
    return ImageFont.truetype(str(path), pixels)


def burn_in(frame: Image.Image, panel: BoardPanel, options: AnimaticOptions, fonts: FontSet) -> Image.Image:
    """The frame with its panel number (top left) and dialogue (bottom, centred) drawn on."""
    frame = frame.copy()
    draw = ImageDraw.Draw(frame)
    w, h = frame.size
    pixels = max(10, h // 18)
    if options.numbers:
        label = f"{panel.number.scene}-{panel.number.shot} · {panel.number.panel}"
        font = _font(label, fonts, pixels)
        draw.text((pixels // 2, pixels // 2), label, font=font, fill=(255, 255, 255),
                  stroke_width=max(1, pixels // 12), stroke_fill=(0, 0, 0))
    if options.captions and panel.notes.dialogue.strip():
        text = panel.notes.dialogue.strip()
        font = _font(text, fonts, pixels)
        box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
        x = (w - (box[2] - box[0])) // 2
        y = h - (box[3] - box[1]) - pixels
        draw.multiline_text((x, y), text, font=font, fill=(255, 255, 255), align="center",
                            stroke_width=max(1, pixels // 12), stroke_fill=(0, 0, 0))
    return frame


def timestamp(seconds: float, separator: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SubRip's; ``separator`` "." for the shot list)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def srt_text(board: Board, fps: float) -> str:
    """SubRip subtitles of the dialogue, timed to the animatic's cuts."""
    cuts = cut_frames(board, fps)
    entries = []
    for k, panel in enumerate(board.panels):
        if panel.notes.dialogue.strip():
            entries.append(f"{len(entries) + 1}\n{timestamp(cuts[k] / fps)} --> "
                           f"{timestamp(cuts[k + 1] / fps)}\n{panel.notes.dialogue.strip()}\n")
    return "\n".join(entries)


def _encoder(container, fps: float, size: tuple[int, int]):
    from fractions import Fraction

    import av

    rate = Fraction(fps).limit_denominator(1001)
    for name in CODECS:
        try:
            stream = container.add_stream(name, rate=rate)
        except (av.FFmpegError, ValueError):
            continue
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if name == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 8_000_000
        return stream
    raise ExportError("this PyAV build encodes no H.264 or MPEG-4 video")


def write_animatic(board: Board, path: str | Path, options: AnimaticOptions = AnimaticOptions(),
                   progress: Callable[[int, int], None] | None = None, cancel=None) -> list[Path]:
    """Write the animatic (and its .srt); returns the files written. ``progress(frame, total)``
    is called as frames are encoded; ``cancel`` (a threading.Event) stops it, removing the
    partial film, and :class:`Cancelled` is raised."""
    import av

    path = Path(path)
    if not board.panels:
        raise ExportError("the storyboard has no panels")
    fonts = options.fonts or system_fonts()
    cuts = cut_frames(board, options.fps)
    total = cuts[-1]
    fade = round(options.crossfade * options.fps)

    @functools.lru_cache(maxsize=3)  # a panel and its neighbours: a long board never fills memory
    def still(k: int) -> np.ndarray:
        panel = board.panels[k]
        frame = letterboxed(panel, options.size)
        if options.captions or options.numbers:
            frame = burn_in(frame, panel, options, fonts)
        return np.asarray(frame)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = _encoder(container, options.fps, options.size)
            for frame_index in range(total):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                pixels = _frame(still, cuts, frame_index, fade)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                if progress is not None and (frame_index % 12 == 0 or frame_index == total - 1):
                    progress(frame_index + 1, total)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ExportError(f"{path}: cannot be written ({error.strerror or error})") from None
        raise
    written = [path]
    if options.srt:
        srt = path.with_suffix(".srt")
        srt.write_text(srt_text(board, options.fps), encoding="utf-8")
        written.append(srt)
    return written


def _frame(still: Callable[[int], np.ndarray], cuts: list[int], index: int, fade: int) -> np.ndarray:
    """Frame ``index``: its panel's still (``still(k)``), blended with the next or previous one
    within ``fade`` frames centred on a cut."""
    count = len(cuts) - 1
    k = min(bisect.bisect_right(cuts, index) - 1, count - 1)
    if fade <= 1:
        return still(k)
    half = fade / 2
    for cut_at, before, after in ((cuts[k], k - 1, k), (cuts[k + 1], k, k + 1)):
        if before >= 0 and after < count and cut_at - half <= index < cut_at + half:
            alpha = (index - (cut_at - half) + 0.5) / fade
            blend = still(before) * (1 - alpha) + still(after) * alpha
            return blend.round().astype(np.uint8)
    return still(k)
