"""A run folder's panel notes file: written by generate beside run.json, read back by export;
a run without notes removes an earlier run's; a damaged file is named."""

from __future__ import annotations

import pytest

from stylealigned_desktop.export.board import (
    NOTES_FILE,
    ExportError,
    read_run_notes,
    write_run_notes,
)
from stylealigned_desktop.session.notes import PanelNotes


def test_notes_file_round_trip_and_removal(tmp_path):
    notes = [PanelNotes(), PanelNotes(dialogue="Hush.", duration=1.5), PanelNotes(scene=3)]
    write_run_notes(tmp_path, notes, default_duration=0.8)
    board, read = read_run_notes(tmp_path)
    assert board.default_duration == 0.8 and read == {2: notes[1], 3: notes[2]}
    assert write_run_notes(tmp_path, [PanelNotes()] * 3) is None
    assert not (tmp_path / NOTES_FILE).exists()
    assert read_run_notes(tmp_path) == (read_run_notes(tmp_path / "none")[0], {})


def test_a_damaged_notes_file_is_named(tmp_path):
    (tmp_path / NOTES_FILE).write_text('{"format": "stylealigned-panel-notes", "panels": {"x": {}}}')
    with pytest.raises(ExportError, match=NOTES_FILE):
        read_run_notes(tmp_path)
    (tmp_path / NOTES_FILE).write_text('{"format": "stylealigned-panel-notes", '
                                       '"panels": {"1": {"duration": -1}}}')
    with pytest.raises(ExportError, match="duration"):
        read_run_notes(tmp_path)
