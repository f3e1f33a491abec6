"""Render the app icon (one SVG) into what each platform wants, under build/icons/:

- hicolor/<N>x<N>/apps/<APP_ID>.png and hicolor/scalable/apps/<APP_ID>.svg (Linux desktops),
- <APP_ID>.ico (Windows) and <APP_ID>.icns (macOS) from the same renders (Pillow).

Usage: python packaging/make_icons.py [OUT_DIR]   (default build/icons)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bundle import APP_ID

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "stylealigned_desktop" / "resources" / "app" / f"{APP_ID}.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render_pngs(svg: Path, sizes, out: Path) -> dict[int, Path]:
    """Each size drawn by Qt's SVG renderer straight from the vector (no downscaling)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(["make_icons", "-platform", "offscreen"])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG for Qt")
    written = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(path)):
            raise SystemExit(f"could not write {path}")
        written[size] = path
    del app
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "icons"
    pngs = render_pngs(SVG, PNG_SIZES, out)
    scalable = out / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SVG, scalable)

    from PIL import Image

    largest = Image.open(pngs[max(PNG_SIZES)])
    largest.save(out / f"{APP_ID}.ico", sizes=[(s, s) for s in ICO_SIZES])
    largest.save(out / f"{APP_ID}.icns")
    print(f"icons: {len(pngs)} PNG sizes, SVG, .ico, .icns under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
