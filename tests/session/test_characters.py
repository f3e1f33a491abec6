"""Characters in the session (spec section 13): the [Name] parser, editing characters, their
anchor seeds and pictures, saving and loading them, and what a run is planned with."""

from __future__ import annotations

import json

import pytest

from stylealigned_desktop.session import observer, store
from stylealigned_desktop.session.characters import (
    CharacterSettings,
    default_words,
    named_characters,
    rename_in_prompt,
    unknown_names,
)
from stylealigned_desktop.session.errors import SessionError


def test_a_prompt_names_characters_in_brackets_each_once_in_order():
    # docs/characters.md's rule: a capital letter first, then letters, digits, _, - and single spaces
    prompt = "[Mira] hands [Old Tom] a map; [Mira] smiles, [] [x [R2-d2_b] [ Kai] [2B] [a  b]"
    assert named_characters(prompt) == ("Mira", "Old Tom", "R2-d2_b")
    assert named_characters("no one here") == ()
    assert named_characters("[A]\n[B]") == ("A", "B")
    assert named_characters("[a] [sic] [a cat]") == ()  # lower case: text (A1111's [de-emphasis])
    assert named_characters("[a\nb]") == ()  # brackets do not span lines
    assert named_characters("[Zoë]") == ("Zoë",)
    assert unknown_names(prompt, ["Old Tom", "Kai", "R2-d2_b"]) == ("Mira",)


def test_renaming_rewrites_only_that_name():
    prompt = "[Mira] and [Mira] meet [Miranda] and [ Mira ]"
    assert rename_in_prompt(prompt, "Mira", "Ava") == "[Ava] and [Ava] meet [Miranda] and [ Mira ]"


def test_default_subject_words_leave_out_the_stop_words_of_the_spec():
    # spec section 13's example and its stop words (a, in, wearing, the ...)
    assert default_words("a red-haired girl in a yellow raincoat") == (
        "red-haired", "girl", "yellow", "raincoat")
    assert default_words("The old man wearing a hat and a Hat") == ("old", "man", "hat")


def test_adding_and_editing_characters(session):
    changes = []
    session.subscribe(changes.append)
    mira = session.add_character(" Mira ", "a red-haired girl in a yellow raincoat")
    assert mira.name == "Mira" and mira.seeds_locked
    assert len(mira.anchor_seeds) == 2 and len(set(mira.anchor_seeds)) == 2
    assert mira.subject_words == ("red-haired", "girl", "yellow", "raincoat")
    assert [c.kind for c in changes] == [observer.CHARACTERS]
    with pytest.raises(SessionError, match="already"):
        session.add_character("Mira")
    assert session.add_character("Old   Tom").name == "Old Tom"
    for bad in ("", "  ", "[Mira]", "2B", "_x", "a" * 41, "Mira!"):
        with pytest.raises(SessionError):
            session.add_character(bad)
    session.update_character("Mira", words=("girl", "raincoat"), anchor_text="full figure")
    assert session.character("Mira").subject_words == ("girl", "raincoat")
    with pytest.raises(SessionError, match="one word"):
        session.update_character("Mira", words=("two words",))
    with pytest.raises(SessionError, match="no field"):
        session.update_character("Mira", seed=3)
    assert [c.name for c in session.characters] == ["Mira", "Old Tom"]


def test_renaming_a_character_renames_it_in_every_prompt(session):
    session.add_character("Mira", "a girl")
    session.add_character("Tom", "an old man")
    session.add_panel("[Mira] runs")
    session.add_panel("[Tom] waits for [Mira]")
    session.add_panel("rain")
    session.update_character("Mira", name="Ava")
    assert [p.prompt for p in session.panels] == ["[Ava] runs", "[Tom] waits for [Ava]", "rain"]
    with pytest.raises(SessionError, match="already"):
        session.update_character("Ava", name="Tom")
    assert session.character("Ava") is not None and session.character("Mira") is None


def test_anchor_seeds_lock_and_reroll(session):
    session.add_character("Mira", "a girl")
    before = session.character("Mira").anchor_seeds
    session.set_anchor_seed("Mira", 1, 77)
    assert session.character("Mira").anchor_seeds == (before[0], 77)
    session.set_anchor_seed("Mira", 0, 0)  # the first anchor, the smallest seed
    assert session.character("Mira").anchor_seeds == (0, 77)
    with pytest.raises(SessionError, match="^Mira has no anchor 3$"):  # counted from 1, as shown
        session.set_anchor_seed("Mira", 2, 5)
    with pytest.raises(SessionError, match="^Mira has no anchor 0$"):
        session.set_anchor_seed("Mira", -1, 5)
    with pytest.raises(SessionError, match="^anchor seed must be a whole number from 0 to 18446744073709551615, "
                                           "got -3$"):
        session.set_anchor_seed("Mira", 0, -3)
    new = session.reroll_character("Mira")
    assert new != (0, 77) and session.character("Mira").anchor_seeds == new


def test_generate_keeps_locked_anchor_seeds_and_draws_free_ones(session):
    session.set_style_text("ink")
    session.add_character("Mira", "a girl")
    session.add_character("Tom", "an old man")
    session.update_character("Tom", seeds_locked=False)
    session.add_panel("[Mira] and [Tom]")
    mira, tom = session.character("Mira").anchor_seeds, session.character("Tom").anchor_seeds
    plan = session.prepare_generate()
    assert session.character("Tom").anchor_seeds == tom  # until the run is filed
    planned = [c.anchor_seeds for c in plan.request.characters]  # locked seeds, Tom's new ones
    assert planned[0] == mira and planned[1] != tom
    plan.folder.mkdir(parents=True)
    session.record_run(plan)
    assert session.character("Mira").anchor_seeds == mira
    drawn = session.character("Tom").anchor_seeds
    assert drawn != tom and len(drawn) == 2
    assert drawn == planned[1]
    reroll = session.prepare_reroll(0)  # a panel's re-roll keeps every anchor
    reroll.folder.mkdir(parents=True)
    session.record_run(reroll)
    assert session.character("Tom").anchor_seeds == drawn


def test_anchors_per_character_follow_the_setting(session, make_picture):
    session.add_character("Mira", "a girl")
    session.set_character_picture("Mira", 1, make_picture("design.png"))
    seeds = session.character("Mira").anchor_seeds
    session.update_character_settings(anchors_per_character=3)
    grown = session.character("Mira")
    assert grown.anchor_seeds[:2] == seeds and len(grown.anchor_seeds) == 3
    assert grown.picture(1) is not None
    session.update_character_settings(anchors_per_character=1)  # the others are kept
    assert session.character("Mira") == grown
    with pytest.raises(SessionError, match="no anchor"):
        session.set_anchor_seed("Mira", 1, 5)
    session.reroll_character("Mira")
    assert session.character("Mira").anchor_seeds[1:] == grown.anchor_seeds[1:]
    assert session.character("Mira").anchor_seeds[0] != grown.anchor_seeds[0]
    for bad in ({"anchors_per_character": 0}, {"character_dropout": 1.5},
                {"character_layers": "down"}, {"colour": 1}):
        with pytest.raises(SessionError):
            session.update_character_settings(**bad)
    with pytest.raises(SessionError, match="^unknown character setting: .*'colour'"):
        session.update_character_settings(colour=1)


def test_a_change_of_the_character_settings_is_the_documents(session):
    session.add_character("Mira", "a girl")
    seeds = session.character("Mira").anchor_seeds
    session._dirty = False
    changes = []
    session.subscribe(changes.append)
    session.update_character_settings(character_dropout=0.2, anchors_per_character=2)  # as many anchors
    assert [c.kind for c in changes] == [observer.CHARACTERS] and session.dirty
    assert session.character("Mira").anchor_seeds == seeds


def test_an_anchor_picture_is_copied_into_the_session(session, make_picture):
    session.add_character("Mira", "a girl")
    original = make_picture("mira-design.png", color="orange")
    mira = session.set_character_picture("Mira", 0, original)
    relative = mira.picture(0)
    assert relative.startswith("characters/") and mira.picture(1) is None
    original.unlink()  # the artist's file may go: the session has its copy
    assert session.file(relative) is not None and session.missing_files() == []
    session.file(relative).unlink()
    assert session.missing_files() == [relative]
    session.clear_character_picture("Mira", 0)
    assert session.character("Mira").pictures == ()


def build_cast(session, make_picture):
    session.set_style_text("ink wash")
    session.add_character("Mira", "a red-haired girl in a yellow raincoat")
    session.add_character("Tom", "an old fisherman")
    session.update_character("Tom", words=("fisherman",), seeds_locked=False,
                             anchor_text="standing, full figure")
    session.set_character_picture("Tom", 1, make_picture("tom.png", color="blue"))
    session.update_character_settings(character_dropout=0.3, character_layers="all",
                                      character_shift=0.25, anchors_per_character=2)
    session.add_panel("[Mira] meets [Tom] on the pier")


def test_characters_round_trip_through_session_files(session, make_picture, tmp_path):
    build_cast(session, make_picture)
    store.save_session_as(session, tmp_path / "Pier")
    loaded = store.load_session(tmp_path / "Pier.stylealigned")
    assert loaded.characters == session.characters
    assert loaded.character_settings == session.character_settings
    assert loaded.to_dict() == session.to_dict()
    assert loaded.missing_files() == []  # save-as copied characters/
    store.save_session(loaded)  # an explicit save tidies copies but keeps the anchors'
    assert loaded.file(loaded.character("Tom").picture(1)) is not None


def test_the_character_settings_are_kept_once_with_the_characters(session, make_picture, tmp_path):
    build_cast(session, make_picture)
    store.save_session_as(session, tmp_path / "Once")
    data = json.loads((tmp_path / "Once.stylealigned" / "session.json").read_text())
    knobs = set(CharacterSettings().to_dict())
    assert knobs & set(data["settings"]["style_aligned"]) == set()  # not a second, dead copy
    assert data["character_settings"]["character_dropout"] == 0.3
    request = store.load_session(tmp_path / "Once.stylealigned").build_request()
    assert (request.settings.character_dropout, request.settings.character_layers) == (0.3, "all")


def test_sessions_of_schema_3_load_without_characters(session, tmp_path):
    session.set_style_text("noir")
    session.add_panel("a street")
    store.save_session_as(session, tmp_path / "Old")
    file = tmp_path / "Old.stylealigned" / "session.json"
    data = json.loads(file.read_text())
    assert data["schema_version"] == store.SCHEMA_VERSION
    del data["characters"], data["character_settings"]
    data["schema_version"] = 3
    file.write_text(json.dumps(data))
    migrated = store.migrate(dict(data), file)
    assert migrated["characters"] == []
    assert migrated["character_settings"] == CharacterSettings().to_dict()
    loaded = store.load_session(file.parent)
    assert loaded.characters == () and loaded.character_settings == CharacterSettings()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["characters"].append(dict(d["characters"][0])), "share one name"),
    (lambda d: d["characters"][0].update(pictures=["../outside.png"]), "inside the session"),
    (lambda d: d["characters"][0].update(anchor_seeds=[-1]), "seed"),
    (lambda d: d["character_settings"].update(character_layers="mid"), "up, all"),
])
def test_bad_character_values_are_named(session, make_picture, tmp_path, mutate, message):
    build_cast(session, make_picture)
    store.save_session_as(session, tmp_path / "Bad")
    file = tmp_path / "Bad.stylealigned" / "session.json"
    data = json.loads(file.read_text())
    mutate(data)
    file.write_text(json.dumps(data))
    with pytest.raises(SessionError, match=message):
        store.load_session(file.parent)


def test_a_panel_naming_an_unknown_character_is_refused(session):
    session.set_style_text("ink")
    session.add_character("Mira", "a girl")
    session.add_panel("[Mira] waves")
    session.add_panel("[Mria] waves back")
    with pytest.raises(SessionError, match=r"panel 2 names \[Mria\]"):
        session.build_request()
    session.update_panel(1, prompt="[Mira] waves back")
    session.add_character("Kai")
    with pytest.raises(SessionError, match="Kai has no description"):
        session.build_request()


def test_the_request_carries_the_characters_and_their_settings(session, make_picture):
    build_cast(session, make_picture)
    request = session.build_request()
    mira, tom = request.characters
    assert (mira.name, mira.description, mira.words) == (
        "Mira", "a red-haired girl in a yellow raincoat", ())
    assert mira.anchor_seeds == session.character("Mira").anchor_seeds
    assert mira.anchor_pictures == ()
    assert tom.words == ("fisherman",)
    assert tom.anchor_text == ", standing, full figure, ink wash"  # the style text, as panels'
    assert mira.anchor_text == ", ink wash"
    assert tom.anchor_pictures[0] is None
    assert tom.anchor_pictures[1] == str(session.file(session.character("Tom").picture(1)))
    assert request.panels[0].prompt == "[Mira] meets [Tom] on the pier, ink wash"
    session.update_character("Tom", words=("sailor",))  # not a word of "an old fisherman"
    with pytest.raises(SessionError, match="sailor"):
        session.build_request()
    knobs = {name: getattr(request.settings, name, getattr(request, name, None))
             for name in ("character_dropout", "character_layers", "character_shift",
                          "anchors_per_character")}
    assert knobs == {"character_dropout": 0.3, "character_layers": "all",
                     "character_shift": 0.25, "anchors_per_character": 2}


def test_a_character_changed_or_removed_during_the_run_keeps_the_artists_anchors(session):
    session.set_style_text("ink")
    for name in ("Mira", "Tom", "Ada"):
        session.add_character(name, "someone")
        session.update_character(name, seeds_locked=False)
    session.add_panel("[Mira] and [Tom] and [Ada]")
    before = {name: session.character(name).anchor_seeds for name in ("Mira", "Tom", "Ada")}
    plan = session.prepare_generate()
    session.update_panel(0, prompt="[Tom] and [Ada]")
    session.remove_character("Mira")  # gone when the run is filed
    session.update_character("Tom", seeds_locked=True)  # locked meanwhile
    plan.folder.mkdir(parents=True)
    changes = []
    session.subscribe(changes.append)
    session.record_run(plan)
    assert session.character("Mira") is None
    assert session.character("Tom").anchor_seeds == before["Tom"]
    assert session.character("Ada").anchor_seeds != before["Ada"]
    assert observer.Change(observer.CHARACTERS) in changes
