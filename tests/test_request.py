"""SetRequest's references (spec section 11) and panel sizes (spec section 12)."""

import json

import pytest

from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)


def _request(style, panels=None, **kwargs):
    return SetRequest(model="tiny", style=style, panels=panels or (Panel("a car", 1),),
                      sampling=Sampling(width=192, height=128), **kwargs)


def test_one_reference_is_stored_bare_several_as_a_tuple():
    train = GeneratedReference("a train", 3)
    assert _request(train).style is train
    assert _request([train]).style is train  # a list of one is one reference
    picture = ReferencePicture("/p.png", "a cat", weight=3.0)
    both = _request([train, picture])
    assert both.style == (train, picture) and both.references == (train, picture)
    assert _request(train).references == (train,)


def test_weights_are_normalised_and_zero_is_allowed():
    refs = [GeneratedReference("a", 1, weight=3.0), ReferencePicture("/p.png", weight=1.0),
            GeneratedReference("b", 2, weight=0)]
    assert _request(refs).weights == (0.75, 0.25, 0.0)
    assert _request(GeneratedReference("a", weight=2.5)).weights == (1.0,)


@pytest.mark.parametrize("weight", [-1, float("nan"), float("inf"), True, "1"])
def test_bad_weights_are_refused(weight):
    with pytest.raises(ValueError, match="weight"):
        GeneratedReference("a", weight=weight)
    with pytest.raises(ValueError, match="weight"):
        ReferencePicture("/p.png", weight=weight)


def test_a_set_needs_a_reference_with_weight():
    with pytest.raises(ValueError, match="at least one reference"):
        _request([])
    with pytest.raises(ValueError, match="weight above 0"):
        _request([GeneratedReference("a", weight=0), GeneratedReference("b", weight=0.0)])
    with pytest.raises(ValueError, match="GeneratedReference or a ReferencePicture"):
        _request([GeneratedReference("a"), "b"])


def test_panel_sizes_are_multiples_of_64_and_default_to_the_sets():
    request = _request(GeneratedReference("a"), panels=(Panel("wide", 1, size=(1344, 768)), Panel("square", 2)))
    assert request.panel_size(0) == (1344, 768) and request.panel_size(1) == (192, 128)
    assert Panel("x", 1, size=[640, 1536]).size == (640, 1536)
    for bad in [(1000, 1024), (1024,), (0, 64), (64.0, 64), "64x64", (True, 64)]:
        with pytest.raises(ValueError, match="panel"):
            Panel("x", 1, size=bad)


def test_to_dict_keeps_the_one_reference_shape_and_lists_several():
    one = _request(GeneratedReference("a train", 3)).to_dict()
    assert one["style"] == {"prompt": "a train", "seed": 3, "weight": 1.0, "kind": "generated"}
    assert one["panels"][0]["size"] is None
    several = _request([GeneratedReference("a", 1, weight=2), ReferencePicture("/p.png", "cat")],
                       panels=(Panel("x", 1, size=(128, 64)),)).to_dict()
    assert [r["kind"] for r in several["style"]] == ["generated", "picture"]
    assert several["style"][0]["weight"] == 2.0 and several["panels"][0]["size"] == [128, 64]
    json.dumps(several)  # JSON-ready


def test_picture_parameters_record_every_reference_and_its_normalised_weight():
    request = _request([GeneratedReference("a", 1, weight=1), ReferencePicture("/p.png", "cat", weight=3)])
    refs = request.picture_parameters()["references"]
    assert [(r["kind"], r["weight"]) for r in refs] == [("generated", 0.25), ("picture", 0.75)]
    assert refs[1]["path"] == "/p.png" and refs[1]["caption"] == "cat"
