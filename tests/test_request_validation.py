"""Every field of a request is checked when it is made, naming the field (request.py's rules),
and what a request records (``picture_parameters``, ``to_dict``) is what it holds."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Lora,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
    character_dict,
    character_from_dict,
    check_device,
    reference_dict,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

TRAIN = GeneratedReference("a train", 3)


def _set(**kwargs):
    fields = {"model": "tiny", "style": TRAIN, "panels": (Panel("a car", 1), Panel("a boat", 2))}
    return SetRequest(**{**fields, **kwargs})


@pytest.mark.parametrize("make, message", [
    (lambda: GeneratedReference(7), "reference prompt must be text"),
    (lambda: GeneratedReference("x" * 2001), "reference prompt is 2001 characters"),
    (lambda: GeneratedReference("a", seed=-1), "reference seed must be a whole number from 0"),
    (lambda: GeneratedReference("a", seed=1.5), "reference seed must be a whole number"),
    (lambda: GeneratedReference("a", weight=-0.5), "reference weight must be a number from 0"),
    (lambda: ReferencePicture(3), "reference picture path must be text"),
    (lambda: ReferencePicture("p.png", caption=None), "reference caption must be text"),
    (lambda: ReferencePicture("p.png", inversion_guidance=51), "inversion guidance must be a number from 0 to 50"),
    (lambda: ReferencePicture("p.png", inversion_offset=500), "inversion offset must be a whole number from 0 to 499"),
    (lambda: ReferencePicture("p.png", inversion_offset=-1), "inversion offset must be a whole number from 0"),
    (lambda: ReferencePicture("p.png", weight=float("nan")), "reference weight must be a finite number"),
    (lambda: Panel(None, 1), "panel prompt must be text"),
    (lambda: Panel("a", -2), "panel seed must be a whole number from 0"),
    (lambda: Panel("a", 1, size=(100, 64)), "panel size: width must be a multiple of 64"),
    (lambda: PanelControl("c.png", mode="edges"), "control mode must be one of canny, depth, map, got 'edges'"),
    (lambda: PanelControl("c.png", map_kind="pose"), "a ready-made map is one of canny, depth, got 'pose'"),
    (lambda: PanelControl(5), "control picture path must be text"),
    (lambda: PanelControl("c.png", scale=5), "control strength must be a number from 0 to 4"),
    (lambda: PanelControl("c.png", guidance_start=0.6, guidance_end=0.5), "control start/end must satisfy"),
    (lambda: PanelControl("c.png", canny_low=200, canny_high=100), "canny thresholds must satisfy"),
    (lambda: Lora(""), "a LoRA needs a file"),
    (lambda: Lora("   "), "a LoRA needs a file"),
    (lambda: Lora("a.safetensors", True), "LoRA weight must be a number, got True"),
    (lambda: Lora("a.safetensors", "1"), "LoRA weight must be a number, got '1'"),
    (lambda: Lora("a.safetensors", float("inf")), "LoRA weight must be a number, got inf"),
    (lambda: Sampling(steps=0), "steps must be a whole number from 1 to 500"),
    (lambda: Sampling(guidance=-1), "guidance must be a number from 0 to 50"),
    (lambda: Sampling(width=1004), "width must be a multiple of 8"),
    (lambda: Sampling(height=32), "height must be a whole number from 64"),
    (lambda: Sampling(negative_prompt=4), "negative prompt must be text"),
    (lambda: Sampling(scheduler="heun"), "scheduler must be one of ddim, euler, dpmpp-2m, got 'heun'"),
    (lambda: Sampling(window_stride=0), "window stride must be a whole number from 1 to 512"),
    (lambda: Sampling(window_stride=8.0), "window stride must be a whole number, got 8.0"),
    (lambda: Sampling(panorama_above=0.5), "panorama above must be a number from 1 to 64"),
    (lambda: Sampling(panorama_above=float("inf")), "panorama above must be a finite number"),
    (lambda: _set(style=()), "a set needs at least one reference"),
    (lambda: _set(style=(TRAIN, "a cat")), "a reference is a GeneratedReference or a ReferencePicture, got 'a cat'"),
    (lambda: _set(style=(replace(TRAIN, weight=0.0),)), "at least one reference needs a weight above 0"),
    (lambda: _set(panels=[Panel("a", 1)] * 1001), "a set has at most 1000 panels, got 1001"),
    (lambda: _set(only=(0, 2, -1)), r"panel index out of range: \[-1, 2\] \(the set has 2 panels\)"),
    (lambda: _set(micro_batch=0), "micro-batch must be a whole number from 1 to 1000"),
    (lambda: _set(device="gpu"), "device must be one of auto, cuda, mps, cpu or cuda:N"),
    (lambda: _set(dtype="float64"), "dtype must be one of auto, float16, bfloat16, float32, got 'float64'"),
    (lambda: _set(memory="tiny"), "memory mode must be one of auto, fast, balanced, low, got 'tiny'"),
    (lambda: _set(previews="fast"), "previews must be one of auto, factors, tiny, vae, off, got 'fast'"),
])
def test_a_bad_value_is_refused_naming_its_field(make, message):
    with pytest.raises(ValueError, match="^" + message):  # the message is the user's: as it starts
        make()


def test_good_values_are_kept_and_numbers_become_floats():
    reference = GeneratedReference("a", seed=2**64 - 1, weight=2)
    assert reference.weight == 2.0 and isinstance(reference.weight, float)
    picture = ReferencePicture("p.png", inversion_guidance=3, inversion_offset=499, weight=0)
    assert (picture.inversion_guidance, picture.weight) == (3.0, 0.0)
    assert isinstance(picture.inversion_guidance, float) and isinstance(picture.weight, float)
    control = PanelControl("c.png", scale=1, guidance_start=0, guidance_end=1, canny_low=0, canny_high=255)
    assert [type(x) for x in (control.scale, control.guidance_start, control.guidance_end)] == [float] * 3
    assert (PanelControl("c.png", mode="map", map_kind="canny").kind, PanelControl("c.png", mode="depth").kind,
            PanelControl("c.png", map_kind="canny").kind) == ("canny", "depth", "canny")
    lora = Lora("~/styles/ink.safetensors", 1)
    assert lora.weight == 1.0 and isinstance(lora.weight, float) and lora.name == "ink.safetensors"
    sampling = Sampling(guidance=1, panorama_above=3)
    assert sampling.guidance == 1.0 and isinstance(sampling.guidance, float) and not sampling.uses_cfg
    assert sampling.panorama_above == 3.0 and isinstance(sampling.panorama_above, float)
    assert Sampling(guidance=1.01).uses_cfg and Sampling(negative_prompt="").negative_prompt == ""
    assert len(_set(panels=[Panel("a", 1)] * 1000).panels) == 1000  # the most a set takes
    request = _set(panels=[Panel("a", 1)], loras=[lora], only=[0, 0], micro_batch=1000, device="cuda:1")
    assert request.panels == (Panel("a", 1),) and request.loras == (lora,) and request.only == (0,)
    for device in ("auto", "cuda", "mps", "cpu", "cuda:0", "cuda:12"):
        assert check_device(device) == device
    for device in ("cuda:", "cuda:x", "cuda:1 ", "CPU", None):
        with pytest.raises(ValueError, match="device must be"):
            check_device(device)


@pytest.mark.parametrize("steps, offset", [(50, 5), (25, 2), (100, 10), (4, 0), (1, 0), (10, 1), (30, 3), (60, 6)])
def test_the_default_inversion_offset_is_five_of_fifty_scaled(steps, offset):
    assert ReferencePicture("p.png").offset_for(steps) == offset
    assert ReferencePicture("p.png", inversion_offset=0).offset_for(steps) == 0


def test_the_default_inversion_offset_stays_below_the_step_count():
    # round(5 * 500 / 50) = 50 < 500; a request of 500 steps is the most there is
    assert ReferencePicture("p.png").offset_for(500) == 50
    assert all(0 <= ReferencePicture("p.png").offset_for(s) <= max(0, s - 1) for s in range(1, 200))


def test_selected_panels_and_sizes():
    request = _set(panels=(Panel("a", 1), Panel("b", 2, size=(192, 64)), Panel("c", 3)),
                   sampling=Sampling(width=128, height=256), only=(2, 0))
    assert request.selected == (0, 2) and _set().selected == (0, 1)
    assert [request.panel_size(i) for i in range(3)] == [(128, 256), (192, 64), (128, 256)]


def test_picture_parameters_name_every_input_of_the_pictures(tmp_path, monkeypatch):
    vae, lora_file = tmp_path / "vae.safetensors", tmp_path / "ink.safetensors"
    vae.write_bytes(b"v")
    lora_file.write_bytes(b"l")
    monkeypatch.chdir(tmp_path)  # files given relative to where the artist is: recorded whole
    picture = ReferencePicture("p.png", "a cat", 3.0, 4, weight=1.0)
    request = _set(style=(TRAIN, picture), sampling=Sampling(steps=7, guidance=6.5, width=192, height=128,
                                                             scheduler="euler", negative_prompt="blur",
                                                             window_stride=6, panorama_above=3.0),
                   loras=(Lora("ink.safetensors", 0.5),), vae="vae.safetensors", memory="low")
    parameters = request.picture_parameters()
    assert parameters == {
        "model": "tiny", "negative_prompt": "blur", "steps": 7, "guidance": 6.5, "width": 192, "height": 128,
        "scheduler": "euler", "window_stride": 6, "panorama_above": 3.0, "stylealigned": request.settings.to_dict(),
        "loras": [{"file": "ink.safetensors", "path": str(lora_file), "weight": 0.5}],
        "vae": str(vae), "memory": "low",
        "references": [dict(reference_dict(TRAIN), weight=0.5), dict(reference_dict(picture), weight=0.5)],
    }
    assert _set(vae="madebyollin/sdxl-vae-fp16-fix").picture_parameters()["vae"] == "madebyollin/sdxl-vae-fp16-fix"
    assert _set().picture_parameters()["vae"] is None
    home = _set(vae="~/no-such-vae.safetensors").picture_parameters()["vae"]
    assert home == "~/no-such-vae.safetensors"  # not a file here: kept as given (a hub id or a typo)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _set(vae="~/vae.safetensors").picture_parameters()["vae"] == str(vae)


def test_reference_dicts_carry_their_kind():
    assert reference_dict(TRAIN) == {"prompt": "a train", "seed": 3, "weight": 1.0, "kind": "generated"}
    assert reference_dict(ReferencePicture("p.png", "a cat")) == {
        "path": "p.png", "caption": "a cat", "inversion_guidance": 2.0, "inversion_offset": None,
        "weight": 1.0, "kind": "picture"}
    request = _set(panels=(Panel("a", 1, size=(64, 128)), Panel("b", 2)))
    data = request.to_dict()
    assert data["style"] == reference_dict(TRAIN)
    assert [p["size"] for p in data["panels"]] == [[64, 128], None]


# --- characters (spec section 13): each refusal whole, as the user reads it -----------------

def _mira(**kwargs):
    return Character(**{"name": "Mira", "description": "a girl in a raincoat", "anchor_seeds": (1, 2), **kwargs})


MIRA = _mira()


@pytest.mark.parametrize("make, message", [
    (lambda: _mira(name="mira"), "a character's name starts with a capital letter and has letters, digits, "
                                 "'_', '-' and single spaces, at most 40 characters, got 'mira'"),
    (lambda: _mira(description=None), "description of [Mira] must be text, got None"),
    (lambda: _mira(description="x" * 2001), "description of [Mira] is 2001 characters long; at most 2000 are "
                                            "accepted (CLIP reads only the first 77 tokens, roughly 60 words)"),
    (lambda: _mira(anchor_text=5), "anchor text of [Mira] must be text, got 5"),
    (lambda: _mira(words="girl"), "words of [Mira] is a sequence, got the text 'girl'"),
    (lambda: _mira(anchor_seeds="12"), "anchor_seeds of [Mira] is a sequence, got the text '12'"),
    (lambda: _mira(anchor_pictures="p.png"), "anchor_pictures of [Mira] is a sequence, got the text 'p.png'"),
    (lambda: _mira(words=("girl", "dog")),
     "subject word 'dog' of [Mira] is not a word of its description 'a girl in a raincoat'"),
    (lambda: _mira(anchor_seeds=()), "[Mira] needs a seed for each of its anchors"),
    (lambda: _mira(anchor_seeds=(1, -1)), "anchor seed of [Mira] must be a whole number from 0 to "
                                          "18446744073709551615, got -1"),
    (lambda: _mira(anchor_seeds=(1, 2.0)), "anchor seed of [Mira] must be a whole number, got 2.0"),
    (lambda: _mira(anchor_pictures=(None, "")), "an anchor picture of [Mira] is a path or None, got ''"),
    (lambda: _mira(anchor_pictures=(3,)), "an anchor picture of [Mira] is a path or None, got 3"),
    (lambda: _set(characters=(MIRA, "Tom")), "each character is a Character"),
    (lambda: _set(characters=(MIRA, _mira(name="Tom"), _mira(name="Tom"))),
     "character names must be unique, [Tom] is twice"),
    (lambda: _set(characters=(_mira(name="Tom", anchor_seeds=(1, 2, 3)), MIRA),
                  settings=StyleAlignedSettings(anchors_per_character=3)),
     "[Mira] has 2 anchor seed(s) but each character has 3 anchors (anchors_per_character)"),
    (lambda: _set(characters=[MIRA], panels=(Panel("[Mira] runs", 1), Panel("[Tom] waits", 2))),
     "panel 2: the prompt names the unknown character [Tom] (characters: [Mira])"),
])
def test_a_bad_character_is_refused_in_the_users_words(make, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make()


def test_a_characters_sequences_are_kept_as_tuples_and_a_request_holds_a_tuple_of_them():
    mira = Character("Mira", "a girl in a raincoat", ["girl"], anchor_seeds=[3, 4], anchor_pictures=[None, "p.png"])
    assert (mira.words, mira.anchor_seeds, mira.anchor_pictures) == (("girl",), (3, 4), (None, "p.png"))
    assert _mira(description="a cat", anchor_seeds=(0, 2**64 - 1)).anchor_seeds == (0, 2**64 - 1)
    request = _set(characters=[mira], panels=(Panel("rain", 1), Panel("[Mira] runs", 2)))
    assert request.characters == (mira,) and isinstance(request.characters, tuple)


def test_characters_are_recorded_whole_in_the_pictures_and_the_requests_data():
    bo = Character("Old Bo", "an old man wearing a hat", ("man",), anchor_seeds=(7, 8, 9),
                   anchor_pictures=(None, "bo.png"), anchor_text=", ink")
    expected = [
        {"name": "Mira", "description": "a girl in a raincoat", "words": [], "anchor_seeds": [1, 2],
         "anchor_pictures": [], "anchor_text": ""},
        {"name": "Old Bo", "description": "an old man wearing a hat", "words": ["man"], "anchor_seeds": [7, 8, 9],
         "anchor_pictures": [None, "bo.png"], "anchor_text": ", ink"},
    ]
    request = _set(characters=(MIRA, bo))
    assert request.picture_parameters()["characters"] == expected
    assert "characters" not in _set().picture_parameters()  # a set without characters: as before them
    assert request.to_dict()["characters"] == expected and _set().to_dict()["characters"] == []
    assert [character_dict(c) for c in (MIRA, bo)] == expected
    assert [character_from_dict(d) for d in expected] == [MIRA, bo]
    assert character_from_dict({"name": "Mira", "description": "a girl", "anchor_seeds": [5]}) == Character(
        "Mira", "a girl", anchor_seeds=(5,))


@pytest.mark.parametrize("data, message", [
    (["Mira"], "a character must be an object"),
    ({"name": "Mira", "description": "a girl", "anchor_seeds": [1], "colour": "red", "age": 9},
     "unknown character field(s): age, colour"),
    ({"name": "Mira", "description": "a girl", "anchor_seeds": []}, "[Mira] needs a seed for each of its anchors"),
])
def test_a_bad_character_record_is_refused(data, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        character_from_dict(data)
