"""A panel's numbers do not depend on which other panels share its set (spec section 3).

Server shards, re-rolls and micro-batches all rest on this: the same panel, alone, in a set of 4
and in a set of 7, must give bit-identical latents before the decode, not merely close ones.
Some CPUs' matrix kernels round by batch size (MKL takes its AVX2 path on AMD EPYC), so the same
checks also run in a subprocess with MKL held to AVX2, which reproduces those machines here.
"""

import os
import subprocess
import sys

import pytest
import torch

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

HERO = Panel("a red fox in a snowy forest, gouache", 77)
NEIGHBOURS = [Panel(f"neighbour {i}: a {thing}, gouache", 100 + i)
              for i, thing in enumerate(["boat", "tower", "market", "cat", "bridge", "owl", "cart"])]


@pytest.fixture(scope="module")
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


MIRA = Character("Mira", "a red-haired girl in a yellow raincoat", anchor_seeds=(8, 9),
                 anchor_text=", gouache")


def _final_latents(engine, panels, hero_at, micro_batch, only=None, characters=()):
    request = SetRequest(model="tiny", style=GeneratedReference("a lighthouse at dusk, gouache", 5),
                         panels=tuple(panels),
                         sampling=Sampling(steps=3, guidance=6.0, width=128, height=64, scheduler="dpmpp-2m"),
                         micro_batch=micro_batch, only=only, characters=characters,
                         settings=StyleAlignedSettings(anchors_per_character=2))
    result = engine.generate(request)
    return result.latents[None], result.latents[hero_at]


def _sets(micro_batch):
    """(panels, hero index, only) of sets holding the hero among different neighbours."""
    alone = ([HERO], 0, None)
    in_four = (NEIGHBOURS[:2] + [HERO] + NEIGHBOURS[2:3], 2, None)
    in_seven = (NEIGHBOURS[3:7] + [HERO] + NEIGHBOURS[:2], 4, None)
    if micro_batch == 1:
        return [alone, in_four, in_seven]
    # at micro-batch 2 the hero's UNet batch partner is the same panel in every set (as a shard's is)
    pair_four = (NEIGHBOURS[:2] + [HERO, NEIGHBOURS[5]], 2, None)
    pair_seven = (NEIGHBOURS[1:3] + [HERO, NEIGHBOURS[5]] + NEIGHBOURS[2:5], 2, None)
    pair_shard = (NEIGHBOURS[:2] + [HERO, NEIGHBOURS[5]], 2, (2, 3))
    return [pair_four, pair_seven, pair_shard]


@pytest.mark.parametrize("micro_batch", [1, 2])
def test_a_panel_is_the_same_alone_in_four_and_in_seven(engine, micro_batch):
    runs = [_final_latents(engine, panels, hero_at, micro_batch, only) for panels, hero_at, only in _sets(micro_batch)]
    reference, hero = runs[0]
    for other_reference, other_hero in runs[1:]:
        assert torch.equal(other_reference, reference)
        assert torch.equal(other_hero, hero)


def test_a_panel_naming_a_character_is_the_same_alone_in_four_and_in_seven(engine):
    """Characters (spec section 13) keep the promise: the anchors do not depend on the panels,
    and a panel's share of them (its dropout) on nothing but its own seed and place in the net."""
    hero = Panel("[Mira] walks in a snowy forest, gouache", 77)
    named = [Panel(f"[Mira] {p.prompt}", p.seed) if i % 2 else p for i, p in enumerate(NEIGHBOURS)]
    sets = [([hero], 0), (named[:2] + [hero] + named[2:3], 2), (named[3:7] + [hero] + named[:2], 4)]
    runs = [_final_latents(engine, panels, at, 1, characters=(MIRA,)) for panels, at in sets]
    reference, alone = runs[0]
    for other_reference, other in runs[1:]:
        assert torch.equal(other_reference, reference)
        assert torch.equal(other, alone)


def test_the_prompts_are_encoded_the_same_whoever_shares_the_set(tiny_pipe):
    prompts = [HERO.prompt] + [p.prompt for p in NEIGHBOURS]
    alone = Engine._encode(tiny_pipe, [HERO.prompt], "blurry", True)
    together = Engine._encode(tiny_pipe, prompts[3:] + prompts[:3], "blurry", True)
    hero_row = len(prompts) - 3
    for part in ("embeds", "pooled", "negative_embeds", "negative_pooled"):
        assert torch.equal(getattr(together, part)[hero_row], getattr(alone, part)[0]), part


@pytest.mark.skipif(os.environ.get("MKL_ENABLE_INSTRUCTIONS") == "AVX2", reason="already the AVX2 run")
def test_the_same_holds_with_mkl_on_its_avx2_path():
    """MKL_ENABLE_INSTRUCTIONS=AVX2 makes MKL round as it does on AMD EPYC machines, where the sets
    of a shard and of the whole run once differed."""
    env = dict(os.environ, MKL_ENABLE_INSTRUCTIONS="AVX2", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                           "-k", "not avx2_path"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
