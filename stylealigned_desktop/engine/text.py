"""Prompts as the text encoders read them: each encoded alone, and the ones CLIP cuts found."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from .bases import base_of
from .denoise import Conditioning
from .limits import CLIP_TOKENS


def encode_prompts(pipe, prompts: list[str], negative_prompt: str | None, cfg: bool) -> Conditioning:
    """Every row's conditioning. Each distinct prompt is encoded alone, a batch of one: a text
    encoder's matrix kernels may round by batch size (MKL's AVX2 path does, on AMD CPUs), and a
    panel's numbers must not depend on which other prompts share its set (spec section 3).
    The base says how (SDXL's two encoders and pooled embedding, or SD's one encoder)."""
    base = base_of(pipe)
    encoded = {prompt: base.encode_prompt(pipe, prompt, negative_prompt, cfg) for prompt in dict.fromkeys(prompts)}
    parts = zip(*(encoded[prompt] for prompt in prompts))
    embeds, negative, pooled, negative_pooled = (
        None if part[0] is None else torch.cat(part) for part in parts)
    return Conditioning(embeds, pooled, negative, negative_pooled)


def longer_than_clip(pipe, prompts: Sequence[str]) -> list[int]:
    """Indices of the prompts the text encoders cut (more tokens than the tokenizer's limit)."""
    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else getattr(pipe, "tokenizer_2", None)
    if tokenizer is None:
        return []
    limit = min(tokenizer.model_max_length, CLIP_TOKENS)
    return [k for k, prompt in enumerate(prompts) if len(tokenizer(prompt).input_ids) > limit]


def _not_about_a_cut_prompt(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not message.startswith(("The following part of your input was truncated",
                                   "Token indices sequence length is longer than"))


# diffusers and transformers log a cut prompt on every encode (and transformers on counting it);
# the engine says it once per run, as a Notice naming the panel
for _name in ("diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
              "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
              "transformers.tokenization_utils_base"):
    logging.getLogger(_name).addFilter(_not_about_a_cut_prompt)
