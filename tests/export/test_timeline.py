"""The editor's timeline loaded with OpenTimelineIO (clip order, durations, media references
to files that exist, notes as metadata), the shot list CSV, and the Storyboarder project's
structure with every board's picture."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest
from PIL import Image

from stylealigned_desktop.export.board import ExportError
from stylealigned_desktop.export.storyboarder import write_storyboarder
from stylealigned_desktop.export.timeline import write_otio, write_shot_list


def test_otio_clips_in_order_with_durations_pictures_and_notes(board, tmp_path):
    board = replace(board, panels=(*board.panels[:-1], replace(board.panels[-1], picture=None)))
    write_otio(board, tmp_path / "cut.otio", fps=25)
    timeline = otio.adapters.read_from_file(str(tmp_path / "cut.otio"))
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == [f"Panel {k}" for k in range(1, 8)]
    starts = 0.0
    for clip, panel in zip(clips, board.panels):
        # each cut within one frame of the summed durations (no drift)
        starts += panel.duration
        end = timeline.tracks[0].range_of_child(clip).end_time_exclusive().to_seconds()
        assert abs(end - starts) <= 1 / 25 + 1e-9
        assert clip.metadata["stylealigned"]["dialogue"] == panel.notes.dialogue
        assert clip.metadata["stylealigned"]["scene"] == panel.number.scene
    for clip in clips[:-1]:
        path = Path(unquote(urlparse(clip.media_reference.target_url).path))
        assert path.is_file() and path.name == f"{clip.name.replace('Panel ', 'panel-0')}.png"
    assert isinstance(clips[-1].media_reference, otio.schema.MissingReference)
    assert timeline.duration().to_seconds() == pytest.approx(board.total_duration, abs=1 / 25)


def test_shot_list(board, tmp_path):
    write_shot_list(board, tmp_path / "shots.csv", fps=24)
    with open(tmp_path / "shots.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["Scene"], r["Shot"], r["Panel"]) for r in rows] == [
        ("1", "1", "1"), ("1", "2", "2"), ("1", "3", "3"), ("2", "1", "4"), ("2", "2", "5"),
        ("2", "3", "6"), ("2", "4", "7")]
    assert rows[1]["Start"] == "00:00:00.500" and rows[2]["Duration (s)"] == "0.7"
    assert rows[0]["Dialogue"] == "Line 1, café?" and rows[0]["Camera"] == "close-up"


def test_storyboarder_project(board, tmp_path):
    folder = tmp_path / "Fox"
    path = write_storyboarder(board, folder, fps=24, rng=random.Random(3))
    assert path == folder / "Fox.storyboarder"
    project = json.loads(path.read_text("utf-8"))
    assert set(project) == {"version", "aspectRatio", "fps", "defaultBoardTiming", "boards"}
    assert project["aspectRatio"] == 3.0 and project["defaultBoardTiming"] == 700 and project["fps"] == 24
    boards = project["boards"]
    assert [b["number"] for b in boards] == list(range(1, 8))
    assert [b["duration"] for b in boards] == [500, 800, 700, 300, 600, 700, 400]
    assert [b["time"] for b in boards] == [0, 500, 1300, 2000, 2300, 2900, 3600]
    # every panel here is its own shot (scene 1 shots 1-3, scene 2 shots 1-4)
    assert all(b["newShot"] for b in boards) and [b["shot"] for b in boards] == [
        "1A", "2A", "3A", "4A", "5A", "6A", "7A"]
    for k, b in enumerate(boards):
        assert set(b) == {"uid", "url", "newShot", "lastEdited", "layers", "number", "shot", "time",
                          "duration", "dialogue", "action", "notes"}
        assert len(b["uid"]) == 5 and b["url"] == f"board-{k + 1}-{b['uid']}.png"
        assert b["dialogue"] == board.panels[k].notes.dialogue and b["action"] == board.panels[k].notes.action
        layer = folder / "images" / b["layers"]["reference"]["url"]
        with Image.open(layer) as picture:
            assert picture.size == (2700, 900)
        assert (folder / "images" / b["url"].replace(".png", "-thumbnail.png")).is_file()
        assert not (folder / "images" / b["url"]).exists()  # Storyboarder would migrate it
    assert len({b["uid"] for b in boards}) == 7
    with pytest.raises(ExportError, match="empty folder"):
        write_storyboarder(board, folder)


def test_storyboarder_sub_shots(board, tmp_path):
    from stylealigned_desktop.export.board import make_panels
    from stylealigned_desktop.session.notes import PanelNotes

    notes = [PanelNotes(), PanelNotes(shot=1), PanelNotes(shot=1), PanelNotes()]
    panels = make_panels(["a"] * 4, notes, [(64, 64)] * 4, [None] * 4, 1.0)
    path = write_storyboarder(replace(board, panels=panels), tmp_path / "S")
    boards = json.loads(path.read_text())["boards"]
    assert [b["newShot"] for b in boards] == [True, False, False, True]
    assert [b["shot"] for b in boards] == ["1A", "1B", "1C", "2A"]
