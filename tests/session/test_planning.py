"""``session/planning.py`` on its own: a session's values in, the engine's request and what the
history records out, and every refusal in the words the artist reads."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.session.characters import Character, CharacterSettings
from stylealigned_desktop.session.errors import SessionError
from stylealigned_desktop.session.generation import GenerationSettings
from stylealigned_desktop.session.planning import plan_run
from stylealigned_desktop.session.values import Control, Panel, Reference, Style, StyleReference

HARBOUR = Reference(id="r1", file="references/harbour.png", name="Harbour", caption="a harbour")
UNNAMED = Reference(id="r2", file="references/noon.png", caption="a field")
GALLERY = {r.id: r for r in (HARBOUR, UNNAMED)}


def _plan(tmp_path, *, style=None, panels=None, settings=None, present=None, **kwargs):
    present = {HARBOUR.file, UNNAMED.file, "controls/edges.png"} if present is None else present
    return plan_run(
        style=style or Style(text="ink", reference_prompt="a tree", reference_seed=9),
        gallery=GALLERY.get,
        panels=[Panel("p1", "a fox", 5), Panel("p2", "", 6)] if panels is None else panels,
        settings=settings or GenerationSettings(model="tiny", steps=4, width=64, height=64),
        outputs=tmp_path / "outputs", cache_dir=tmp_path / "cache",
        file_of=lambda name: tmp_path / name if _relative(name) in present else None,
        taken_run_ids=(), **kwargs)


def _relative(name):
    assert isinstance(name, str), name  # a session-relative path, as Session.file takes
    return name


def test_the_request_and_the_record_of_a_blended_style(tmp_path):
    style = Style(text="ink", reference_prompt=" a tree ", reference_seed=9,
                  sources=(StyleReference(None, 1.0), StyleReference("r1", 3.0)))
    control = Control(image="controls/edges.png", mode="map", scale=0.5, guidance_start=0.1, guidance_end=0.7,
                      canny_low=20, canny_high=90, map_kind="canny")
    panels = [Panel("p1", "a fox", 5, control=control, size=(128, 64)), Panel("p2", "", 6)]
    settings = GenerationSettings(model="tiny", steps=4, width=64, height=64, inversion_offset=2)
    plan = _plan(tmp_path, style=style, panels=panels, settings=settings, only=[1])
    request = plan.request
    generated, picture = request.references
    assert (generated.prompt, generated.seed, generated.weight) == ("a tree, ink", 9, 1.0)
    assert (picture.path, picture.caption, picture.inversion_offset, picture.weight) == (
        str(tmp_path / HARBOUR.file), "a harbour", 2, 3.0)
    assert [(r.kind, r.prompt, r.subject, r.seed, r.reference_id, r.file, r.caption, r.weight)
            for r in plan.references] == [
        ("generated", "a tree, ink", "a tree", 9, None, None, "", 0.25),
        ("picture", "", "", 0, "r1", HARBOUR.file, "a harbour", 0.75)]
    assert [(p.prompt, p.seed, p.size) for p in request.panels] == [("a fox, ink", 5, (128, 64)), ("ink", 6, None)]
    made = request.panels[0].control
    assert (made.image, made.mode, made.scale, made.guidance_start, made.guidance_end, made.canny_low,
            made.canny_high, made.map_kind) == (str(tmp_path / "controls/edges.png"), "map", 0.5, 0.1, 0.7, 20, 90,
                                                "canny")
    assert plan.controls == (control, None) and request.panels[1].control is None
    assert (request.only, request.device, request.dtype, request.cache_dir) == ((1,), "auto", "auto",
                                                                              str(tmp_path / "cache"))
    assert plan.folder == tmp_path / "outputs" / plan.run_id
    assert plan.subjects == ("a fox", "") and plan.panel_ids == ("p1", "p2") and plan.style_text == "ink"


def test_the_model_device_and_dtype(tmp_path):
    with pytest.raises(SessionError, match="^no model is chosen: pick one in the model dialog$"):
        _plan(tmp_path, settings=GenerationSettings(model=" "))
    plan = _plan(tmp_path, settings=GenerationSettings(model="", steps=4, width=64, height=64),
                 default_model=" org/sdxl ", device="cpu", dtype="float32")
    assert (plan.request.model, plan.settings.model) == ("org/sdxl", "org/sdxl")  # the run records its model
    assert (plan.request.device, plan.request.dtype) == ("cpu", "float32")


@pytest.mark.parametrize("only", [[2], [-1], [True], ["0"], [0, 2]])
def test_only_names_existing_panels(tmp_path, only):
    bad = next(i for i in only if i not in (0, 1) or isinstance(i, bool))
    with pytest.raises(SessionError, match=rf"^panel {bad!r} does not exist \(the storyboard has 2 panels\)$"):
        _plan(tmp_path, only=only)


def test_the_first_and_last_panel_can_be_chosen(tmp_path):
    assert _plan(tmp_path, only=[0, 1]).request.only == (0, 1)


@pytest.mark.parametrize("change, message", [
    ({"panels": []}, "^the storyboard has no panels: add at least one$"),
    ({"style": Style(sources=(StyleReference("gone"),))},
     "^an active reference picture is no longer in the gallery$"),
    ({"style": Style(sources=(StyleReference("r1"),)), "present": set()},
     r"^the reference picture Harbour is missing from the session folder \(references/harbour.png\); "
     "remove it or add it again$"),
    ({"style": Style(sources=(StyleReference("r2"),)), "present": set()},
     r"^the reference picture references/noon.png is missing from the session folder"),
    ({"style": Style()}, "^there is no style yet: write a style text or a reference prompt, "
                         "or choose a reference picture$"),
    ({"panels": [Panel("p1", "a fox"), Panel("p2", " ")], "style": Style(reference_prompt="a tree")},
     "^panel 2 has no prompt and there is no style text$"),
    ({"panels": [Panel("p1", "a", control=Control(image="controls/lost.png"))]},
     r"^panel 1's control picture is missing from the session folder \(controls/lost.png\); "
     "choose it again or remove it$"),
    # what only the request refuses comes back as a SessionError with the request's message
    ({"panels": [Panel(f"p{i}", "a") for i in range(1001)]}, "^a set has at most 1000 panels, got 1001$"),
])
def test_a_session_that_cannot_run_says_why(tmp_path, change, message):
    with pytest.raises(SessionError, match=message):
        _plan(tmp_path, **change)


def test_run_ids_are_new(tmp_path):
    first = _plan(tmp_path)
    second = plan_run(style=Style(text="ink"), gallery=GALLERY.get, panels=[Panel("p1", "a")],
                      settings=GenerationSettings(model="tiny"), outputs=Path(tmp_path), cache_dir=Path(tmp_path),
                      file_of=lambda name: None, taken_run_ids={first.run_id})
    assert second.run_id != first.run_id


# --- characters (spec section 13) -----------------------------------------------------------

MIRA = Character("Mira", " a girl in a raincoat ", words=("girl",), anchor_seeds=(3, 4, 5, 6),
                 pictures=(None, "characters/mira.png", None, "characters/later.png"), anchor_text=" full figure ")
TOM = Character("Tom", "an old man", anchor_seeds=(7, 8, 9))
CAST = [Panel("p1", "[Mira] meets a fox", 5), Panel("p2", "rain", 6)]


def test_the_characters_and_their_settings_reach_the_request(tmp_path):
    chosen = CharacterSettings(character_dropout=0.3, character_layers="all", character_shift=1.5,
                               anchors_per_character=3)
    settings = GenerationSettings(model="tiny", steps=4, width=64, height=64,
                                  style_aligned=StyleAlignedSettings(shared_score_shift=0.5))
    plan = _plan(tmp_path, panels=CAST, settings=settings, characters=[MIRA, TOM], character_settings=chosen,
                 present={"characters/mira.png"})
    mira, tom = plan.request.characters  # every character, named by a panel or not
    assert (mira.name, mira.description, mira.words, mira.anchor_seeds, mira.anchor_pictures, mira.anchor_text) == (
        "Mira", "a girl in a raincoat", ("girl",), (3, 4, 5, 6), (None, str(tmp_path / "characters/mira.png"), None),
        ", full figure, ink")  # the pictures of the anchors the set draws, the 4th is not
    assert (tom.name, tom.description, tom.words, tom.anchor_seeds, tom.anchor_pictures, tom.anchor_text) == (
        "Tom", "an old man", (), (7, 8, 9), (), ", ink")
    assert plan.request.settings == StyleAlignedSettings(shared_score_shift=0.5, character_dropout=0.3,
                                                         character_layers="all", character_shift=1.5,
                                                         anchors_per_character=3)
    assert (plan.characters, plan.character_settings) == ((MIRA, TOM), chosen)
    plain = _plan(tmp_path, panels=CAST, settings=settings, characters=[MIRA], style=Style(reference_prompt="a tree"),
                  present={"characters/mira.png"})
    assert plain.request.characters[0].anchor_text == ", full figure"
    assert plain.character_settings == CharacterSettings()  # the defaults, recorded as such
    assert plain.request.settings == StyleAlignedSettings(shared_score_shift=0.5)
    bare = replace(TOM, anchor_text=" ")
    alone = _plan(tmp_path, style=Style(reference_prompt="a tree"), characters=[bare], panels=[Panel("p1", "[Tom]")])
    assert alone.request.characters[0].anchor_text == ""


@pytest.mark.parametrize("change, message", [
    ({"characters": [MIRA, replace(TOM, description=" ")]}, "Tom has no description yet: say who Tom is in Characters"),
    ({"characters": [TOM], "panels": [Panel("p1", "rain"), Panel("p2", "[Tom] and [Bo]")]},
     "panel 2 names [Bo], who is not among the characters: add Bo in Characters or correct the name"),
    ({"characters": [TOM, MIRA], "present": set()},
     "Mira's anchor picture 2 is missing from the session folder (characters/mira.png); choose it again or remove it"),
    # what only the engine refuses comes back in its words
    ({"characters": [replace(TOM, words=("man", "dog"))], "panels": [Panel("p1", "[Tom] waits")]},
     "subject word 'dog' of [Tom] is not a word of its description 'an old man'"),
    ({"characters": [TOM], "panels": [Panel("p1", "[Tom] waits")],
      "character_settings": CharacterSettings(anchors_per_character=4)},
     "[Tom] has 3 anchor seed(s) but each character has 4 anchors (anchors_per_character)"),
])
def test_a_session_whose_characters_cannot_run_says_why(tmp_path, change, message):
    with pytest.raises(SessionError, match="^" + re.escape(message) + "$"):
        _plan(tmp_path, **{"panels": CAST, **change})
