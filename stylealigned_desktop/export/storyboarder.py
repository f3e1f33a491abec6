"""A Storyboarder project (Wonder Unit's open storyboarding app), so the artist can draw over the
panels there.

What we followed (github.com/wonderunit/storyboarder, commit 8b81a25c, 2022-06-30; facts about
the format only):

- a project is a folder with ``<name>.storyboarder`` (JSON) and an ``images/`` folder
  (``src/js/main.js``, new project: ``version``, ``aspectRatio``, ``fps``,
  ``defaultBoardTiming`` in milliseconds, ``boards``);
- a board has ``uid`` (5 upper-case base-36 characters, ``utils/index.js`` ``uidGen``),
  ``url`` ``board-<number>-<uid>.png``, ``newShot``, ``lastEdited`` (ms since 1970),
  ``layers`` (``{"reference": {"url": "board-N-UID-reference.png", "opacity": 1}}``),
  ``number``, ``shot`` (``"1A"``), ``time`` and ``duration`` (ms), ``dialogue``, ``action``,
  ``notes`` (``test/fixtures/*/*.storyboarder``, ``src/js/models/board.js``,
  ``exporters/pdf/generate.js``);
- shot names: a board with ``newShot`` starts the next shot; the others are its sub-shots
  A, B, C... (``main-window.js`` ``updateSceneTiming``);
- the picture goes on the ``reference`` layer (the artist draws on the layers above it); no
  file is written under the board's own ``url``, which Storyboarder would take for a project
  of its old format and move into the fill layer (``main-window.js``, the migration at load);
- each board has ``-thumbnail.png`` and ``-posterframe.jpg`` beside it (``board.js``);
- the layer pictures are the project's size: 900 pixels high (or wide, for portrait
  projects) at the project's aspect ratio (``board.js`` ``boardFileImageSize``).

The project's aspect ratio is the first panel's; other panels are letterboxed into it.
"""

from __future__ import annotations

import json
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .animatic import letterboxed
from .board import Board, ExportError, check_fps

FORMAT_VERSION = "2.0.1"
"""The ``version`` Storyboarder 2 writes (its test fixture ``example.storyboarder``)."""
THUMBNAIL_HEIGHT = 60


@dataclass(frozen=True)
class StoryboarderOptions:
    """The project's frame rate (Storyboarder's ``fps``: its timeline and exports)."""

    fps: float = 24.0

    def __post_init__(self) -> None:
        check_fps(self.fps)


def board_image_size(aspect: float) -> tuple[int, int]:
    """Storyboarder's layer size for an aspect ratio (``boardFileImageSize``)."""
    return (round(900 * aspect), 900) if aspect >= 1 else (900, round(900 / aspect))


def shot_names(board: Board) -> tuple[list[bool], list[str]]:
    """Each board's ``newShot`` (our scene or shot number changes) and Storyboarder's shot name."""
    new_shot, names = [], []
    previous = None
    shot, sub = 0, 0
    for panel in board.panels:
        key = (panel.number.scene, panel.number.shot)
        starts = key != previous
        previous = key
        if starts:
            shot, sub = shot + 1, 0
        else:
            sub += 1
        suffix = chr(ord("A") + sub % 26) + (str(-(-sub // 25)) if -(-sub // 25) - 1 > 0 else "")
        new_shot.append(starts)
        names.append(f"{shot}{suffix}")
    return new_shot, names


def _uids(count: int, rng: random.Random) -> list[str]:
    taken: set[str] = set()
    while len(taken) < count:
        taken.add("".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(5)))
    return sorted(taken, key=lambda _: rng.random())


def write_storyboarder(board: Board, folder: str | Path, fps: float = 24.0,
                       rng: random.Random | None = None) -> Path:
    """Write the project into ``folder`` (created; it must be empty or new). Returns the
    ``.storyboarder`` file."""
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"{folder}: choose a new or empty folder for the Storyboarder project")
    if not board.panels:
        raise ExportError("the storyboard has no panels")
    fps = check_fps(fps)
    images = folder / "images"
    try:
        images.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"{folder}: cannot be created ({error.strerror or error})") from None
    first = board.panels[0].size
    aspect = first[0] / first[1]
    size = board_image_size(aspect)
    now = int(time.time() * 1000)
    new_shot, names = shot_names(board)
    boards, start = [], 0
    for k, (panel, uid) in enumerate(zip(board.panels, _uids(len(board.panels), rng or random.Random()))):
        url = f"board-{k + 1}-{uid}.png"
        picture = letterboxed(panel, size)
        picture.save(images / url.replace(".png", "-reference.png"))
        thumbnail = picture.resize((max(1, round(THUMBNAIL_HEIGHT * aspect)), THUMBNAIL_HEIGHT),
                                   Image.Resampling.LANCZOS)
        thumbnail.save(images / url.replace(".png", "-thumbnail.png"))
        picture.save(images / url.replace(".png", "-posterframe.jpg"), quality=90)
        duration = round(panel.duration * 1000)
        notes = "\n".join(t for t in (panel.notes.camera, panel.notes.notes) if t.strip())
        boards.append({
            "uid": uid, "url": url, "newShot": new_shot[k], "lastEdited": now,
            "layers": {"reference": {"url": url.replace(".png", "-reference.png"), "opacity": 1}},
            "number": k + 1, "shot": names[k], "time": start, "duration": duration,
            "dialogue": panel.notes.dialogue, "action": panel.notes.action, "notes": notes,
        })
        start += duration
    project = {
        "version": FORMAT_VERSION, "aspectRatio": aspect, "fps": fps,
        "defaultBoardTiming": round(board.default_duration * 1000), "boards": boards,
    }
    path = folder / f"{folder.name}.storyboarder"
    path.write_text(json.dumps(project, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
