"""Remembered export options: written as JSON and read back; bad stored values fall back to
their defaults one field at a time."""

from __future__ import annotations

import json

from stylealigned_desktop.export.animatic import AnimaticOptions
from stylealigned_desktop.export.choices import choices, from_choices
from stylealigned_desktop.export.pdf import PdfOptions


def test_round_trip_through_json():
    pdf = PdfOptions(layout=6, page="Letter", landscape=False, title_page=False)
    film = AnimaticOptions(size=(640, 360), fps=25.0, crossfade=0.25, captions=True, numbers=True,
                           srt=False)
    for options in (pdf, film):
        stored = json.loads(json.dumps(choices(options)))
        assert "fonts" not in stored
        assert from_choices(type(options), stored) == options


def test_bad_values_fall_back_one_field_at_a_time():
    stored = {"layout": 4, "page": "Letter", "landscape": "yes", "title_page": False, "extra": 1}
    assert from_choices(PdfOptions, stored) == PdfOptions(page="Letter", title_page=False)
    stored = {"size": [641, 360], "fps": 30, "crossfade": True, "captions": True}
    assert from_choices(AnimaticOptions, stored) == AnimaticOptions(fps=30.0, captions=True)
    assert from_choices(AnimaticOptions, {"size": ["640", 360]}) == AnimaticOptions()
    assert from_choices(PdfOptions, None) == PdfOptions()


def test_timeline_and_storyboarder_options_check_the_frame_rate():
    import pytest

    from stylealigned_desktop.export.board import ExportError
    from stylealigned_desktop.export.storyboarder import StoryboarderOptions
    from stylealigned_desktop.export.timeline import TimelineOptions

    for cls in (TimelineOptions, StoryboarderOptions):
        with pytest.raises(ExportError, match="frame rate"):
            cls(fps=0.5)
        assert from_choices(cls, {"fps": 500}) == cls()
    assert from_choices(TimelineOptions, choices(TimelineOptions(fps=25.0, shot_list=False))) == \
        TimelineOptions(fps=25.0, shot_list=False)
