"""The editor's timeline (an OpenTimelineIO ``.otio`` of the animatic's cuts) and the shot list
(CSV).

Each clip points at its panel's picture (an ``ExternalReference`` with a file URL; a panel
without a picture gets a ``MissingReference``), lasts the panel's frames in the animatic (the
same rounded cuts, ``animatic.cut_frames``), and carries the panel's numbers, dialogue, action,
notes, camera and prompt as metadata under ``"stylealigned"``. Editors convert the file to
their editing program's format with OTIO's adapters (``otioconvert``; docs/user-guide.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .animatic import cut_frames, timestamp
from .board import Board, ExportError, check_fps

SHOT_LIST_COLUMNS = ("Scene", "Shot", "Panel", "Start", "Duration (s)", "Camera", "Action",
                     "Dialogue", "Notes", "Picture", "Prompt")


@dataclass(frozen=True)
class TimelineOptions:
    """The window's timeline export: ``fps``, and ``shot_list`` (a CSV beside the .otio)."""

    fps: float = 24.0
    shot_list: bool = True

    def __post_init__(self) -> None:
        check_fps(self.fps)


def timeline(board: Board, fps: float = 24.0):
    """The board as an ``opentimelineio.schema.Timeline`` of one video track."""
    import opentimelineio as otio

    cuts = cut_frames(board, fps)
    track = otio.schema.Track(name="Storyboard", kind=otio.schema.TrackKind.Video)
    for k, panel in enumerate(board.panels):
        frames = cuts[k + 1] - cuts[k]
        clip_range = otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                             otio.opentime.RationalTime(frames, fps))
        if panel.picture is not None:
            reference = otio.schema.ExternalReference(
                target_url=panel.picture.resolve().as_uri(), available_range=clip_range)
        else:
            reference = otio.schema.MissingReference()
        notes = panel.notes
        track.append(otio.schema.Clip(
            name=panel.name, media_reference=reference, source_range=clip_range,
            metadata={"stylealigned": {
                "scene": panel.number.scene, "shot": panel.number.shot, "panel": panel.number.panel,
                "dialogue": notes.dialogue, "action": notes.action, "notes": notes.notes,
                "camera": notes.camera, "prompt": panel.prompt, "duration": panel.duration,
            }},
        ))
    result = otio.schema.Timeline(name=board.title)
    result.tracks.append(track)
    return result


def write_otio(board: Board, path: str | Path, fps: float = 24.0) -> Path:
    try:
        # the core's own JSON writer: OTIO's adapter plugins load their modules from .py files
        # by path, which a frozen build does not ship
        timeline(board, fps).to_json_file(str(path))
    except OSError as error:
        raise ExportError(f"{path}: cannot be written ({error.strerror or error})") from None
    return Path(path)


def write_shot_list(board: Board, path: str | Path, fps: float = 24.0) -> Path:
    """A CSV of the panels (UTF-8 with a byte order mark, so spreadsheet programs read accents);
    ``Start`` is the panel's first frame in the animatic as hours:minutes:seconds.milliseconds
    (any frame rate, where SMPTE timecode knows only a few)."""
    cuts = cut_frames(board, fps)
    try:
        with open(path, "w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(SHOT_LIST_COLUMNS)
            for k, panel in enumerate(board.panels):
                n, notes = panel.number, panel.notes
                writer.writerow([n.scene, n.shot, n.panel, timestamp(cuts[k] / fps, '.'), f"{panel.duration:g}",
                                 notes.camera, notes.action, notes.dialogue, notes.notes,
                                 str(panel.picture or ""), panel.prompt])
    except OSError as error:
        raise ExportError(f"{path}: cannot be written ({error.strerror or error})") from None
    return Path(path)
