"""Every feature on the SD bases (issue 26): ControlNet per panel against diffusers'
StableDiffusionControlNetPipeline, v-prediction inversion, the base told from folders and files
(never their names), mixed sizes with weighted references and the memory modes, the CLI."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionControlNetPipeline, StableDiffusionPipeline
from PIL import Image, ImageDraw

from stylealigned_desktop.engine.bases import SD1, SD2, SDXL
from stylealigned_desktop.engine.control import tiny_controlnet
from stylealigned_desktop.engine.denoise import decode_latent
from stylealigned_desktop.engine.generator import Engine, initial_noise, make_scheduler
from stylealigned_desktop.engine.images import fit_picture, load_picture
from stylealigned_desktop.engine.inversion import encode_picture, invert
from stylealigned_desktop.engine.models import base_of_source, load_pipeline, pipeline_class
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings
from stylealigned_desktop.engine.tiny import build_tiny_pipeline, save_tiny_pipeline

WIDTH, HEIGHT = 192, 128
NO_SHARING = StyleAlignedSettings(share_attention=False, adain_queries=False, adain_keys=False,
                                  adain_values=False, share_group_norm=False)


@pytest.fixture(scope="module")
def sd15():
    return build_tiny_pipeline("tiny-sd15")


@pytest.fixture(scope="module")
def sd2v():
    return build_tiny_pipeline("tiny-sd2v")


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "mood.png"
    image = Image.new("RGB", (210, 140), (20, 30, 90))
    ImageDraw.Draw(image).ellipse((40, 20, 150, 130), fill=(250, 160, 20))
    image.save(path)
    return path


def _engine(pipe):
    return Engine(loader=lambda *args, **kwargs: pipe)


def _edge_map(folder, name, box):
    image = Image.new("RGB", (WIDTH, HEIGHT), "black")
    ImageDraw.Draw(image).rectangle(box, outline="white", width=2)
    image.save(folder / name)
    return folder / name


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sd2v"])
def test_controlled_sd_panels_equal_diffusers_controlnet_pipeline(request, tmp_path, name):
    """With sharing off, each controlled panel at 192x128 (Euler) is what diffusers' own SD
    ControlNet pipeline draws with the tiny SD ControlNet, the prompt, noise, map and strength;
    on SD 1.5 and on SD 2.1-768's v-prediction."""
    model = request.getfixturevalue({"tiny-sd15": "sd15", "tiny-sd2v": "sd2v"}[name])
    steps = 4
    controls = [PanelControl(str(_edge_map(tmp_path, "a.png", (10, 8, 90, 70))), "map", map_kind="canny",
                             scale=0.7, guidance_start=0.25),
                PanelControl(str(_edge_map(tmp_path, "b.png", (100, 4, 180, 100))), "map", map_kind="canny",
                             scale=1.3)]
    panels = (Panel("a red car", 5, controls[0]), Panel("a blue boat", 6, controls[1]))
    run = SetRequest(model=name, style=GeneratedReference("a toy train", 1), panels=panels,
                     sampling=Sampling(steps=steps, guidance=5.0, width=WIDTH, height=HEIGHT, scheduler="euler"),
                     settings=NO_SHARING, micro_batch=2)
    result = _engine(model).generate(run)
    controlnet = tiny_controlnet(model.unet, name)  # what the engine builds for the tiny model
    pipe = StableDiffusionControlNetPipeline(**model.components, controlnet=controlnet)
    pipe.scheduler = make_scheduler(model.scheduler.config, "euler")
    pipe.set_progress_bar_config(disable=True)
    for index, (panel, control) in enumerate(zip(panels, controls)):
        with Image.open(control.image) as image:
            expected = pipe(panel.prompt, image=image.convert("RGB"), num_inference_steps=steps, guidance_scale=5.0,
                            height=HEIGHT, width=WIDTH, latents=initial_noise(panel.seed, HEIGHT, WIDTH),
                            controlnet_conditioning_scale=control.scale, control_guidance_start=control.guidance_start,
                            output_type="latent").images
        error = float((result.latents[index] - expected[0]).norm() / expected[0].norm())
        assert error < 1e-4, index
    plain = _engine(model).generate(dataclasses.replace(run, panels=tuple(Panel(p.prompt, p.seed) for p in panels)))
    assert float((plain.latents[1] - result.latents[1]).abs().max()) > 1e-3  # the control acts


@pytest.fixture(scope="module")
def smooth_sd2v(sd2v):
    """tiny-sd2v with its output damped 10x (as test_inversion's smooth_pipe: the random UNet's
    output changes too much between neighbouring levels for a measurable round trip)."""
    pipe = StableDiffusionPipeline(**{**sd2v.components, "unet": copy.deepcopy(sd2v.unet)}, requires_safety_checker=False)
    with torch.no_grad():
        pipe.unet.conv_out.weight.mul_(0.1)
        pipe.unet.conv_out.bias.mul_(0.1)
    pipe.scheduler = DDIMScheduler.from_config(sd2v.scheduler.config, clip_sample=False, set_alpha_to_one=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_v_prediction_inversion_round_trip_reproduces_z0(smooth_sd2v, guidance):
    """Invert, denoise traj[0] with diffusers' own v-prediction DDIM at the same guidance (an
    SD 2 base: no pooled embedding, unguided or guided): z0 again. Measured relative errors:
    0.108 at 4 steps, 0.0022 at 50 at either guidance; denoising at the other guidance gives
    0.0075-0.0083 at 50; taking v for ε gives 0.83 and 0.93."""
    assert smooth_sd2v.scheduler.config.prediction_type == "v_prediction"
    z0 = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(2))
    errors = []
    for steps in (4, 50):
        traj = invert(smooth_sd2v, z0, "a red boat", steps, guidance, 96, 64)
        back = smooth_sd2v("a red boat", num_inference_steps=steps, guidance_scale=guidance, width=96, height=64,
                           latents=traj[0], output_type="latent").images
        errors.append(float((back - z0).norm() / z0.norm()))
    assert errors[0] < 0.2 and errors[1] < 0.005 and errors[1] < 0.1 * errors[0]


def test_sd2v_reference_picture_is_its_vae_round_trip_and_shapes_the_panels(sd2v, picture, tmp_path):
    request = SetRequest(model="tiny-sd2v", style=ReferencePicture(str(picture), "a sunset", inversion_offset=1),
                         panels=(Panel("a car", 3), Panel("a boat", 4)),
                         sampling=Sampling(steps=3, guidance=7.0, width=WIDTH, height=HEIGHT, scheduler="dpmpp-2m"),
                         settings=StyleAlignedSettings.for_reference_image(), cache_dir=str(tmp_path / "cache"))
    result = _engine(sd2v).generate(request)
    z0 = encode_picture(sd2v, fit_picture(load_picture(picture), WIDTH, HEIGHT))
    expected = np.asarray(decode_latent(sd2v, z0), int)
    assert np.abs(np.asarray(result.reference, int) - expected).max() <= 1
    alone = _engine(sd2v).generate(dataclasses.replace(request, settings=NO_SHARING))
    assert float((alone.latents[0] - result.latents[0]).abs().max()) > 1e-3  # the picture's style acts


def test_the_base_is_told_from_a_folder_not_its_name(tmp_path):
    misleading = save_tiny_pipeline(tmp_path / "stable-diffusion-xl-base-1.0", "tiny-sd15")
    also = save_tiny_pipeline(tmp_path / "sd15-pruned", "tiny")
    assert base_of_source(str(misleading)).family == "sd1" and base_of_source(str(also)).family == "sdxl"
    loaded = load_pipeline(str(misleading))
    assert isinstance(loaded, StableDiffusionPipeline) and loaded.safety_checker is None
    assert pipeline_class(str(also)).__name__ == "StableDiffusionXLPipeline"
    # the UNet config decides: the same folder with an SD 2 UNet config is SD 2
    config = json.loads((misleading / "unet" / "config.json").read_text())
    (misleading / "unet" / "config.json").write_text(json.dumps({**config, "use_linear_projection": True}))
    assert base_of_source(str(misleading)).family == "sd2"


@pytest.mark.parametrize("prefix, base", [("cond_stage_model.transformer.text_model.", SD1),
                                          ("cond_stage_model.model.transformer.", SD2),
                                          ("conditioner.embedders.1.model.transformer.", SDXL)])
def test_the_base_of_a_single_file_is_told_by_its_tensor_names(tmp_path, prefix, base):
    from safetensors.torch import save_file

    path = tmp_path / "sdxl-turbo-not-really.safetensors"  # the name says nothing true
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 4, 3, 3),
               f"{prefix}resblocks.0.attn.in_proj_weight": torch.zeros(3, 2)}, str(path))
    assert base_of_source(str(path)) == base
    expected = "StableDiffusionXLPipeline" if base is SDXL else "StableDiffusionPipeline"
    assert pipeline_class(str(path)).__name__ == expected


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sd2v"])
def test_mixed_sizes_weighted_references_and_memory_modes_on_sd_bases(request, picture, tmp_path, name):
    model = request.getfixturevalue({"tiny-sd15": "sd15", "tiny-sd2v": "sd2v"}[name])

    def run(memory, micro_batch):
        return SetRequest(model=name,
                          style=(GeneratedReference("a toy train", 1, weight=0.7),
                                 ReferencePicture(str(picture), "a sunset", weight=0.3)),
                          panels=(Panel("a car", 3, size=(128, 192)), Panel("a boat", 4), Panel("a cat", 5)),
                          sampling=Sampling(steps=2, guidance=5.0, width=WIDTH, height=HEIGHT, scheduler="ddim"),
                          settings=StyleAlignedSettings(share_group_norm=True), cache_dir=str(tmp_path / "cache"),
                          memory=memory, micro_batch=micro_batch)

    fast = _engine(model).generate(run("fast", 2))
    assert tuple(fast.latents[0].shape) == (4, 24, 16) and tuple(fast.latents[1].shape) == (4, 16, 24)
    for memory in ("balanced", "low"):  # the tiny model by name through the real loader, offloaded
        offloaded = Engine().generate(run(memory, 1))
        for key in fast.latents:
            torch.testing.assert_close(offloaded.latents[key], fast.latents[key], rtol=0, atol=1e-4)


def test_cli_generates_with_an_sd_model_and_no_time_ids(tmp_path, monkeypatch):
    from diffusers import UNet2DConditionModel

    from stylealigned_desktop import cli

    added = []
    forward = UNet2DConditionModel.forward

    def recording(self, *args, **kwargs):
        added.append(kwargs.get("added_cond_kwargs"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", recording)
    code = cli.main(["generate", "--model", "tiny-sd2v", "--steps", "2", "--width", "192", "--height", "128",
                     "--quiet", "--reference-prompt", "a castle", "--prompt", "a knight", "--prompt", "a horse",
                     "--out", str(tmp_path / "run")])
    assert code == 0 and added and all(kwargs is None for kwargs in added)  # SD: no pooled text, no time ids
    with Image.open(tmp_path / "run" / "panel-02.png") as image:
        assert image.size == (192, 128)


def test_a_vae_of_another_base_is_refused_before_any_step_naming_both(tmp_path):
    from stylealigned_desktop.engine import events as ev
    from stylealigned_desktop.engine.models import ModelSourceError
    from stylealigned_desktop.engine.tiny import build_tiny_components

    sdxl_vae = build_tiny_components("tiny")["vae"]
    sdxl_vae.save_pretrained(tmp_path / "xl-vae", safe_serialization=True)
    sd_vae = build_tiny_components("tiny-sd15")["vae"]
    sd_vae.save_pretrained(tmp_path / "sd-vae", safe_serialization=True)

    def request(vae):
        return SetRequest(model="tiny-sd2", style=GeneratedReference("a toy train", 1), panels=(Panel("a car", 2),),
                          sampling=Sampling(steps=1, width=128, height=128), vae=str(vae))

    seen = []
    with pytest.raises(ModelSourceError, match=r"VAE xl-vae is made for SDXL .*; this model is SD 2\.x"):
        Engine().generate(request(tmp_path / "xl-vae"), seen.append)
    assert not [e for e in seen if isinstance(e, (ev.Step, ev.Preview))] and isinstance(seen[-1], ev.Failed)
    result = Engine().generate(request(tmp_path / "sd-vae"))  # SD 1.x and 2.x share their VAE
    assert result.panels[0].size == (128, 128)


def test_the_command_line_defaults_to_the_models_native_size(tmp_path):
    from stylealigned_desktop.cli import build_generate_request, build_parser

    folder = save_tiny_pipeline(tmp_path / "model", "tiny-sd2v")
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, "sample_size": 96}))  # SD 2.1-768's

    def sampling(*args):
        return build_generate_request(build_parser().parse_args(
            ["generate", *args, "--reference-prompt", "a hill", "--prompt", "a fox", "--out", str(tmp_path / "out")]
        )).sampling

    assert (sampling("--model", str(folder)).width, sampling("--model", str(folder)).height) == (768, 768)
    assert sampling("--model", "tiny-sd15").width == 128
    assert (sampling("--model", str(folder), "--width", "640").width, sampling("--model", str(folder)).height) \
        == (640, 768)


def test_auto_memory_plans_with_the_bases_own_weights(monkeypatch):
    """An SD 1.5 model's weights are a third of SDXL's: on a 6 GB card auto keeps it whole on the
    GPU at 512 px where SDXL must move its models, and says which base it planned."""
    from stylealigned_desktop.engine import memory as mem

    monkeypatch.setattr(mem, "device_total_gb", lambda device: 6.0)
    monkeypatch.setattr("stylealigned_desktop.engine.generator.resolve_device", lambda d: torch.device("meta"))

    def auto(model):
        seen = []
        request = SetRequest(model=model, style=GeneratedReference("x"), panels=(Panel("y", 1),), dtype="float16",
                             sampling=Sampling(width=512, height=512))
        return Engine._memory_mode(request, seen.append), seen[0].message

    sd15_mode, sd15_reason = auto("tiny-sd15")
    sdxl_mode, sdxl_reason = auto("tiny")
    assert sd15_mode == "fast" and sdxl_mode != "fast"
    assert "SD 1.5 at 512x512" in sd15_reason and "SDXL at 512x512" in sdxl_reason
    weights = mem.stage_peaks_gb("balanced", mem.Workload(512, 512, family="sd2"), 1)["encode"]
    assert weights == pytest.approx(0.681 * 0.85 + mem.TEXT_ENCODE_GB)  # SD 2's OpenCLIP text encoder


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sd2v"])
def test_characters_and_a_sharded_set_on_the_sd_bases_give_the_local_pixels(model):
    """Spec section 13 and the server's sharding on a one-encoder base (v-prediction too): the
    named panels get masks at the base's deepest cross-attention grid, a panel naming no one is
    the set without characters, and each shard of the set is the local run's pixels."""
    from stylealigned_desktop.engine import events as ev
    from stylealigned_desktop.engine.request import Character
    from stylealigned_desktop.server.sharding import plan_shards

    pipe = build_tiny_pipeline(model)
    engine = Engine(loader=lambda *args, **kwargs: pipe)
    mira = Character("Mira", "a girl in a yellow raincoat", anchor_seeds=(5, 6), anchor_text=", ink")
    panels = (Panel("[Mira] runs in the rain, ink", 20), Panel("a house by the sea, ink", 21),
              Panel("[Mira] waves, ink", 22), Panel("a boat, ink", 23))

    def request(characters=(mira,), **kwargs):
        named = panels if characters else tuple(  # the description in place of the name
            dataclasses.replace(p, prompt=p.prompt.replace("[Mira]", mira.description)) for p in panels)
        return SetRequest(model=model, style=GeneratedReference("a lighthouse, ink", 3), panels=named,
                          sampling=Sampling(steps=3, guidance=4.0, width=WIDTH, height=HEIGHT, scheduler="euler"),
                          characters=characters, micro_batch=2, **kwargs)

    events = []
    local = engine.generate(request(), events.append)
    done = {e.index: e for e in events if isinstance(e, ev.PanelDone)}
    # the deepest cross-attention grid is the mid block's (SD: latent / 8; SDXL's is latent / 4)
    deepest = 8 * 2 ** (len(pipe.unet.config.down_block_types) - 1)
    assert done[0].masks["Mira"].shape == (HEIGHT // deepest, WIDTH // deepest) and done[1].masks == {}
    alone = engine.generate(request(characters=(), only=(0, 1)))  # panel 1 names no one
    assert torch.equal(alone.latents[1], local.latents[1])
    assert not torch.equal(alone.latents[0], local.latents[0])  # panel 0 names Mira: she changes it
    shards = plan_shards(request(), 2)
    assert len(shards) == 2
    for shard in shards:
        part = engine.generate(request(only=shard))
        for i in shard:
            assert part.panels[i].tobytes() == local.panels[i].tobytes(), (model, i)
