"""Fonts for the deliverables' text, found on this computer (never downloaded).

A text font that covers Latin with accents, Greek and Cyrillic (DejaVu Sans or Noto Sans on
Linux, Arial / Arial Unicode on macOS, Segoe UI / Arial on Windows) and a fallback for Chinese,
Japanese and Korean (Noto Sans CJK, WenQuanYi, Droid Sans Fallback, PingFang / Hiragino,
Microsoft YaHei / Malgun / MS Gothic). What no font found covers is shown as ``?`` and named
in the export's warnings (the user installs a font, e.g. Debian's fonts-noto-cjk).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_DIRS = {
    "linux": ["/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts"],
    "darwin": ["/System/Library/Fonts", "/Library/Fonts", "~/Library/Fonts",
               "/System/Library/Fonts/Supplemental"],
    "win32": [os.path.join(os.environ.get("WINDIR", "C:\\Windows"), "Fonts"),
              "~/AppData/Local/Microsoft/Windows/Fonts"],
}
TEXT_FONTS = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "Arial Unicode.ttf", "segoeui.ttf",
              "Arial.ttf", "arial.ttf", "LiberationSans-Regular.ttf")
BOLD_FONTS = {"DejaVuSans.ttf": "DejaVuSans-Bold.ttf", "NotoSans-Regular.ttf": "NotoSans-Bold.ttf",
              "segoeui.ttf": "segoeuib.ttf", "Arial.ttf": "Arial Bold.ttf", "arial.ttf": "arialbd.ttf",
              "LiberationSans-Regular.ttf": "LiberationSans-Bold.ttf"}
CJK_FONTS = ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansCJK-Regular.otf",
             "wqy-microhei.ttc", "wqy-zenhei.ttc", "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf",
             "PingFang.ttc", "Hiragino Sans GB.ttc", "msyh.ttc", "malgun.ttf", "msgothic.ttc",
             "Arial Unicode.ttf")


@dataclass(frozen=True)
class FontSet:
    """The font files the deliverables use: ``text`` (None: the PDF's built-in Helvetica,
    Latin-1 only), ``bold`` (None: ``text``), ``cjk`` (None: no fallback)."""

    text: Path | None
    bold: Path | None = None
    cjk: Path | None = None


def _font_files() -> dict[str, Path]:
    """Font files by name in this system's font folders (the first found of each name)."""
    platform = "linux" if sys.platform.startswith(("linux", "freebsd")) else sys.platform
    found: dict[str, Path] = {}
    for folder in _DIRS.get(platform, _DIRS["linux"]):
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.lower().endswith((".ttf", ".ttc", ".otf")):
                    found.setdefault(name, Path(dirpath) / name)
    return found


@cache
def system_fonts() -> FontSet:
    """The best fonts this computer has (searched once per process)."""
    files = _font_files()
    text = next((name for name in TEXT_FONTS if name in files), None)
    bold = BOLD_FONTS.get(text or "")
    cjk = next((files[name] for name in CJK_FONTS if name in files), None)
    return FontSet(text=files[text] if text else None,
                   bold=files.get(bold or ""), cjk=cjk)


@cache
def covered(path: Path) -> frozenset[int]:
    """The code points a font file has glyphs for."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.suffix.lower() == ".ttc":
        font = TTCollection(str(path), lazy=True).fonts[0]
    else:
        font = TTFont(str(path), lazy=True)
    return frozenset(font.getBestCmap() or {})


def uncovered(text: str, fonts: FontSet) -> set[str]:
    """The characters of ``text`` none of ``fonts`` can show (spaces and line breaks aside)."""
    chars = {c for c in text if not c.isspace()}
    if fonts.text is None:
        return {c for c in chars if ord(c) > 0xFF}
    cover = covered(fonts.text) | (covered(fonts.cjk) if fonts.cjk else frozenset())
    return {c for c in chars if ord(c) not in cover}
