"""The limits shared by the CLI, the session and the engine (engine/limits.py)."""

from __future__ import annotations

import pytest

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine, GenerationError, _longer_than_clip
from stylealigned_desktop.engine.limits import CLIP_TOKENS
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest


def test_prompts_longer_than_clip_are_found_with_the_models_own_tokenizer(tiny_pipe):
    short, long = "a fox", " ".join(["fox"] * (CLIP_TOKENS + 5))
    assert len(tiny_pipe.tokenizer(long).input_ids) > CLIP_TOKENS  # independent of the helper
    assert _longer_than_clip(tiny_pipe, [short, long, short]) == [1]


def test_the_engine_says_when_a_prompt_is_cut_and_refuses_steps_beyond_training(tiny_pipe):
    engine = Engine()
    events = []
    long = " ".join(["fox"] * (CLIP_TOKENS + 5))
    request = SetRequest(model="tiny", style=GeneratedReference("a tree", 1),
                         panels=(Panel("a cat", 2), Panel(long, 3)),
                         sampling=Sampling(steps=2, width=64, height=64), device="cpu")
    engine.generate(request, events.append, None)
    notices = [e.message for e in events if isinstance(e, ev.Notice)]
    assert any("panel 2" in m and "CLIP" in m for m in notices), notices
    with pytest.raises(GenerationError, match="steps"):
        object.__setattr__(request.sampling, "steps", 1001)  # past the request's own check
        engine.generate(request, events.append, None)
