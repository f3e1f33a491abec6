"""Characters in requests and prompts (spec section 13): names, descriptions, subject words."""

from __future__ import annotations

import pytest

from stylealigned_desktop.engine.characters import (
    anchors_of,
    character_text,
    expand_character_names,
    named_characters,
    row_subject_tokens,
    subject_words,
)
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    SetRequest,
    character_dict,
    character_from_dict,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

MIRA = Character("Mira", "a red-haired girl in a yellow raincoat", anchor_seeds=(5, 6))
BO = Character("Old Bo", "an old man wearing a blue hat", ("man", "Hat"), anchor_seeds=(7, 8, 9),
               anchor_pictures=(None, "bo.png"), anchor_text=", ink")


def _request(*prompts, characters=(MIRA, BO), **kwargs):
    return SetRequest(model="tiny", style=GeneratedReference("a castle"), characters=characters,
                      panels=tuple(Panel(p, i) for i, p in enumerate(prompts)), **kwargs)


def test_names_are_replaced_by_descriptions_and_found_in_order():
    prompt = "[Old Bo] waves at [Mira], then [Mira] runs [1990] [sic] [Éva"  # no names: text
    assert named_characters(prompt, (MIRA, BO)) == ["Old Bo", "Mira"]
    text, spans = character_text(prompt, (MIRA, BO))
    assert text == ("an old man wearing a blue hat waves at a red-haired girl in a yellow raincoat, then "
                    "a red-haired girl in a yellow raincoat runs [1990] [sic] [Éva")
    assert [text[a:b] for a, b in spans["Mira"]] == [MIRA.description] * 2
    assert [text[a:b] for a, b in spans["Old Bo"]] == [BO.description]
    assert expand_character_names(prompt, (MIRA, BO)) == text
    assert expand_character_names("no names here", ()) == "no names here"


def test_an_unknown_name_is_a_clear_error_in_the_prompt_and_the_request():
    with pytest.raises(ValueError, match=r"unknown character \[Bob\] \(characters: \[Mira\], \[Old Bo\]\)"):
        named_characters("[Bob] sleeps", (MIRA, BO))
    with pytest.raises(ValueError, match=r"panel 2: the prompt names the unknown character \[Mia\]"):
        _request("[Mira] runs", "[Mia] sleeps")
    with pytest.raises(ValueError, match=r"unknown character \[Éva\] \(characters: none\)"):
        _request("a boat [Éva]", characters=())


def test_subject_words_default_to_the_description_less_stop_words():
    assert subject_words(MIRA) == ("red-haired", "girl", "yellow", "raincoat")
    assert subject_words(BO) == ("man", "hat")
    assert subject_words(Character("X", "the cat wearing the hat of the cat", anchor_seeds=(1,))) == ("cat", "hat")


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="7up", description="a can"), "starts with a capital letter"),
    (dict(name="mira", description="a can"), "starts with a capital letter"),
    (dict(name="Mira  Two", description="a can"), "starts with a capital letter"),
    (dict(name="M" * 41, description="a can"), "at most 40"),
    (dict(name="Mira", description="a girl", words=("dog",)), r"'dog' of \[Mira\] is not a word"),
    (dict(name="Mira", description="a girl", words="girl"), "is a sequence"),
    (dict(name="Mira", description="in the", words=()), "only stop words"),
    (dict(name="Mira", description="a girl", anchor_seeds=()), "needs a seed"),
    (dict(name="Mira", description="a girl", anchor_seeds=(-1,)), "seed"),
    (dict(name="Mira", description="a girl", anchor_pictures=("",)), "path or None"),
])
def test_bad_characters_are_refused(kwargs, message):
    kwargs.setdefault("anchor_seeds", (1, 2))
    with pytest.raises(ValueError, match=message):
        Character(**kwargs)


def test_requests_check_their_characters_against_the_settings():
    with pytest.raises(ValueError, match=r"\[Mira\] has 2 anchor seed\(s\) but each character has 3 anchors"):
        _request("x", settings=StyleAlignedSettings(anchors_per_character=3))
    with pytest.raises(ValueError, match=r"unique, \[Mira\] is twice"):
        _request("x", characters=(MIRA, MIRA))
    for bad, message in [(dict(character_layers="down"), "character_layers must be one of up, all"),
                         (dict(anchors_per_character=9), "from 1 to 8"),
                         (dict(character_dropout=-0.1), "from 0 to 1"), (dict(character_shift=11.0), "from -10 to 10")]:
        with pytest.raises(ValueError, match=message):
            StyleAlignedSettings(**bad)


def test_characters_round_trip_as_data_and_anchors_follow_the_settings():
    request = _request("[Mira] and [Old Bo]")
    data = request.to_dict()["characters"]
    assert data[1] == {"name": "Old Bo", "description": BO.description, "words": ["man", "Hat"],
                       "anchor_seeds": [7, 8, 9], "anchor_pictures": [None, "bo.png"], "anchor_text": ", ink"}
    assert tuple(character_from_dict(d) for d in data) == (MIRA, BO)
    assert character_dict(MIRA)["words"] == []
    with pytest.raises(ValueError, match="unknown character field"):
        character_from_dict({**data[0], "age": 9})
    anchors = anchors_of(request.characters, 2)
    assert [(a.character, a.number, a.index, a.seed, a.picture) for a in anchors] == [
        ("Mira", 0, 0, 5, None), ("Mira", 1, 1, 6, None), ("Old Bo", 0, 2, 7, None), ("Old Bo", 1, 3, 8, "bo.png")]
    assert anchors[2].prompt == BO.description + ", ink" and anchors[3].prompt == BO.description  # a caption


def test_subject_tokens_are_the_subject_words_tokens(tiny_pipe):
    tokenizer = tiny_pipe.tokenizer
    prompt = "[Old Bo] waves at [Mira] in the rain"
    text = expand_character_names(prompt, (MIRA, BO))
    tokens = row_subject_tokens(tokenizer, prompt, ["Mira", "Old Bo"], (MIRA, BO), None, 77)
    ids = tokenizer(text).input_ids

    def read(positions):
        return tokenizer.decode([ids[p] for p in positions]).replace(" ", "")

    assert read(tokens["Mira"]) == "red-hairedgirlyellowraincoat"
    assert read(tokens["Old Bo"]) == "manhat"
    anchor = row_subject_tokens(tokenizer, BO.description + ", ink", ["Old Bo"], (MIRA, BO), "Old Bo", 77)
    anchor_ids = tokenizer(BO.description + ", ink").input_ids
    assert tokenizer.decode([anchor_ids[p] for p in anchor["Old Bo"]]).replace(" ", "") == "manhat"
    cut = row_subject_tokens(tokenizer, "word " * 80 + "[Mira]", ["Mira"], (MIRA,), None, 77)
    assert cut == {"Mira": ()}  # beyond what CLIP reads


def test_the_session_compares_the_character_layers_as_a_choice():
    from stylealigned_desktop.session.generation import _nearly_equal

    default = StyleAlignedSettings()
    assert _nearly_equal(default, default.replace(character_dropout=0.5004))
    assert not _nearly_equal(default, default.replace(character_layers="all"))
