"""A run's history entry keeps the characters it drew (spec section 13): who they were, their
anchors' seeds as the engine got them, the artist's anchor pictures and the anchors the run
wrote; restoring the run brings them back (last session's note: the history did not)."""

from __future__ import annotations

from stylealigned_desktop.session import observer, store
from stylealigned_desktop.session.characters import CharacterSettings

from .session_helpers import picture_bytes


def run_with_mira(session, make_picture):
    session.set_style_text("ink")
    session.add_character("Mira", "a girl in a raincoat")
    session.update_character("Mira", seeds_locked=False, words=("girl",))
    session.set_character_picture("Mira", 1, make_picture("design.png", color="blue"))
    session.update_character_settings(character_dropout=0.3, character_layers="all")
    session.add_panel("[Mira] on the pier")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    # the engine wrote the first anchor and the panel (the second anchor is the artist's picture,
    # written too by the engine, left out here: a run's record names only what it finds)
    (plan.folder / "anchor-Mira-1.png").write_bytes(picture_bytes("red"))
    (plan.folder / "panel-01.png").write_bytes(picture_bytes("green"))
    return plan, session.record_run(plan)


def test_a_run_records_its_characters_as_the_engine_drew_them(session, make_picture, tmp_path):
    plan, record = run_with_mira(session, make_picture)
    [sent] = plan.request.characters
    [kept] = record.characters
    assert kept.character.name == "Mira" and kept.character.description == "a girl in a raincoat"
    assert kept.character.anchor_seeds == sent.anchor_seeds  # the run's seeds, not the ones before
    assert kept.character.words == ("girl",)
    assert kept.character.picture(1) == session.character("Mira").picture(1)
    assert kept.images == ("anchor-Mira-1.png", None)
    assert record.anchor_images() == [("Mira", 0, f"{record.folder}/anchor-Mira-1.png")]
    assert record.character_settings == CharacterSettings(character_dropout=0.3, character_layers="all")
    store.save_session_as(session, tmp_path / "Kept")
    reopened = store.load_session(tmp_path / "Kept.stylealigned")
    assert reopened.history[0].characters == record.characters
    assert reopened.history[0].character_settings == record.character_settings
    reopened.close()


def test_restoring_a_run_brings_its_characters_back_with_their_seeds_locked(session, make_picture):
    plan, record = run_with_mira(session, make_picture)
    drawn = plan.request.characters[0].anchor_seeds
    design = session.character("Mira").picture(1)
    session.update_character("Mira", name="Ava", description="a woman")
    session.reroll_character("Ava")
    session.update_character_settings(character_dropout=0.8, anchors_per_character=3)
    session.add_character("Tom", "an old man")
    notes = session.restore_run(record.id)
    mira = session.character("Mira")
    assert (mira.description, mira.anchor_seeds, mira.seeds_locked) == ("a girl in a raincoat", drawn, True)
    assert mira.picture(1) == design and mira.words == ("girl",)
    assert [c.name for c in session.characters] == ["Ava", "Tom", "Mira"]  # added since: kept
    assert session.character_settings == record.character_settings
    assert notes == []
    session.file(design).unlink()  # the artist's design is gone since: that anchor is drawn again
    notes = session.restore_run(record.id)
    assert session.character("Mira").pictures == ()
    assert notes == ["Mira's anchor picture(s) 2 are gone; drawn from their seeds"]


def test_restoring_a_run_without_characters_keeps_the_sessions(session, make_picture):
    session.set_style_text("ink")
    session.add_panel("a pier")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    record = session.record_run(plan)
    assert record.characters == () and record.character_settings is None
    session.add_character("Mira", "a girl")
    session.update_character_settings(character_dropout=0.9)
    session.restore_run(record.id)
    assert [c.name for c in session.characters] == ["Mira"]
    assert session.character_settings.character_dropout == 0.9


def test_an_anchor_is_drawn_the_same_until_what_makes_it_changes(session, make_picture):
    from dataclasses import replace

    _plan, record = run_with_mira(session, make_picture)
    [made] = record.characters
    now = made.character
    assert made.drew_the_same(now, 0) and made.drew_the_same(now, 1)
    assert not made.drew_the_same(None, 0)
    for change in ({"description": "a woman"}, {"words": ("raincoat",)}, {"anchor_text": ", oil"}):
        assert not made.drew_the_same(replace(now, **change), 0), change
    other_seeds = (now.anchor_seeds[0] + 1, now.anchor_seeds[1] + 1)
    assert not made.drew_the_same(replace(now, anchor_seeds=other_seeds), 0)
    assert made.drew_the_same(replace(now, anchor_seeds=other_seeds), 1)  # the artist's picture
    assert not made.drew_the_same(replace(now, pictures=()), 1)
    assert made.drew_the_same(replace(now, seeds_locked=False), 0)


def test_restoring_notes_each_anchor_picture_gone_and_keeps_the_others(session, make_picture):
    session.set_style_text("ink")
    session.update_character_settings(anchors_per_character=3)
    session.add_character("Mira", "a girl in a raincoat")
    for anchor, color in enumerate(("red", "green", "blue")):
        session.set_character_picture("Mira", anchor, make_picture(f"design-{anchor}.png", color=color))
    session.add_panel("[Mira] on the pier")
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    record = session.record_run(plan)
    designs = session.character("Mira").pictures
    session.remove_character("Mira")
    for anchor in (0, 2):
        session.file(designs[anchor]).unlink()
    changes = []
    session.subscribe(changes.append)
    notes = session.restore_run(record.id, seeds=False)
    assert notes == ["Mira's anchor picture(s) 1, 3 are gone; drawn from their seeds"]
    assert session.character("Mira").pictures == (None, designs[1])
    assert observer.Change(observer.CHARACTERS) in changes and session.dirty


def test_restoring_a_run_changes_the_characters_only_where_they_differ(session, make_picture):
    _plan, record = run_with_mira(session, make_picture)
    session.restore_run(record.id)  # Mira comes back locked
    changes = []
    session.subscribe(changes.append)
    session.restore_run(record.id)  # the same again: nothing of the characters changes
    assert observer.Change(observer.CHARACTERS) not in changes
    session.update_character_settings(character_dropout=0.9)
    session._dirty = False
    changes.clear()
    session.restore_run(record.id)  # the run's settings alone come back
    assert session.character_settings == record.character_settings
    assert observer.Change(observer.CHARACTERS) in changes and session.dirty
