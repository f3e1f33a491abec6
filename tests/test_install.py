"""style_aligned(pipe, settings) on a real diffusers SDXL pipeline (the tiny model)."""

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn

from stylealigned_desktop.engine.attention import (
    SharedSelfAttnProcessor,
    SharingState,
    unshared_layer_mask,
)
from stylealigned_desktop.engine.generator import initial_noise
from stylealigned_desktop.engine.install import self_attention_names, style_aligned
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .naive import shared_attention_np, shared_group_norm_by_concatenation

SIZE = 128
KW = dict(num_inference_steps=3, height=SIZE, width=SIZE, output_type="latent")


def _latents(seeds):
    return torch.cat([initial_noise(s, SIZE, SIZE) for s in seeds])


def _run(pipe, prompts, seeds, **kwargs):
    return pipe(prompts, latents=_latents(seeds), **KW, **kwargs).images


class CountingProcessor(AttnProcessor2_0):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return super().__call__(*args, **kwargs)


@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_reference_row_equals_generating_the_reference_alone(tiny_pipe, guidance):
    alone = _run(tiny_pipe, ["a toy train"], [11], guidance_scale=guidance)
    settings = StyleAlignedSettings(share_group_norm=True, shared_score_shift=0.69, adain_values=True)
    with style_aligned(tiny_pipe, settings):
        batch = _run(tiny_pipe, ["a toy train", "a boat", "a car"], [11, 12, 13], guidance_scale=guidance)
    torch.testing.assert_close(batch[0], alone[0], rtol=0, atol=1e-4)


def test_panels_change_and_the_pipeline_is_plain_again_afterwards(tiny_pipe):
    prompts, seeds = ["a toy train", "a boat", "a car"], [1, 2, 3]
    plain = _run(tiny_pipe, prompts, seeds)
    with style_aligned(tiny_pipe):
        aligned = _run(tiny_pipe, prompts, seeds)
    after = _run(tiny_pipe, prompts, seeds)
    assert (aligned[1:] - plain[1:]).abs().max() > 1e-2
    torch.testing.assert_close(after, plain, rtol=0, atol=0)


def test_without_cfg_only_one_reference(tiny_pipe):
    """Guidance 1: the authors' code would treat row B/2 as a second, unshared reference."""
    prompts, seeds = ["ref", "a", "b", "c"], [1, 2, 3, 4]
    with style_aligned(tiny_pipe):
        aligned = _run(tiny_pipe, prompts, seeds, guidance_scale=1.0)
    row2_alone = _run(tiny_pipe, ["b"], [3], guidance_scale=1.0)
    assert (aligned[2] - row2_alone[0]).abs().max() > 1e-2


def test_restores_exactly_the_previous_processors_and_norm_forwards(tiny_pipe):
    unet = tiny_pipe.unet
    names = self_attention_names(unet)
    before = dict(unet.attn_processors)
    custom_self, custom_cross = CountingProcessor(), CountingProcessor()
    cross_name = next(n for n in before if n not in names)
    unet.set_attn_processor({**before, names[0]: custom_self, cross_name: custom_cross})
    norms = [m for m in unet.modules() if isinstance(m, nn.GroupNorm)]
    wrapped = norms[0]

    def wrapped_forward(x, _orig=nn.GroupNorm.forward, _m=wrapped):
        return _orig(_m, x)

    wrapped.forward = wrapped_forward
    try:
        saved = dict(unet.attn_processors)
        settings = StyleAlignedSettings(share_group_norm=True)
        with style_aligned(tiny_pipe, settings) as inst:
            procs = unet.attn_processors
            assert all(isinstance(procs[n], SharedSelfAttnProcessor) for n in names)
            assert procs[cross_name] is custom_cross  # other processors keep working
            _run(tiny_pipe, ["a", "b"], [1, 2])
            assert custom_cross.calls > 0
            assert all("forward" in m.__dict__ for m in norms)
            assert inst.shared_layers == names
        after = unet.attn_processors
        assert set(after) == set(saved) and all(after[n] is saved[n] for n in saved)
        assert wrapped.forward is wrapped_forward
        assert all("forward" not in m.__dict__ for m in norms[1:])
        # an exception inside the block restores too
        with pytest.raises(RuntimeError), style_aligned(tiny_pipe, settings):
            raise RuntimeError("boom")
        assert all(unet.attn_processors[n] is saved[n] for n in saved)
    finally:
        del wrapped.forward
        unet.set_attn_processor(before)


def test_only_self_level_leaves_the_chosen_layers_untouched(tiny_pipe):
    names = self_attention_names(tiny_pipe.unet)
    before = dict(tiny_pipe.unet.attn_processors)
    level = 0.4
    mask = unshared_layer_mask(len(names), level)
    with style_aligned(tiny_pipe, StyleAlignedSettings(only_self_level=level)) as inst:
        procs = tiny_pipe.unet.attn_processors
        for name, unshared in zip(names, mask):
            assert (procs[name] is before[name]) == unshared
        assert len(inst.shared_layers) == mask.count(False) > 0
    # cross-attention never shares
    assert all(not isinstance(p, SharedSelfAttnProcessor) for p in tiny_pipe.unet.attn_processors.values())


def test_self_attention_layers_are_the_attn1_layers_in_unet_order(tiny_pipe):
    names = self_attention_names(tiny_pipe.unet)
    assert names and all(".attn1." in n for n in names)
    all_attn1 = [n for n in tiny_pipe.unet.attn_processors if ".attn1." in n]
    assert names == all_attn1


def test_rejects_objects_without_a_unet():
    with pytest.raises(TypeError, match="UNet"), style_aligned(object()):
        pass


class _NaiveAttention(SharedSelfAttnProcessor):
    """diffusers' processor plumbing around the spec's naive attention (numpy, float64)."""

    def attend(self, q, k, v, scale):
        out = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), self.state.settings, 2, scale)
        return torch.from_numpy(out).to(q.dtype)


def test_full_attention_share_keeps_only_self_level_and_shared_group_norm(tiny_pipe):
    """Spec 2, 5, 6: the three settings are independent. Full sharing applies in the layers
    only_self_level leaves shared, the others stay plain, and GroupNorm is still pooled."""
    unet = tiny_pipe.unet
    settings = StyleAlignedSettings(full_attention_share=True, only_self_level=0.4, share_group_norm=True)
    g = torch.Generator().manual_seed(3)
    rows = 3
    latents = torch.randn(2 * rows, 4, 8, 16, generator=g)  # a non-square latent, 2 CFG halves
    text = torch.randn(2 * rows, 77, 64, generator=g)
    added = {"text_embeds": torch.randn(2 * rows, 32, generator=g),
             "time_ids": torch.tensor([[64.0, 128.0, 0.0, 0.0, 64.0, 128.0]]).repeat(2 * rows, 1)}

    def run():
        return unet(latents, torch.tensor(500), encoder_hidden_states=text, added_cond_kwargs=added,
                    return_dict=False)[0]

    with torch.no_grad():
        plain = run()
        with style_aligned(tiny_pipe, settings):
            installed = run()
        names = self_attention_names(unet)
        before = dict(unet.attn_processors)
        naive_state = SharingState(settings)
        mask = unshared_layer_mask(len(names), settings.only_self_level)
        assert 0 < mask.count(True) < len(names)
        unet.set_attn_processor({**before, **{n: _NaiveAttention(naive_state, n)
                                             for n, off in zip(names, mask) if not off}})
        norms = [m for m in unet.modules() if isinstance(m, nn.GroupNorm)]
        for norm in norms:
            norm.forward = lambda x, _norm=norm: shared_group_norm_by_concatenation(_norm, x, 2)
        try:
            naive = run()
        finally:
            for norm in norms:
                del norm.forward
            unet.set_attn_processor(before)
    assert (installed - plain).abs().max() > 1e-3
    torch.testing.assert_close(installed, naive, rtol=1e-4, atol=1e-4)
