"""What every deliverable is made from: a :class:`Board` (title, date, the style's reference
pictures, and each panel's picture, numbers, notes and duration), read from a session or from
a run folder made by ``stylealigned generate``.

A session's panel shows its newest picture of a finished run (as the window's grid does); a
panel not generated yet has no picture (the PDF draws an empty frame, the animatic a black
one). A run folder's panels carry their notes when the prompts file had some: ``generate``
writes them beside run.json as :data:`NOTES_FILE` (see :func:`write_run_notes`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..engine.runfolder import RUN_FILE, read_run, write_json
from ..session.notes import (
    DEFAULT_DURATION,
    BoardSettings,
    PanelNotes,
    PanelNumber,
    durations,
    number_panels,
)

NOTES_FILE = "panel-notes.json"
NOTES_FORMAT = "stylealigned-panel-notes"
MAX_NOTES_BYTES = 64 * 1024 * 1024  # 1 000 panels of long notes fit many times over


class ExportError(ValueError):
    """A board that cannot be read or a deliverable that cannot be written; the message is for
    the user."""


MAX_FPS = 120.0


def check_fps(fps: float) -> float:
    """A frame rate from 1 to :data:`MAX_FPS` (ExportError)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 1 <= fps <= MAX_FPS:
        raise ExportError(f"the frame rate must be 1 to {MAX_FPS:g} frames a second, got {fps!r}")
    return float(fps)


class Cancelled(Exception):
    """The user cancelled a long export (the animatic); nothing was left behind."""


@dataclass(frozen=True)
class BoardPanel:
    """One panel of a deliverable. ``picture`` is None when it has not been generated;
    ``size`` is its (width, height) in pixels (its picture's, else the size it will have)."""

    number: PanelNumber
    prompt: str
    notes: PanelNotes
    duration: float
    size: tuple[int, int]
    picture: Path | None = None

    @property
    def name(self) -> str:
        """``"Panel 3"``: what a clip or a board is called."""
        return f"Panel {self.number.panel}"


@dataclass(frozen=True)
class Board:
    """A storyboard ready to deliver: ``title``, ``date`` (shown on the title page),
    ``references`` (the style's pictures), ``panels`` in order, ``default_duration`` (seconds,
    for panels without their own)."""

    title: str
    date: str
    references: tuple[Path, ...]
    panels: tuple[BoardPanel, ...]
    default_duration: float = DEFAULT_DURATION

    @property
    def total_duration(self) -> float:
        return sum(p.duration for p in self.panels)


def make_panels(prompts: Sequence[str], notes: Sequence[PanelNotes], sizes: Sequence[tuple[int, int]],
                pictures: Sequence[Path | None], default_duration: float) -> tuple[BoardPanel, ...]:
    """Panels with their automatic numbers and durations (``session/notes.py``'s rules)."""
    return tuple(
        BoardPanel(number=number, prompt=prompt, notes=note, duration=duration, size=size, picture=picture)
        for number, prompt, note, duration, size, picture in zip(
            number_panels(notes), prompts, notes, durations(notes, default_duration), sizes, pictures)
    )


def _picture_size(path: Path | None, fallback: tuple[int, int]) -> tuple[int, int]:
    if path is None:
        return fallback
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:
        raise ExportError(f"{path}: not a picture that can be read ({error})") from None


def board_from_session(session) -> Board:
    """The board of a session (a ``session.model.Session``): each panel's newest finished
    picture, the newest finished run's reference pictures."""
    newest_references, newest_panels = session.newest_pictures()
    references = [path for _, (path, _run) in sorted(newest_references.items())]
    newest = {panel_id: path for panel_id, (path, _run) in newest_panels.items()}
    settings = session.settings
    pictures = [newest.get(p.id) if newest.get(p.id, Path()).is_file() else None for p in session.panels]
    sizes = [_picture_size(picture, p.size or (settings.width, settings.height))
             for p, picture in zip(session.panels, pictures)]
    return Board(
        title=session.title,
        date=datetime.now().strftime("%Y-%m-%d"),
        references=tuple(p for p in references if p.is_file()),
        panels=make_panels([p.prompt for p in session.panels], [p.notes for p in session.panels],
                           sizes, pictures, session.board.default_duration),
        default_duration=session.board.default_duration,
    )


def board_from_run_folder(folder: str | Path) -> Board:
    """The board of a run folder written by ``generate`` (its run.json and, when there, the
    panel notes)."""
    folder = Path(folder)
    try:
        run = read_run(folder)
    except ValueError as error:
        raise ExportError(str(error)) from None
    settings, notes_of = read_run_notes(folder)
    entries = sorted(run.get("panels", []), key=lambda p: p["index"])
    pictures = [folder / p["file"] if (folder / p["file"]).is_file() else None for p in entries]
    sizes = [_picture_size(picture, (int(p.get("width", 1024)), int(p.get("height", 1024))))
             for p, picture in zip(entries, pictures)]
    references = [folder / r["file"] for r in run.get("references", []) if r.get("file")]
    created = str(run.get("created") or "")[:10]
    return Board(
        title=folder.name,
        date=created or datetime.now().strftime("%Y-%m-%d"),
        references=tuple(p for p in references if p.is_file()),
        panels=make_panels([str(p.get("subject") or p.get("prompt") or "") for p in entries],
                           [notes_of.get(p["index"], PanelNotes()) for p in entries],
                           sizes, pictures, settings.default_duration),
        default_duration=settings.default_duration,
    )


def load_board(path: str | Path) -> Board:
    """The board of a session folder (``session.json``) or a run folder (``run.json``)."""
    path = Path(path).expanduser()
    if (path / RUN_FILE).exists():
        return board_from_run_folder(path)
    if (path / "session.json").exists():
        from ..session import store
        from ..session.errors import SessionError

        try:
            session = store.load_session(path, read_only=True)
        except (SessionError, OSError) as error:
            raise ExportError(str(error)) from None
        try:
            return board_from_session(session)
        finally:
            session.close()
    raise ExportError(f"{path}: neither a session folder (session.json) nor a run folder (run.json)")


def write_run_notes(folder: str | Path, notes: Sequence[PanelNotes],
                    default_duration: float = DEFAULT_DURATION) -> Path | None:
    """Write the panels' notes (panel ``k`` = ``notes[k - 1]``) beside a run folder's run.json;
    when every note is empty, no file (an earlier run's into the same folder is removed)."""
    path = Path(folder) / NOTES_FILE
    if all(n.empty for n in notes) and default_duration == DEFAULT_DURATION:
        path.unlink(missing_ok=True)
        return None
    write_json(path, {
        "format": NOTES_FORMAT, "version": 1,
        "board": BoardSettings(default_duration).to_dict(),
        "panels": {str(k): n.to_dict() for k, n in enumerate(notes, start=1) if not n.empty},
    })
    return path


def read_run_notes(folder: Path) -> tuple[BoardSettings, dict[int, PanelNotes]]:
    """A run folder's board settings and notes by panel number (none: defaults)."""
    path = folder / NOTES_FILE
    if not path.is_file() or path.is_symlink():
        return BoardSettings(), {}
    if path.stat().st_size > MAX_NOTES_BYTES:
        raise ExportError(f"{path}: too big for panel notes")
    from ..session.errors import SessionError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != NOTES_FORMAT:
            raise ExportError(f"{path}: not a StyleAligned panel-notes file")
        panels = data.get("panels") or {}
        return (BoardSettings.from_dict(data.get("board") or {}),
                {int(k): PanelNotes.from_dict(v, f"panels[{k}]") for k, v in panels.items()})
    except (ValueError, AttributeError, SessionError, OSError) as error:
        if isinstance(error, ExportError):
            raise
        raise ExportError(f"{path}: damaged ({error})") from None
