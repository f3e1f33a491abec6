"""Panel notes (issue 28): automatic and set scene / shot numbers, durations from the set's
default, edits and their checks, the session.json round trip (and sessions saved before notes
existed), undo snapshots, and the storyboard text's note fields both ways."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop import prompts_file
from stylealigned_desktop.session import store
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.notes import PanelNotes, durations, number_panels


def test_scene_and_shot_numbers_follow_the_panels_that_set_them():
    notes = [PanelNotes(), PanelNotes(), PanelNotes(scene=3), PanelNotes(), PanelNotes(shot=7),
             PanelNotes(), PanelNotes(scene=3), PanelNotes(scene=1, shot=2)]
    got = [(n.scene, n.shot, n.panel) for n in number_panels(notes)]
    # scene 1 shots 1-2; scene 3 starts at shot 1; shot 7 set, the next one is 8; scene 3 again
    # (the same scene) continues; back to scene 1 at the given shot
    assert got == [(1, 1, 1), (1, 2, 2), (3, 1, 3), (3, 2, 4), (3, 7, 5), (3, 8, 6), (3, 9, 7),
                   (1, 2, 8)]


def test_durations_take_the_default_where_a_panel_has_none():
    assert durations([PanelNotes(duration=0.5), PanelNotes(), PanelNotes(duration=4)], 1.25) == \
        [0.5, 1.25, 4.0]


def test_notes_edits_and_their_checks(session):
    session.add_panel("a fox"), session.add_panel("a crow")
    changes = []
    session.subscribe(changes.append)
    panel = session.update_panel_notes(1, scene=2, action="The crow lands.", dialogue="Caw.",
                                       camera="close-up", duration=1.5)
    assert panel.notes == PanelNotes(scene=2, action="The crow lands.", dialogue="Caw.",
                                     camera="close-up", duration=1.5)
    assert [c.kind for c in changes] == ["panel"] and changes[0].index == 1
    assert session.panel_numbers()[1].scene == 2 and session.panel_durations() == [2.0, 1.5]
    session.set_default_duration(0.75)
    assert session.panel_durations() == [0.75, 1.5] and session.board.default_duration == 0.75
    for bad in ({"duration": 0}, {"duration": float("nan")}, {"scene": 0}, {"shot": 2.5},
                {"tempo": 3}, {"dialogue": 5}):
        with pytest.raises(SessionError):
            session.update_panel_notes(0, **bad)
    with pytest.raises(SessionError):
        session.set_default_duration(-1)
    assert session.panels[0].notes == PanelNotes() and session.board.default_duration == 0.75
    assert session.duplicate_panel(1).notes == panel.notes


def test_notes_survive_save_and_load_and_undo_snapshots(session, tmp_path):
    session.add_panel("a fox"), session.add_panel("a crow")
    before = session.edit_state()
    session.update_panel_notes(0, shot=3, notes="hold on the eyes\nthen cut", dialogue="¿Qué? 何")
    session.set_default_duration(2.5)
    after = session.edit_state()
    session.restore_edit_state(before)
    assert session.panels[0].notes == PanelNotes() and session.board.default_duration == 2.0
    session.restore_edit_state(after)
    assert session.panels[0].notes.dialogue == "¿Qué? 何"
    folder = tmp_path / "Notes.stylealigned"
    store.save_session_as(session, folder)
    loaded = store.load_session(folder)
    assert loaded.panels == session.panels and loaded.board == session.board
    loaded.close()


def test_sessions_saved_before_notes_load_with_empty_notes(session, tmp_path):
    session.add_panel("a fox")
    folder = tmp_path / "Old.stylealigned"
    store.save_session_as(session, folder)
    file = folder / "session.json"
    data = json.loads(file.read_text())
    data["schema_version"] = 2
    del data["board"]
    del data["panels"][0]["notes"]
    file.write_text(json.dumps(data))
    loaded = store.load_session(folder)
    assert loaded.panels[0].notes == PanelNotes() and loaded.board.default_duration == 2.0
    loaded.close()
    data["panels"][0]["notes"] = {"duration": "long"}
    file.write_text(json.dumps(data))
    with pytest.raises(SessionError, match=r"panels\[0\]\.notes"):
        store.load_session(folder)


def test_storyboard_text_carries_the_notes_both_ways(session):
    text = ("a door | scene=2 | shot=4 | action=She opens it. | dialogue=Who's there?\\nMe \\| you"
            " | notes=slow | camera=over-the-shoulder | duration=2.5\n"
            "a hall | seed=9 | duration=0.5\n")
    new = prompts_file.import_panels_text(session, text)
    assert new[0].notes == PanelNotes(scene=2, shot=4, action="She opens it.",
                                      dialogue="Who's there?\nMe | you", notes="slow",
                                      camera="over-the-shoulder", duration=2.5)
    assert new[1].notes == PanelNotes(duration=0.5) and new[1].seed == 9
    exported = prompts_file.export_panels_text(session)
    again = prompts_file.import_panels_text(session, exported, replace_all=True)
    assert [p.notes for p in again] == [p.notes for p in new]
    for line, fragment in (("a | duration=0", "duration"), ("a | scene=two", "scene= needs"),
                           ("a | dialogue=hi | dialogue=ho", "given twice")):
        with pytest.raises(SessionError, match=fragment):
            prompts_file.import_panels_text(session, line)


def test_restoring_a_runs_panels_keeps_their_notes(session):
    session.set_style_text("ink")
    session.add_panel("a fox"), session.add_panel("a crow")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    session.record_run(plan)
    session.update_panel_notes(0, dialogue="Hush.")
    session.remove_panel(1)
    session.restore_run(plan.run_id, settings=False, panels=True)
    assert [p.prompt for p in session.panels] == ["a fox", "a crow"]
    assert [p.notes.dialogue for p in session.panels] == ["Hush.", ""]
