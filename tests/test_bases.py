"""SD 1.5, SD 2 and SD 2-v beside SDXL (issue 26, spec section 14): the engine on the tiny SD
models against diffusers' own StableDiffusionPipeline and the spec's naive attention."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.attention import SharedSelfAttnProcessor, SharingState
from stylealigned_desktop.engine.bases import SD1, SD2, SDXL, base_of
from stylealigned_desktop.engine.generator import Engine, initial_noise, make_scheduler
from stylealigned_desktop.engine.install import Installation, self_attention_names
from stylealigned_desktop.engine.preview import latent_to_rgb
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.engine.tiny import build_tiny_pipeline

from .naive import shared_attention_np

WIDTH, HEIGHT, STEPS = 192, 128, 3
PROMPTS = ["a toy train", "a boat at dusk", "a red car"]
SEEDS = [5, 6, 7]
OFF = StyleAlignedSettings(share_attention=False, adain_queries=False, adain_keys=False, adain_values=False,
                           share_group_norm=False)


@pytest.fixture(scope="module")
def pipes():
    return {name: build_tiny_pipeline(name) for name in ("tiny-sd15", "tiny-sd2", "tiny-sd2v")}


def _engine(pipe):
    return Engine(loader=lambda *args, **kwargs: pipe)


def _request(model, settings, scheduler="euler", guidance=5.0, **kwargs):
    return SetRequest(model=model, style=GeneratedReference(PROMPTS[0], SEEDS[0]),
                      panels=tuple(Panel(p, s) for p, s in zip(PROMPTS[1:], SEEDS[1:])),
                      sampling=Sampling(steps=STEPS, guidance=guidance, width=WIDTH, height=HEIGHT,
                                        scheduler=scheduler),
                      settings=settings, **kwargs)


def _diffusers(pipe, prompts, seeds, scheduler, guidance=5.0):
    """diffusers' own pipeline on the same starting noise and scheduler."""
    latents = torch.cat([initial_noise(s, HEIGHT, WIDTH) for s in seeds])
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(original.config, scheduler)
    try:
        return pipe(prompts, latents=latents, num_inference_steps=STEPS, guidance_scale=guidance, height=HEIGHT,
                    width=WIDTH, output_type="latent").images
    finally:
        pipe.scheduler = original


@pytest.mark.parametrize("name, scheduler", [("tiny-sd15", "euler"), ("tiny-sd2v", "dpmpp-2m")])
def test_with_sharing_off_a_panel_equals_diffusers_stable_diffusion_pipeline(pipes, name, scheduler):
    result = _engine(pipes[name]).generate(_request(name, OFF, scheduler, micro_batch=1))
    for position, (prompt, seed) in enumerate(zip(PROMPTS[1:], SEEDS[1:])):
        alone = _diffusers(pipes[name], [prompt], [seed], scheduler)
        torch.testing.assert_close(result.latents[position], alone[0], rtol=0, atol=1e-4)


class _NaiveAttention(SharedSelfAttnProcessor):
    """diffusers' processor plumbing around the spec's naive attention (numpy, float64)."""

    def attend(self, q, k, v, scale):
        out = shared_attention_np(q.numpy(), k.numpy(), v.numpy(), self.state.settings, 2, scale)
        return torch.from_numpy(out).to(q.dtype)


# spec section 6 for L = 16 written out: level 0.3 -> k = floor(4.8) = 4, every floor(16 / 4) = 4th
# layer from 0 unshared; level 0.7 -> flip, l' = 0.3, the same 4 layers are the shared ones
# (SDXL's L = 70 would pick every 3rd)
UNSHARED = {0.3: {0, 4, 8, 12}, 0.7: set(range(16)) - {0, 4, 8, 12}}


@pytest.mark.parametrize("name, level", [("tiny-sd15", 0.3), ("tiny-sd2", 0.7)])
def test_prompts_only_sets_equal_the_naive_spec_on_diffusers_pipeline(pipes, name, level):
    pipe = pipes[name]
    settings = StyleAlignedSettings(only_self_level=level, shared_score_shift=0.3, adain_values=True)
    result = _engine(pipe).generate(_request(name, settings, "ddim", micro_batch=1))
    names = self_attention_names(pipe.unet)
    assert len(names) == 16
    before = dict(pipe.unet.attn_processors)
    state = SharingState(settings)
    pipe.unet.set_attn_processor({**before, **{n: _NaiveAttention(state, n) for i, n in enumerate(names)
                                               if i not in UNSHARED[level]}})
    try:
        naive = _diffusers(pipe, PROMPTS, SEEDS, "ddim")
    finally:
        pipe.unet.set_attn_processor(before)
    plain = _diffusers(pipe, PROMPTS, SEEDS, "ddim")
    assert (naive[1:] - plain[1:]).abs().max() > 1e-3  # the shared layers change the panels
    torch.testing.assert_close(result.latents[None], naive[0], rtol=0, atol=1e-4)
    for position in (0, 1):
        torch.testing.assert_close(result.latents[position], naive[1 + position], rtol=0, atol=1e-4)


def test_only_self_level_counts_the_models_own_self_attention_layers():
    from diffusers import UNet2DConditionModel

    from stylealigned_desktop.engine.attention import unshared_layer_mask
    from stylealigned_desktop.engine.tiny import tiny_unet_config

    # an SD UNet with one layer per block: 3 + 1 + 6 = 10 self-attention layers, not SD's 16
    unet = UNet2DConditionModel(**dict(tiny_unet_config("tiny-sd15"), layers_per_block=1))
    names = self_attention_names(unet)
    assert len(names) == 10
    installation = Installation(unet, StyleAlignedSettings(only_self_level=0.25))
    try:  # L = 10: k = 2, every floor(10 / 2) = 5th layer from 0 unshared (L = 16 or 70: every 4th)
        assert installation.shared_layers == [n for i, n in enumerate(names) if i % 5]
        assert unshared_layer_mask(10, 0.25).count(True) == 2
    finally:
        installation.remove()


def test_bases_are_told_from_the_model(pipes, tiny_pipe):
    sd15, sd2, sd2v = (base_of(pipes[n]) for n in ("tiny-sd15", "tiny-sd2", "tiny-sd2v"))
    assert (sd15.family, sd2.family, sd2v.family, base_of(tiny_pipe).family) == ("sd1", "sd2", "sd2", "sdxl")
    assert (sd2.prediction_type, sd2v.prediction_type) == ("epsilon", "v_prediction")
    assert sd15.native_size == 128 and not sd15.added_conditioning and base_of(tiny_pipe).added_conditioning
    # the published widths of the real models decide before the structure does
    from stylealigned_desktop.engine.bases import family_of_unet

    assert family_of_unet({"cross_attention_dim": 768, "use_linear_projection": True}) is SD1
    assert family_of_unet({"cross_attention_dim": 1024}) is SD2
    assert family_of_unet({"cross_attention_dim": 2048, "addition_embed_type": "text_time"}) is SDXL
    assert (SDXL.self_attention_layers, SD1.self_attention_layers, SD2.self_attention_layers) == (70, 16, 16)


def test_v_prediction_converts_to_the_epsilon_and_x0_ddim_derives(pipes):
    """DDIM stepping a v output equals DDIM stepping the ε the base converts it to."""
    base = base_of(pipes["tiny-sd2v"])
    config = dict(pipes["tiny-sd2v"].scheduler.config)
    v_ddim = DDIMScheduler.from_config(config)
    eps_ddim = DDIMScheduler.from_config(config, prediction_type="epsilon")
    g = torch.Generator().manual_seed(0)
    sample, output = torch.randn(1, 4, 8, 12, generator=g), torch.randn(1, 4, 8, 12, generator=g)
    for scheduler in (v_ddim, eps_ddim):
        scheduler.set_timesteps(10)
    t = int(v_ddim.timesteps[3])
    alpha = v_ddim.alphas_cumprod[t]
    by_v = v_ddim.step(output, t, sample)
    by_eps = eps_ddim.step(base.epsilon(output, sample, alpha), t, sample)
    torch.testing.assert_close(by_eps.prev_sample, by_v.prev_sample, rtol=0, atol=1e-5)
    torch.testing.assert_close(base.x0(output, sample, alpha), by_v.pred_original_sample, rtol=0, atol=1e-5)


def _pixels(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32))


def test_sd_previews_use_the_sd_latent_factors_and_the_schedulers_x0(pipes, monkeypatch):
    seen = []
    engine = Engine(loader=lambda *args, **kwargs: pipes["tiny-sd2v"], preview_budget=float("inf"))  # every preview
    result = engine.generate(_request("tiny-sd2v", StyleAlignedSettings(), "ddim", micro_batch=2, previews="factors"),
                             seen.append)
    last = [e for e in seen if isinstance(e, ev.Preview) and e.step == STEPS]
    assert len(last) == 3
    # after the last DDIM step the predicted x0 of step T is what the final latent was stepped to
    expected = latent_to_rgb(result.latents[0], "sd15")
    shown = next(e for e in last if e.index == 0).image
    diff = _pixels(shown) - _pixels(expected)
    assert diff.abs().max() <= 12  # x0 of the last step against the final latent (DDIM: nearly equal)
    sdxl_look = latent_to_rgb(result.latents[0], "sdxl")
    other = _pixels(shown) - _pixels(sdxl_look)
    assert other.abs().mean() > 3 * diff.abs().mean()


def test_pipeline_classes_follow_the_base(pipes, tiny_pipe):
    assert isinstance(pipes["tiny-sd15"], StableDiffusionPipeline)
    assert isinstance(tiny_pipe, StableDiffusionXLPipeline)


def _lora_file(path, tensors):
    from safetensors.torch import save_file

    save_file({key: torch.zeros(shape) for key, shape in tensors.items()}, str(path))
    return path


_KOHYA_SDXL = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
_KOHYA_SD = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"


@pytest.mark.parametrize("tensors, words", [
    ({f"{_KOHYA_SDXL}.lora_down.weight": (8, 2048), f"{_KOHYA_SDXL}.lora_up.weight": (640, 8)},
     "style.safetensors is a LoRA for SDXL; this model is SD 1.5. Use a LoRA trained for SD 1.5"),
    ({"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (8, 768),
      "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (8, 1280)},
     "style.safetensors is a LoRA for SDXL (two text encoders); this model is SD 1.5"),
    ({f"{_KOHYA_SD}.lora_down.weight": (4, 1024), f"{_KOHYA_SD}.lora_up.weight": (320, 4)},
     "style.safetensors is a LoRA for SD 2.x; this model is SD 1.5"),
])
def test_a_lora_of_another_base_is_refused_on_sd15_naming_both_bases(tmp_path, tensors, words):
    from stylealigned_desktop.engine.lora import LoraError, check_lora_file
    from stylealigned_desktop.engine.request import Lora

    lora = Lora(str(_lora_file(tmp_path / "style.safetensors", tensors)), 1.0)
    with pytest.raises(LoraError) as refusal:
        check_lora_file(lora, SD1)
    assert str(refusal.value).startswith(words)
    check_lora_file(lora)  # no model at hand: what the file is passes, the engine checks the base


def test_sd15_loras_pass_on_sd15_and_an_sdxl_lora_is_refused_before_any_step(pipes, tmp_path):
    from stylealigned_desktop.engine.lora import LoraError, check_lora_file
    from stylealigned_desktop.engine.request import Lora

    sd15 = Lora(str(_lora_file(tmp_path / "sd15.safetensors", {
        f"{_KOHYA_SD}.lora_down.weight": (4, 768), f"{_KOHYA_SD}.lora_up.weight": (320, 4),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768)})), 1.0)
    assert check_lora_file(sd15, SD1) == tmp_path / "sd15.safetensors"
    sdxl = Lora(str(_lora_file(tmp_path / "ink-xl.safetensors", {
        f"{_KOHYA_SDXL}.lora_down.weight": (8, 2048), f"{_KOHYA_SDXL}.lora_up.weight": (640, 8)})), 1.0)
    seen = []
    with pytest.raises(LoraError, match="ink-xl.safetensors is a LoRA for SDXL; this model is SD 1.5"):
        _engine(pipes["tiny-sd15"]).generate(_request("tiny-sd15", OFF, loras=(sdxl,)), seen.append)
    assert not [e for e in seen if isinstance(e, (ev.Step, ev.Preview))]
    assert isinstance(seen[-1], ev.Failed) and "SD 1.5" in seen[-1].message


def test_each_base_takes_its_own_default_controlnets_and_sd2_asks_for_one(pipes, tiny_pipe, monkeypatch):
    """Spec section 14: SD 1.5's defaults are lllyasviel's v1.1 ControlNets, SDXL's diffusers'
    own; SD 2 has none, so a panel's control map on it asks for one made for SD 2 (a hub model
    by its id: the built-in tiny models take their own random ControlNet instead)."""
    from stylealigned_desktop.engine.control import ControlError, ControlNetCache

    asked = []
    monkeypatch.setattr(ControlNetCache, "get", lambda self, source, *args, **kwargs: asked.append(source))
    monkeypatch.setattr("stylealigned_desktop.engine.memory.place_like_unet", lambda pipe, net: None)
    engine = Engine()

    def default(pipe, kind, model="someone/a-model"):
        asked.clear()
        engine.controlnet(_request(model, StyleAlignedSettings()), kind, pipe)
        return asked[0]

    assert default(pipes["tiny-sd15"], "canny") == "lllyasviel/control_v11p_sd15_canny"
    assert default(pipes["tiny-sd15"], "depth") == "lllyasviel/control_v11f1p_sd15_depth"
    assert default(tiny_pipe, "depth") == "diffusers/controlnet-depth-sdxl-1.0"
    assert default(pipes["tiny-sd2"], "canny", model="tiny-sd2") == "tiny-sd2"
    for name in ("tiny-sd2", "tiny-sd2v"):
        with pytest.raises(ControlError, match="SD 2.x has no default ControlNet for depth maps: choose one made for SD 2.x"):
            default(pipes[name], "depth")
