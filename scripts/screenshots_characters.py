"""Screenshots of characters for docs/user-guide.md (spec section 13): the Characters dock, the
chips and the [Name] completion on the storyboard cards, the anchors in the grid and the
subject masks over the panels, in the real window at 1280x800 with the tiny model.

    python scripts/screenshots_characters.py [--out docs/images] [--masks]

``--masks`` also toggles View → Show subject masks after the run (the masks come from the
engine: without its characters, there are none to show).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--masks", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stylealigned-character-shots-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["HF_HUB_OFFLINE"] = "1"
    for name in ("CONFIG", "DATA", "CACHE"):
        os.environ[f"STYLEALIGNED_{name}_DIR"] = str(work / name.lower())

    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from stylealigned_desktop.session.model import Session
    from stylealigned_desktop.ui.support import DesktopConfig, apply_theme
    from stylealigned_desktop.ui.window import MainWindow

    app = QApplication([sys.argv[0]])
    apply_theme(app)

    def settle(ms: int = 300) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    window = MainWindow(DesktopConfig(model="tiny"))
    window.resize(1280, 800)
    window.show()
    session = Session()
    window.sessions.set_session(session)
    session.set_style_text("watercolor picture book, soft paper texture")
    session.set_reference_prompt("a harbour town")
    for prompt in ("[Mira] runs along the pier in the rain", "[Mira] and [Tom] mend a net",
                   "[Tom] waves from his boat", "[Mria] looks out to sea"):
        session.add_panel(prompt)
    session.update_settings(steps=4, width=128, height=128)  # tiny's own size: above twice it, panoramas keep no masks
    session.add_character("Mira", "a red-haired girl in a yellow raincoat")
    session.add_character("Tom", "an old fisherman with a grey beard")
    session.update_character("Tom", words=("fisherman", "beard"))
    window.characters_dock.raise_()
    window.characters.list.setCurrentRow(0)
    settle(500)
    card = window.storyboard.card_at(3)
    card.prompt.setFocus()
    card.prompt.moveCursor(card.prompt.textCursor().MoveOperation.End)
    QTest.keyClicks(card.prompt, " with [T")
    settle(500)
    window.grab().save(str(out / "characters.png"))
    print(f"wrote {out / 'characters.png'}")
    QTest.keyClick(card.prompt.completer.popup(), Qt.Key.Key_Escape)
    card.prompt.setPlainText("[Mira] looks out to sea with [Tom]")
    window.runs.generate()
    deadline = time.monotonic() + 600
    while window.runs.running_plan() is not None or not session.history:
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not finish")
        settle(200)
    settle(800)
    if args.masks:
        window.masks_action.trigger()
        window.grid.ensureWidgetVisible(window.grid.tiles[3])  # the panels, below the anchors
        settle(300)
    name = "characters-masks.png" if args.masks else "characters-grid.png"
    window.grab().save(str(out / name))
    print(f"wrote {out / name}")
    window.ask = lambda *a, **k: "Don't save"
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
