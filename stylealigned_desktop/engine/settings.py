"""StyleAligned settings: the public knobs of shared attention (spec section 2)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .limits import MAX_SCORE_SCALE, MAX_SCORE_SHIFT, check_number, check_whole

_BOOL_FIELDS = (
    "share_attention",
    "adain_queries",
    "adain_keys",
    "adain_values",
    "share_group_norm",
    "full_attention_share",
)
_RANGES = {  # what each number means: a log-weight, a key multiplier, a fraction of layers
    "shared_score_shift": (-MAX_SCORE_SHIFT, MAX_SCORE_SHIFT),
    "shared_score_scale": (0.0, MAX_SCORE_SCALE),
    "only_self_level": (0.0, 1.0),
    "character_dropout": (0.0, 1.0),
    "character_shift": (-MAX_SCORE_SHIFT, MAX_SCORE_SHIFT),
}
CHARACTER_LAYERS = ("up", "all")
"""Where panels share their characters' anchors (spec section 13): the up-block self-attention
layers, or every shared self-attention layer."""
MAX_ANCHORS = 8


@dataclass(frozen=True)
class StyleAlignedSettings:
    """How the panels of a set share the reference's style.

    Defaults are the authors' prompts-only defaults; :meth:`for_reference_image` gives the
    defaults of reference-picture sets (shift ln 2, shared GroupNorm).
    """

    share_attention: bool = True
    """Panels attend to their own tokens and the reference's tokens."""
    adain_queries: bool = True
    """Re-normalise panel queries to the reference's query statistics."""
    adain_keys: bool = True
    """Re-normalise panel keys to the reference's key statistics."""
    adain_values: bool = False
    """Re-normalise panel values to the reference's value statistics."""
    share_group_norm: bool = False
    """Pool each panel's GroupNorm statistics with the reference's."""
    shared_score_shift: float = 0.0
    """Added to the attention logits of the reference's tokens (prior weight e^shift)."""
    shared_score_scale: float = 1.0
    """Multiplies the reference keys that panels see (a temperature on the reference part)."""
    full_attention_share: bool = False
    """Ablation: every image of a CFG half attends to all images of that half, no AdaIN."""
    only_self_level: float = 0.0
    """Fraction of self-attention layers left unshared (0: all share, 1: none)."""
    character_dropout: float = 0.5
    """Chance that a panel does not see one anchor token (spec section 13): lower is more alike."""
    character_layers: str = "up"
    """Where panels see their characters' anchors: ``up`` (up-block layers) or ``all``."""
    character_shift: float = 0.0
    """Added to the attention logits of the anchors' tokens."""
    anchors_per_character: int = 2
    """How many anchor pictures each character has."""

    def __post_init__(self) -> None:
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, (low, high) in _RANGES.items():
            object.__setattr__(self, name, check_number(getattr(self, name), name, low, high))
        if self.character_layers not in CHARACTER_LAYERS:
            raise ValueError(f"character_layers must be one of {', '.join(CHARACTER_LAYERS)}, "
                             f"got {self.character_layers!r}")
        check_whole(self.anchors_per_character, "anchors_per_character", 1, MAX_ANCHORS)

    @classmethod
    def for_reference_image(cls, **overrides: Any) -> StyleAlignedSettings:
        """The authors' defaults for sets whose reference is an inverted picture (spec 7.5)."""
        base = {"shared_score_shift": math.log(2.0), "shared_score_scale": 1.0, "share_group_norm": True}
        base.update(overrides)
        return cls(**base)

    @property
    def is_active(self) -> bool:
        """Whether these settings change anything at all compared to plain generation."""
        return (
            (self.full_attention_share and self.only_self_level < 1.0)
            or self.share_group_norm
            or (self.only_self_level < 1.0 and (self.share_attention or self.adain_queries
                                                or self.adain_keys or self.adain_values))
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleAlignedSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown StyleAligned setting(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> StyleAlignedSettings:
        return replace(self, **changes)
