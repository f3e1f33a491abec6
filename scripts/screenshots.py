"""Save screenshots of the desktop window's main states into docs/images/.

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--theme dark|light|both]

It runs the real window offscreen on the built-in ``tiny`` model (random weights: the pictures
are noise, which the screenshots show honestly), with its own temporary config and data folders.
States: empty, a storyboard with references and panels, mid-generation with live previews,
finished, a run from the history (with consistency scores from a tiny random DINO model, as
meaningless as the pictures), the history's hint when the DINO model is missing, the model
dialog of the first start, a mixed-size storyboard blended from a mood board of several
weighted references (the grid and the gallery), the Edit menu's undo / redo, the full-size
viewer zoomed past 100 % and comparing one panel from two runs, the message of a session
that is open in another window, and the storyboard's deliverables: a card's notes, a page of
the storyboard PDF (rendered with poppler's ``pdftoppm``) and the animatic's first frame.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def mood_pictures(folder: Path) -> list[Path]:
    """A few drawn "reference pictures": flat-colour illustrations with a clear style."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    palettes = [((242, 226, 196), (214, 106, 64), (60, 74, 92)),
                ((28, 44, 70), (240, 200, 90), (120, 160, 200)),
                ((220, 232, 214), (90, 140, 90), (40, 60, 40))]
    for k, (ground, accent, ink) in enumerate(palettes):
        image = Image.new("RGB", (512, 384), ground)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 260, 512, 384), fill=tuple(int(c * 0.85) for c in ground))
        draw.ellipse((300 - 40 * k, 50, 420 - 40 * k, 170), fill=accent)
        for i in range(5):
            x = 40 + i * 90
            draw.polygon([(x, 260), (x + 40, 120 + 20 * ((i + k) % 3)), (x + 80, 260)], fill=ink)
        image = image.filter(ImageFilter.SMOOTH)
        path = folder / f"mood-{k + 1}.png"
        image.save(path)
        made.append(path)
    sketch = Image.new("RGB", (512, 512), "white")
    draw = ImageDraw.Draw(sketch)
    draw.ellipse((150, 80, 360, 290), outline="black", width=6)
    draw.line((255, 290, 255, 450), fill="black", width=6)
    draw.line((255, 340, 160, 400), fill="black", width=6)
    draw.line((255, 340, 360, 300), fill="black", width=6)
    path = folder / "pose-sketch.png"
    sketch.save(path)
    made.append(path)
    return made


def tiny_dino(folder: Path) -> Path:
    """A random-weight DINO ViT (transformers ``ViTModel``) so the history shows scores."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37, image_size=32, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--theme", default="both", choices=("dark", "light", "both"))
    parser.add_argument("--size", default="1500x940")
    parser.add_argument("--only-mixed", action="store_true",
                        help="only the mixed-size, blended storyboard (storyboard-mixed.png, mood-board.png)")
    parser.add_argument("--only-undo-viewer", action="store_true",
                        help="only the Edit menu, the viewer and the session-locked message "
                             "(edit-menu.png, viewer-zoom.png, viewer-compare.png, session-locked.png)")
    parser.add_argument("--only-settings", action="store_true",
                        help="only the model dialog and the Settings dock "
                             "(model-dialog.png, advanced-settings.png)")
    parser.add_argument("--only-deliver", action="store_true",
                        help="only the deliverables (panel-notes.png, storyboard-pdf-page.png, "
                             "animatic-first-frame.jpg)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="stylealigned-shots-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["STYLEALIGNED_CONFIG_DIR"] = str(work / "config")
    os.environ["STYLEALIGNED_DATA_DIR"] = str(work / "data")
    os.environ["STYLEALIGNED_CACHE_DIR"] = str(work / "cache")
    os.environ["HF_HUB_CACHE"] = str(work / "hub")  # DINO is "not downloaded" by default
    themes = ["dark", "light"] if args.theme == "both" else [args.theme]
    os.environ["STYLEALIGNED_THEME"] = themes[0]

    from PySide6.QtCore import QEventLoop, QTimer
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

    def wait_for(condition, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the window did not reach the expected state")
            settle(50)

    def save(widget, name: str) -> None:
        path = out / name
        widget.grab().save(str(path))
        print(f"wrote {path}")

    dino = tiny_dino(work / "tiny-dino")
    window = MainWindow(DesktopConfig(model="tiny", dino_model=str(dino)))
    window.resize(width, height)
    window.show()
    window.sessions.set_session(Session())
    settle(500)
    if args.only_mixed or args.only_undo_viewer or args.only_deliver or args.only_settings:
        if args.only_settings:
            model_dialog(window, settle, save)
            apply_look(window.session, window)
            settings_dock(window, settle, save)
        if args.only_deliver:
            deliverables(window, work, out, settle, wait_for, save)
        if args.only_mixed:
            mixed_storyboard(window, mood_pictures(work / "pictures"), settle, wait_for, save)
        if args.only_undo_viewer:
            undo_viewer_and_lock(window, work, out, settle, wait_for)
        window.ask = lambda *a, **k: "Don't save"
        window.close()
        return 0
    save(window, "empty.png")

    model_dialog(window, settle, save)

    pictures = mood_pictures(work / "pictures")
    session = window.session
    window.gallery.add_files([str(p) for p in pictures[:3]])
    wait_for(lambda: not window.gallery.importing)  # pictures are read in the background
    session.set_reference_caption(session.references[0].id, "mountains at dusk")
    session.set_active_reference(None)
    apply_look(session, window)
    session.set_reference_prompt("a lighthouse on a cliff")
    for prompt in ("a fox wakes up in its den", "the fox crosses a frozen river",
                   "the fox meets an old crow on a fence", "the fox and the crow watch the sunset"):
        session.add_panel(prompt)
    session.set_panel_control_picture(2, pictures[3])
    session.update_panel(0, seed_locked=True)
    window.storyboard.select(session.panels[2].id)
    window.gallery.list.setCurrentRow(0)
    window.gallery.list.scrollToTop()
    wait_for(lambda: "map" in window.storyboard.card_at(2).control_note.text()
             and "computing" not in window.storyboard.card_at(2).control_note.text())
    settle(500)
    save(window, "storyboard.png")

    window.runs.generate()
    def step() -> int:
        found = re.search(r"Step (\d+)/", window.run_bar.progress.format())
        return int(found.group(1)) if found else 0

    wait_for(lambda: step() >= 10)
    settle(200)
    save(window, "generating.png")
    wait_for(lambda: window.worker.current is None and not window.worker.pending)
    settle(800)
    save(window, "finished.png")

    window.runs.reroll(1)
    wait_for(lambda: window.worker.current is None and not window.worker.pending
             and len(session.history) == 2
             and all(r.consistency is not None for r in session.history))
    settle(500)
    window.history_dock.raise_()
    window.history.select_run(session.history[0].id)
    settle(800)
    save(window, "history.png")
    window.pictures.show_run(None)
    window.scores.set_dino_source("")  # the default hub id, not in this run's empty hub cache
    wait_for(lambda: not window.history.consistency_hint.isHidden())
    window.history_dock.setFloating(True)  # a small picture of the dock alone
    window.history_dock.resize(360, 330)
    settle(300)
    save(window.history_dock, "history-no-dino.png")
    window.history_dock.setFloating(False)
    window.scores.set_dino_source(str(dino))
    window.pictures.show_run(None)  # the focus moving into the floating list selected a run
    window.statusBar().clearMessage()
    settings_dock(window, settle, save)

    for theme in themes[1:]:
        os.environ["STYLEALIGNED_THEME"] = theme
        apply_theme(app)
        window.pictures.refresh()
        settle(800)
        save(window, f"finished-{theme}.png")

    if len(themes) > 1:
        os.environ["STYLEALIGNED_THEME"] = themes[0]
        apply_theme(app)
    mixed_storyboard(window, pictures, settle, wait_for, save)
    undo_viewer_and_lock(window, work, out, settle, wait_for)
    deliverables(window, work, out, settle, wait_for, save)

    window.ask = lambda *a, **k: "Don't save"
    window.close()
    return 0


def apply_look(session, window) -> None:
    """The screenshots' style and settings: the flat vector preset, 24 steps at 256²."""
    preset = window.style_panel.library.get("Flat vector illustration")
    if preset is not None:
        session.apply_preset(preset)
    else:
        session.set_style_text("flat vector illustration, limited palette")
    session.update_settings(steps=24, width=256, height=256)


def model_dialog(window, settle, save) -> None:
    """The model dialog of the first start, at the height its rows need."""
    from stylealigned_desktop.ui.dialogs import ModelDialog

    dialog = ModelDialog("", window, first_run=True)
    dialog.resize(700, 480)  # the width; showing it makes it as tall as its rows need
    dialog.show()
    settle(300)
    save(dialog, "model-dialog.png")
    dialog.close()


def settings_dock(window, settle, save) -> None:
    """The Settings dock with its LoRA and Advanced sections open."""
    window.settings_dock.raise_()
    window.settings_panel.advanced_section.toggle.setChecked(True)
    settle(300)
    save(window.settings_dock, "advanced-settings.png")
    window.settings_panel.advanced_section.toggle.setChecked(False)


def mixed_storyboard(window, pictures, settle, wait_for, save) -> None:
    """A storyboard of wide, tall and square panels whose style blends three pictures and the
    generated reference (spec sections 11 and 12): the window after Generate, and the gallery."""
    from stylealigned_desktop.session.model import Session

    session = Session()
    window.sessions.set_session(session)
    window.gallery.add_files([str(p) for p in pictures[:3]])
    wait_for(lambda: not window.gallery.importing)
    first, second, third = session.references
    session.set_reference_caption(first.id, "mountains at dusk")
    session.set_reference_caption(second.id, "a night harbour")
    session.set_source_active(second.id, True, weight=0.6)
    session.set_source_active(third.id, True, weight=0.0)  # on the board, not used
    session.set_source_active(None, True, weight=0.4)
    session.set_style_text("flat vector illustration, limited palette")
    session.set_reference_prompt("a lighthouse on a cliff")
    shots = [("establishing shot: the harbour town at dawn", (1344, 768)),
             ("the keeper climbs the lighthouse stairs", (832, 1216)),
             ("a teacup on the keeper's table", None),
             ("panorama: the storm rolls in over the sea", (1536, 640))]
    for prompt, size in shots:
        panel = session.add_panel(prompt)
        session.update_panel(session.panel_index(panel.id), size=size)
    session.update_settings(steps=6, width=1024, height=1024)
    window.runs.generate()
    wait_for(lambda: window.worker.current is None and not window.worker.pending and session.history,
             timeout=1800)
    window.storyboard.select(session.panels[0].id)
    window.gallery.list.setCurrentRow(2)  # the second picture: its Mix box and weight
    settle(800)
    save(window, "storyboard-mixed.png")
    window.style_dock.setFloating(True)  # the gallery alone, tall enough for its mix controls
    window.style_dock.resize(430, 600)
    settle(300)
    save(window.style_dock, "mood-board.png")
    window.style_dock.setFloating(False)


def deliverables(window, work: Path, out: Path, settle, wait_for, save) -> None:
    """A storyboard with panel notes, generated: a card's notes opened, a page of the storyboard
    PDF and the animatic's first frame (captions and numbers burned in)."""
    import subprocess

    import av
    from PIL import Image

    from stylealigned_desktop.export.animatic import AnimaticOptions, write_animatic
    from stylealigned_desktop.export.board import board_from_session
    from stylealigned_desktop.export.pdf import PdfOptions, write_pdf
    from stylealigned_desktop.session import store
    from stylealigned_desktop.session.model import Session

    session = Session()
    store.save_session_as(session, work / "The Lighthouse.stylealigned")  # its title
    window.sessions.set_session(session)
    session.set_style_text("flat vector illustration")
    session.set_reference_prompt("a lighthouse on a cliff")
    shots = [
        ("establishing shot: the harbour town at dawn", (256, 128),
         {"action": "Fog lifts off the harbour; gulls.", "camera": "wide", "duration": 3.0,
          "dialogue": "MARA (V.O.): Forty years I've kept this light."}),
        ("the keeper climbs the lighthouse stairs", (128, 192),
         {"action": "MARA (60s) climbs, lantern in hand.", "camera": "low angle", "duration": 2.5,
          "dialogue": "MARA: Every night, the same hundred steps."}),
        ("the lamp room, a cracked lens", None,
         {"action": "She finds the lens cracked.", "camera": "close-up",
          "dialogue": "MARA: Not tonight. Not in this fog.",
          "notes": "Hold on the crack; sound of the sea."}),
        ("a ship in the fog beyond the rocks", (256, 128),
         {"scene": 2, "action": "A trawler drifts toward the rocks.", "camera": "extreme wide",
          "dialogue": "CAPTAIN (V.O.): Where is the light?", "duration": 3.0}),
    ]
    for prompt, size, notes in shots:
        index = session.panel_index(session.add_panel(prompt).id)
        session.update_panel(index, size=size)
        session.update_panel_notes(index, **notes)
    session.update_settings(steps=4, width=128, height=128)
    window.runs.generate()
    wait_for(lambda: window.worker.current is None and not window.worker.pending and session.history,
             timeout=1800)
    card = window.storyboard.card_at(2)
    card.notes_editor.toggle.setChecked(True)
    window.storyboard.select(session.panels[2].id)
    settle(500)
    window.storyboard.scroll.ensureWidgetVisible(card.notes_editor)
    settle(300)
    save(window.storyboard, "panel-notes.png")
    board = board_from_session(session)
    pdf = work / "board.pdf"
    write_pdf(board, pdf, PdfOptions(layout=3))
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-f", "2", "-l", "2", "-singlefile", str(pdf),
                    str(out / "storyboard-pdf-page")], check=True)
    film = work / "animatic.mp4"
    write_animatic(board, film, AnimaticOptions(captions=True, numbers=True))
    with av.open(str(film)) as container:
        first = next(container.decode(video=0)).to_image()
    first.resize((640, 360), Image.Resampling.LANCZOS).save(out / "animatic-first-frame.jpg", quality=85)
    print(f"wrote {out / 'storyboard-pdf-page.png'} and {out / 'animatic-first-frame.jpg'}")


def save_small(widget_or_image, path: Path) -> None:
    """A screenshot as a palette PNG (a few tens of kB instead of hundreds)."""
    from PIL import Image
    from PySide6.QtGui import QImage

    image = widget_or_image if isinstance(widget_or_image, QImage) else widget_or_image.grab().toImage()
    image.save(str(path))
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    print(f"wrote {path}")


HOLDER = """
import sys, time
from pathlib import Path
from stylealigned_desktop.session import folders
folders.acquire_lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def undo_viewer_and_lock(window, work: Path, out: Path, settle, wait_for) -> None:
    """Undo / redo in the Edit menu after a panel was deleted; the viewer zoomed to 400 % on a
    panel, then comparing it with the same panel of the run before (a re-roll); and what a
    second window says when it opens a session another window has open."""
    import subprocess

    from PySide6.QtCore import QPoint, QTimer
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QApplication

    from stylealigned_desktop.session import store
    from stylealigned_desktop.session.model import Session

    folder = Path(window.config.open_folder or work)
    session = Session()
    window.sessions.set_session(session)
    session.set_style_text("flat vector illustration, limited palette")
    session.set_reference_prompt("a lighthouse on a cliff")
    for prompt in ("a fox wakes up in its den", "the fox crosses a frozen river",
                   "the fox meets an old crow on a fence"):
        session.add_panel(prompt)
    session.update_settings(steps=8, width=256, height=192)
    window.runs.generate()
    wait_for(lambda: window.worker.current is None and not window.worker.pending
             and len(session.history) == 1)
    window.runs.reroll(1)
    wait_for(lambda: window.worker.current is None and not window.worker.pending
             and len(session.history) == 2)
    settle(500)

    # the Edit menu after deleting a panel (deleting asks nothing: Ctrl+Z brings it back)
    window.storyboard.delete(session.panels[2].id)
    window.sessions.undo.flush()
    settle(300)
    edit = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")
    at = window.menuBar().actionGeometry(edit.menuAction()).bottomLeft()
    edit.popup(window.menuBar().mapToGlobal(at))
    settle(300)
    shot = window.grab().toImage()
    painter = QPainter(shot)
    painter.drawPixmap(window.mapFromGlobal(edit.pos()), edit.grab())
    painter.end()
    edit.hide()
    save_small(shot.copy(0, 0, min(shot.width(), 760), min(shot.height(), 420)),
               out / "edit-menu.png")
    window.undo_action.trigger()  # the panel is back
    settle(300)

    # the viewer: panel 2 at 400 %, then side by side with the same panel of the first run
    viewer = window.pictures.view_picture(1)
    viewer.resize(860, 560)
    settle(300)
    viewer.view.set_zoom(4.0)
    viewer.view.centerOn(viewer.view.sceneRect().center() + QPoint(40, 0))
    settle(300)
    save_small(viewer, out / "viewer-zoom.png")
    viewer.fit()
    viewer.set_comparing(True)
    viewer.resize(880, 400)
    settle(300)
    viewer.fit()
    settle(300)
    save_small(viewer, out / "viewer-compare.png")
    viewer.close()

    # a session open in another window: a second window asks what to do
    locked = Session()
    locked.add_panel("the harbour at dawn")
    store.save_session_as(locked, folder / "Harbour")
    locked.close()
    target = folder / "Harbour.stylealigned"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        window.sessions.set_session(Session())  # nothing to keep: only the lock is asked about

        def answer() -> None:
            box = QApplication.activeModalWidget()
            if box is None:
                QTimer.singleShot(100, answer)
                return
            save_small(box, out / "session-locked.png")
            box.reject()

        QTimer.singleShot(500, answer)
        window.sessions.open_session(target)
    finally:
        holder.kill()
        holder.wait()


if __name__ == "__main__":
    raise SystemExit(main())
