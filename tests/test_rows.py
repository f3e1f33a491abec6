"""The run's plan of rows (engine/rows.py), torch-free: which rows a request makes, in which
order, what each shares, its prompt, seed, keys and events, and the size groups. Expectations
are written out by hand from the spec (sections 3, 11, 12, 13), not computed by the code."""

import pytest

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.errors import GenerationError
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.rows import RunRows
from stylealigned_desktop.engine.settings import StyleAlignedSettings

MIRA = Character("Mira", "a red-haired girl", anchor_seeds=(5, 6), anchor_text=", ink wash")
BO = Character("Bo", "an old man", anchor_seeds=(7, 8), anchor_text=", ink wash")
UNSEEN = GeneratedReference("unseen", 11, weight=0.0)
PICTURE = ReferencePicture("/p.png", "a caption", weight=1.0)
GENERATED = GeneratedReference("a lighthouse", 13, weight=3.0)
PANELS = (Panel("[Mira] runs", 20), Panel("a house", 21, size=(128, 192)), Panel("[Bo] and [Mira]", 22),
          Panel("a cat", 23, size=(128, 192)))


def request(**kwargs) -> SetRequest:
    values = dict(model="tiny", style=(UNSEEN, PICTURE, GENERATED), panels=PANELS,
                  sampling=Sampling(width=192, height=128), characters=(MIRA, BO),
                  settings=StyleAlignedSettings(anchors_per_character=2))
    values.update(kwargs)
    return SetRequest(**values)


def test_rows_are_the_seen_references_then_the_anchors_then_the_selected_panels():
    plan = RunRows.of(request(only=(3, 0, 2)))
    summary = [(r.role, r.position, r.size, r.shares, r.names) for r in plan.rows]
    assert summary == [
        ("reference", 1, (192, 128), (), ()),
        ("reference", 2, (192, 128), (), ()),
        ("anchor", 0, (192, 128), (1, 2), ("Mira",)),
        ("anchor", 1, (192, 128), (1, 2), ("Mira",)),
        ("anchor", 2, (192, 128), (1, 2), ("Bo",)),
        ("anchor", 3, (192, 128), (1, 2), ("Bo",)),
        ("panel", 0, (192, 128), (1, 2), ("Mira",)),
        ("panel", 2, (192, 128), (1, 2), ("Bo", "Mira")),
        ("panel", 3, (128, 192), (1, 2), ()),
    ]
    assert plan.set_size == (192, 128)
    assert [r.role for r in plan.references] == ["reference", "reference"]
    assert [r.position for r in plan.anchors] == [0, 1, 2, 3]
    assert [r.position for r in plan.panels] == [0, 2, 3]
    assert [r.records for r in plan.rows] == [True] * 6 + [False] * 3


def test_prompts_seeds_and_sources_follow_each_row():
    plan = RunRows.of(request(only=(0, 1, 2)))
    assert plan.prompts == [
        "a caption", "a lighthouse",
        "a red-haired girl, ink wash", "a red-haired girl, ink wash", "an old man, ink wash", "an old man, ink wash",
        "a red-haired girl runs", "a house", "an old man and a red-haired girl",
    ]
    assert [r.seed for r in plan.rows] == [0, 13, 5, 6, 7, 8, 20, 21, 22]
    assert plan.rows[0].source is PICTURE and plan.rows[1].source is GENERATED
    assert plan.rows[7].text is None and plan.rows[7].source is PANELS[1]


def test_groups_places_and_panel_rows_by_size():
    plan = RunRows.of(request(style=PICTURE, characters=(), panels=PANELS[1:2] + (Panel("a", 1), Panel("b", 2))
                              + PANELS[3:]))
    # rows: the reference, panel 0 (128x192), panel 1, panel 2, panel 3 (128x192)
    assert plan.groups == {(192, 128): [0, 2, 3], (128, 192): [1, 4]}
    assert plan.places == [((192, 128), 0), ((128, 192), 0), ((192, 128), 1), ((192, 128), 2), ((128, 192), 1)]
    assert plan.panel_rows((192, 128)) == [2, 3]
    assert plan.panel_rows((128, 192)) == [1, 4]


def test_keys_previews_and_done_events_name_each_row():
    plan = RunRows.of(request(only=(2,)))
    second_ref, mira_second, panel = plan.rows[1], plan.rows[3], plan.rows[6]
    image, metadata, masks = object(), {"seed": 1}, {"Mira": "mask m", "Bo": "mask b"}
    assert [r.picture_key for r in (plan.rows[0], second_ref, mira_second, panel)] == [
        ("reference", 1), ("reference", 2), ("anchor", "Mira", 1), 2]
    assert second_ref.preview(3, image) == ev.Preview(None, 3, image, 2)
    assert mira_second.preview(3, image) == ev.AnchorPreview("Mira", 1, 3, image)
    assert panel.preview(3, image) == ev.Preview(2, 3, image)
    assert second_ref.done(image, metadata, masks) == ev.PanelDone(None, image, metadata, 2)
    assert mira_second.done(image, metadata, masks) == ev.AnchorDone("Mira", 1, image, metadata, "mask m")
    assert mira_second.done(image, metadata) == ev.AnchorDone("Mira", 1, image, metadata, None)
    assert panel.done(image, metadata, masks) == ev.PanelDone(2, image, metadata, masks=masks)
    assert panel.done(image, metadata) == ev.PanelDone(2, image, metadata, masks={})
    assert [plan.name(n) for n in (0, 3, 6)] == ["a reference", "anchor 2 of [Mira]", "panel 3"]


def test_full_attention_share_takes_one_reference_and_panels_of_the_set_size():
    share = StyleAlignedSettings(full_attention_share=True)
    same = (Panel("a", 1), Panel("b", 2))
    plan = RunRows.of(request(style=GENERATED, panels=same, characters=(), settings=share))
    assert [r.role for r in plan.rows] == ["reference", "panel", "panel"]
    refusals = {
        "full_attention_share couples every image: it takes no characters":
            dict(style=GENERATED, panels=(Panel("[Mira]", 1),), characters=(MIRA,),
                 settings=StyleAlignedSettings(full_attention_share=True, anchors_per_character=2)),
        "full_attention_share couples every image of the set: it cannot re-roll single panels":
            dict(style=GENERATED, panels=same, characters=(), settings=share, only=(0, 1)),
        "full_attention_share is the authors' ablation of one reference: it takes neither several "
        "references nor panels of their own size":
            dict(style=(GENERATED, PICTURE), panels=same, characters=(), settings=share),
    }
    for message, kwargs in refusals.items():
        with pytest.raises(GenerationError) as caught:
            RunRows.of(request(**kwargs))
        assert str(caught.value) == message
    with pytest.raises(GenerationError, match="panels of their own size"):
        RunRows.of(request(style=GENERATED, panels=same + (Panel("c", 3, size=(128, 192)),), characters=(),
                           settings=share))
    # an unused second reference still counts (the authors' batch has exactly one)
    with pytest.raises(GenerationError, match="several references"):
        RunRows.of(request(style=(GENERATED, UNSEEN), panels=same, characters=(), settings=share))
