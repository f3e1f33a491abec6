"""The limits shared by the CLI, the session and the engine (engine/limits.py)."""

from __future__ import annotations

import logging

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


ORDINARY_PROMPT = ("a red fox in a snowy forest at dawn, watercolor painting, soft pastel colours, "
                   "loose brushwork, paper texture")  # a subject and a style text as the app joins them


def test_tiny_reads_an_ordinary_prompt_whole(tiny_pipe):
    # a real SDXL tokenizer reads this in about 25 tokens; tiny must not cut it either
    for tokenizer in (tiny_pipe.tokenizer, tiny_pipe.tokenizer_2):
        assert len(tokenizer(ORDINARY_PROMPT, verbose=False).input_ids) <= CLIP_TOKENS
    assert _longer_than_clip(tiny_pipe, [ORDINARY_PROMPT]) == []


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_cut_prompt_is_said_once_by_the_engine_and_not_by_the_libraries(tiny_pipe):
    records = _Records()  # the libraries' root loggers do not propagate to pytest's
    for name in ("transformers", "diffusers"):
        logging.getLogger(name).addHandler(records)
    for tokenizer in (tiny_pipe.tokenizer, tiny_pipe.tokenizer_2):
        tokenizer.deprecation_warnings.clear()  # transformers warns once per tokenizer: forget earlier tests
    long = " ".join(["fox"] * (CLIP_TOKENS + 5))
    engine, events = Engine(loader=lambda *a, **k: tiny_pipe), []
    request = SetRequest(model="tiny", style=GeneratedReference("a tree", 1),
                         panels=(Panel(long, 2), Panel("a cat", 3)),
                         sampling=Sampling(steps=2, width=96, height=64), device="cpu")
    try:
        engine.generate(request, events.append, None)
    finally:
        for name in ("transformers", "diffusers"):
            logging.getLogger(name).removeHandler(records)
    notices = [e.message for e in events if isinstance(e, ev.Notice)]
    assert len([m for m in notices if "panel 1" in m and "CLIP" in m]) == 1, notices
    said = " ".join(records.messages)
    assert "sequence length is longer" not in said and "was truncated" not in said, records.messages
