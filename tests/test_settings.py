import math

import pytest

from stylealigned_desktop.engine.settings import StyleAlignedSettings


def test_defaults_are_the_authors_prompts_only_defaults():
    s = StyleAlignedSettings()
    assert (s.share_attention, s.adain_queries, s.adain_keys, s.adain_values) == (True, True, True, False)
    assert (s.share_group_norm, s.shared_score_shift, s.shared_score_scale) == (False, 0.0, 1.0)
    assert (s.full_attention_share, s.only_self_level) == (False, 0.0)


def test_reference_image_defaults_and_overrides():
    s = StyleAlignedSettings.for_reference_image()
    assert s.shared_score_shift == pytest.approx(math.log(2))
    assert s.share_group_norm is True and s.shared_score_scale == 1.0
    famous = StyleAlignedSettings.for_reference_image(shared_score_shift=0.0, shared_score_scale=0.5)
    assert famous.shared_score_shift == 0.0 and famous.shared_score_scale == 0.5


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"shared_score_scale": -0.1}, "shared_score_scale"),
        ({"only_self_level": 1.5}, "only_self_level"),
        ({"only_self_level": -0.01}, "only_self_level"),
        ({"shared_score_shift": float("nan")}, "finite"),
        ({"shared_score_shift": "big"}, "number"),
        ({"share_attention": 1}, "true or false"),
    ],
)
def test_invalid_values_raise_clear_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        StyleAlignedSettings(**kwargs)


def test_frozen_and_round_trip():
    s = StyleAlignedSettings(adain_values=True, shared_score_shift=0.5, only_self_level=0.25)
    with pytest.raises(AttributeError):
        s.adain_values = False  # type: ignore[misc]
    assert StyleAlignedSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown"):
        StyleAlignedSettings.from_dict({"share_layer_norm": True})


def test_full_attention_share_in_no_layer_changes_nothing():
    """only_self_level 1 leaves every layer plain, full sharing included (spec 2, 6)."""
    assert not StyleAlignedSettings(full_attention_share=True, only_self_level=1.0).is_active
    assert StyleAlignedSettings(full_attention_share=True, only_self_level=0.9).is_active
    assert StyleAlignedSettings(full_attention_share=True, only_self_level=1.0, share_group_norm=True).is_active
