"""DDIM inversion (spec section 7) and the trajectory cache, on the tiny random-weight SDXL."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine.inversion import (
    InversionCancelled,
    Trajectory,
    TrajectoryCache,
    TrajectoryFileError,
    TrajectoryKey,
    encode_picture,
    inversion_scheduler,
    invert,
    load_trajectory,
    reference_latent_after_step,
    reference_unet_input,
    save_trajectory,
)

W, H = 96, 64  # not square: catches swapped width/height


def _picture(width: int = W, height: int = H) -> Image.Image:
    image = Image.new("RGB", (width, height), (230, 200, 120))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 6, width // 2, height - 10), fill=(30, 60, 200))
    draw.rectangle((width // 2, 10, width - 6, height // 2), fill=(200, 30, 40))
    return image


def _latent(seed: int, width: int = W, height: int = H) -> torch.Tensor:
    # SDXL latents (VAE mean x scaling factor) have roughly unit spread, like these
    return torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(seed))


def _pipe_with(pipe, **components):
    from diffusers import StableDiffusionXLPipeline

    new = StableDiffusionXLPipeline(**{**pipe.components, **components})
    new.set_progress_bar_config(disable=True)
    return new


class UnetCalls:
    """Counts UNet forward calls and records their inputs and outputs."""

    def __init__(self, unet):
        self.inputs: list[tuple[torch.Tensor, torch.Tensor, dict]] = []
        self.outputs: list[torch.Tensor] = []
        self._handles = [
            unet.register_forward_pre_hook(self._pre, with_kwargs=True),
            unet.register_forward_hook(self._post),
        ]

    def _pre(self, module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        self.inputs.append((sample.detach().clone(), torch.as_tensor(timestep).clone(), kwargs))

    def _post(self, module, args, output):
        self.outputs.append((output[0] if isinstance(output, tuple) else output.sample).detach().clone())

    def __len__(self) -> int:
        return len(self.inputs)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture(scope="module")
def smooth_pipe(tiny_pipe):
    """The tiny model with its noise prediction damped 10x (conv_out x 0.1).

    The random UNet is very rough: between the latents of two neighbouring levels its
    prediction changes by 40-70 % (measured), far more than a trained model's, and DDIM
    inversion's only error is exactly that change (it evaluates eps at z_{t-Delta} where the
    denoiser evaluates it at z_t). That error is first order in the prediction's scale, so
    damping the output keeps the same nonlinear network and makes the round trip measurable
    (measured relative error, 64 px: x1.0 -> 0.4-0.65, x0.1 -> 0.016-0.046).
    """
    unet = copy.deepcopy(tiny_pipe.unet)
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.1)
        unet.conv_out.bias.mul_(0.1)
    return _pipe_with(tiny_pipe, unet=unet)


def _round_trip_error(pipe, z0, steps, caption="a red boat", width=W, height=H) -> float:
    traj = invert(pipe, z0, caption, steps, 1.0, width, height)
    back = pipe(caption, num_inference_steps=steps, guidance_scale=1.0, width=width,
                height=height, latents=traj[0], output_type="latent").images
    return float((back - z0).norm() / z0.norm())


# ---------------------------------------------------------------------------------- encoding


def test_encode_is_the_vae_mean_times_scaling_factor_and_deterministic(tiny_pipe):
    picture = _picture()
    z0 = encode_picture(tiny_pipe, picture)
    assert z0.dtype == torch.float32 and tuple(z0.shape) == (1, 4, H // 8, W // 8)
    assert torch.equal(z0, encode_picture(tiny_pipe, picture))

    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 127.5 - 1.0)
    pixels = pixels.permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        dist = tiny_pipe.vae.encode(pixels).latent_dist
    expected = dist.mean * tiny_pipe.vae.config.scaling_factor
    torch.testing.assert_close(z0, expected, rtol=1e-4, atol=1e-5)  # pixel rounding
    # a sample of the distribution is something else: the mean was taken
    assert not torch.allclose(z0, dist.sample(torch.Generator().manual_seed(0)) * 0.13025)


def test_encode_composites_transparency_on_white(tiny_pipe):
    rgb = _picture()
    rgba = rgb.convert("RGBA")
    ImageDraw.Draw(rgba).rectangle((0, 0, 20, 20), fill=(0, 0, 0, 0))
    flattened = rgb.copy()
    ImageDraw.Draw(flattened).rectangle((0, 0, 20, 20), fill=(255, 255, 255))
    torch.testing.assert_close(encode_picture(tiny_pipe, rgba), encode_picture(tiny_pipe, flattened))


def test_encode_rejects_a_picture_not_fitted_to_a_latent_size(tiny_pipe):
    with pytest.raises(ValueError, match="100x64"):
        encode_picture(tiny_pipe, _picture(100, 64))


def test_encode_runs_an_fp16_vae_in_float32_and_restores_it(tiny_pipe):
    vae16 = copy.deepcopy(tiny_pipe.vae).to(torch.float16)
    pipe16 = _pipe_with(tiny_pipe, vae=vae16)
    z0 = encode_picture(pipe16, _picture())
    assert vae16.dtype == torch.float16
    assert z0.dtype == torch.float32
    # fp16 weights upcast to float32 are exact, so a float32 copy gives the same numbers
    reference = encode_picture(_pipe_with(tiny_pipe, vae=copy.deepcopy(vae16).float()), _picture())
    torch.testing.assert_close(z0, reference, rtol=0, atol=0)


def test_encode_honours_latents_mean_and_std_inversely_to_the_pipeline_decode(tiny_pipe):
    vae = copy.deepcopy(tiny_pipe.vae)
    mean, std = [0.1, -0.2, 0.3, 0.05], [0.9, 1.1, 0.7, 1.3]
    vae.register_to_config(latents_mean=mean, latents_std=std)
    z0 = encode_picture(_pipe_with(tiny_pipe, vae=vae), _picture())
    plain = encode_picture(tiny_pipe, _picture())
    # the SDXL pipeline decodes latents * std / scaling_factor + mean: that must give the VAE mean
    sf = vae.config.scaling_factor
    decoded_input = z0 * torch.tensor(std).view(1, 4, 1, 1) / sf + torch.tensor(mean).view(1, 4, 1, 1)
    torch.testing.assert_close(decoded_input, plain / sf, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- inversion


def test_trajectory_shape_order_and_clean_end(tiny_pipe):
    z0 = encode_picture(tiny_pipe, _picture())
    traj = invert(tiny_pipe, z0, "", 3, 2.0, W, H)
    assert len(traj) == 4 and tuple(traj.latents.shape) == (4, 4, H // 8, W // 8)
    assert traj.latents.dtype == torch.float32 and traj.latents.device.type == "cpu"
    assert torch.equal(traj[3], z0.cpu()) and torch.equal(traj.z0, z0.cpu())
    scheduler = inversion_scheduler(tiny_pipe)
    scheduler.set_timesteps(3)
    assert traj.timesteps.tolist() == scheduler.timesteps.tolist()  # noisiest first
    # noisiest first: the spread grows towards traj[0] (it is mostly noise, z0 is a picture)
    distances = [float((traj[k] - z0).norm()) for k in range(4)]
    assert distances == sorted(distances, reverse=True) and distances[-1] == 0.0


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_each_inversion_step_exactly_inverts_diffusers_ddim_step(tiny_pipe, guidance):
    """With the noise prediction it used, DDIMScheduler.step maps traj[k] back to traj[k+1].

    This pins the levels, the previous level t - Delta, the final alpha at the cleanest step
    and the CFG combination (guidance <= 1: one conditional pass; else uncond + g (cond - uncond)).
    """
    steps = 4
    z0 = _latent(1)
    with UnetCalls(tiny_pipe.unet) as calls:
        traj = invert(tiny_pipe, z0, "a castle", steps, guidance, W, H)
    assert len(calls) == steps
    rows = 2 if guidance > 1 else 1
    assert all(sample.shape[0] == rows for sample, _, _ in calls.inputs)
    scheduler = inversion_scheduler(tiny_pipe)
    scheduler.set_timesteps(steps)
    for call, (output, (sample, timestep, _)) in enumerate(zip(calls.outputs, calls.inputs)):
        k = steps - 1 - call  # the first call lifts z0 to the least noisy level
        assert int(timestep) == int(scheduler.timesteps[k])
        torch.testing.assert_close(sample[:1], traj[k + 1])  # eps is taken at the cleaner latent
        if guidance > 1:
            uncond, cond = output.chunk(2)
            eps = uncond + guidance * (cond - uncond)
        else:
            eps = output
        back = scheduler.step(eps, scheduler.timesteps[k], traj[k]).prev_sample
        torch.testing.assert_close(back, traj[k + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, spacing, steps", [("dpmpp-2m", "leading", 5), ("euler", "trailing", 7)])
def test_each_inversion_step_goes_between_the_schedules_own_neighbours(tiny_pipe, kind, spacing, steps):
    """Spec 7.3: the previous level of t is the next cleaner level of the generation schedule
    itself (dpmpp-2m's 5 levels are 831, 665, 499, 333, 167; Euler's 7 trailing ones 999, 856,
    713, ...: not 1000 // steps apart), and the cleanest level steps to the scheduler's final
    alpha. Checked with the forward DDIM formula: from traj[k] at t_k with the eps the UNet gave,
    one deterministic DDIM step lands on traj[k+1]."""
    from stylealigned_desktop.engine.generator import make_scheduler

    schedule = make_scheduler(dict(tiny_pipe.scheduler.config, timestep_spacing=spacing), kind)
    schedule.set_timesteps(steps)
    levels = [int(t) for t in schedule.timesteps]
    assert any(a - b != 1000 // steps for a, b in zip(levels, levels[1:]))  # the authors' rule is wrong here
    with UnetCalls(tiny_pipe.unet) as calls:
        traj = invert(tiny_pipe, _latent(4), "a lighthouse", steps, 1.0, W, H, scheduler=kind, timesteps=levels)
    assert traj.timesteps.tolist() == levels
    ddim = inversion_scheduler(tiny_pipe)
    alphas = ddim.alphas_cumprod.double()
    for call, (eps, (_, timestep, _)) in enumerate(zip(calls.outputs, calls.inputs)):
        k = steps - 1 - call
        assert int(timestep) == levels[k]
        alpha_t = alphas[levels[k]]
        alpha_prev = alphas[levels[k + 1]] if k + 1 < steps else torch.as_tensor(ddim.final_alpha_cumprod).double()
        x0 = (traj[k].double() - (1 - alpha_t).sqrt() * eps.double()) / alpha_t.sqrt()
        back = alpha_prev.sqrt() * x0 + (1 - alpha_prev).sqrt() * eps.double()
        torch.testing.assert_close(back.float(), traj[k + 1], rtol=1e-5, atol=1e-5)


def test_round_trip_reproduces_z0_and_improves_with_more_steps(smooth_pipe):
    """Invert at guidance 1, denoise traj[0] with the pipeline's DDIM at guidance 1: z0 again.

    DDIM inversion is exact up to eps(z_{t-Delta}, t) - eps(z_t, t), which vanishes as the steps
    shrink. Measured relative errors on this model: 0.039 at 4 steps, 0.016 at 50 steps.
    Tolerances: 0.08 and 0.03 (2x margin); a different latent is ~1.4 away.
    """
    z0 = _latent(2, 64, 64)
    coarse = _round_trip_error(smooth_pipe, z0, 4, width=64, height=64)
    fine = _round_trip_error(smooth_pipe, z0, 50, width=64, height=64)
    assert coarse < 0.08
    assert fine < 0.03
    assert fine < 0.6 * coarse
    other = _latent(3, 64, 64)
    assert float((other - z0).norm() / z0.norm()) > 1.0


def test_round_trip_on_the_raw_tiny_model_is_bounded(tiny_pipe):
    """Without damping the random UNet is rough (see smooth_pipe): the measured error is 0.80
    at 4 steps on 64 px (0.56 before tiny's vocabulary merged letters, which changed its random
    text encoders). This only guards against gross regressions."""
    z0 = _latent(2, 64, 64)
    assert _round_trip_error(tiny_pipe, z0, 4, width=64, height=64) < 1.0


def test_round_trip_with_a_v_prediction_schedule(smooth_pipe):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(smooth_pipe.scheduler.config, prediction_type="v_prediction")
    pipe = _pipe_with(smooth_pipe, scheduler=scheduler)
    # measured 0.032 at 8 steps
    assert _round_trip_error(pipe, _latent(4, 64, 64), 8, caption="", width=64, height=64) < 0.07


@pytest.mark.parametrize("caption", ["", "an oil painting of a harbour"])
def test_conditioning_matches_the_pipeline_and_the_real_size(tiny_pipe, caption):
    """Text embeddings and SDXL time ids are the ones the pipeline itself feeds its UNet
    for this caption and size (negative_prompt None), and the time ids are (H, W, 0, 0, H, W)."""
    with UnetCalls(tiny_pipe.unet) as calls:
        invert(tiny_pipe, _latent(5), caption, 1, 3.0, W, H)
        tiny_pipe(caption, num_inference_steps=1, guidance_scale=3.0, width=W, height=H,
                  output_type="latent", generator=torch.Generator().manual_seed(0))
    (_, _, ours), (_, _, pipeline) = calls.inputs
    expected_ids = torch.tensor([[H, W, 0, 0, H, W]] * 2, dtype=torch.float32)
    torch.testing.assert_close(ours["added_cond_kwargs"]["time_ids"], expected_ids)
    torch.testing.assert_close(pipeline["added_cond_kwargs"]["time_ids"], expected_ids)
    torch.testing.assert_close(ours["added_cond_kwargs"]["text_embeds"],
                               pipeline["added_cond_kwargs"]["text_embeds"])
    torch.testing.assert_close(ours["encoder_hidden_states"], pipeline["encoder_hidden_states"])
    # SDXL's zeroed unconditional text for negative_prompt=None
    assert not ours["encoder_hidden_states"][0].any()


def test_a_half_precision_model_gives_a_float32_trajectory(tiny_pipe):
    """The UNet runs in its own dtype; the update is float32 (measured difference 6e-4)."""
    half = {name: copy.deepcopy(getattr(tiny_pipe, name)).to(torch.float16)
            for name in ("unet", "text_encoder", "text_encoder_2")}
    z0 = _latent(11, 64, 64)
    full = invert(tiny_pipe, z0, "x", 2, 2.0, 64, 64)
    low = invert(_pipe_with(tiny_pipe, **half), z0, "x", 2, 2.0, 64, 64)
    assert low.latents.dtype == torch.float32 and torch.equal(low.z0, z0)
    assert float((low.latents - full.latents).norm() / full.latents.norm()) < 5e-3


def test_progress_is_reported_per_unet_call(tiny_pipe):
    seen = []
    invert(tiny_pipe, _latent(6), "x", 3, 2.0, W, H, on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_cancel_between_steps_raises_and_stops_the_unet(tiny_pipe):
    cancel = threading.Event()
    with UnetCalls(tiny_pipe.unet) as calls, pytest.raises(InversionCancelled):
        invert(tiny_pipe, _latent(7), "x", 4, 1.0, W, H,
               on_step=lambda done, total: cancel.set(), cancel=cancel)
    assert len(calls) == 1


def test_bad_inputs_give_clear_errors(tiny_pipe):
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 12\)"):
        invert(tiny_pipe, _latent(8, 64, 64), "", 2, 1.0, W, H)
    with pytest.raises(ValueError, match="at least 1"):
        invert(tiny_pipe, _latent(8), "", 0, 1.0, W, H)
    with pytest.raises(ValueError, match="decreasing"):
        invert(tiny_pipe, _latent(8), "", 2, 1.0, W, H, timesteps=[1, 501])


# ------------------------------------------------------------------------- reference indexing


def test_reference_indexing_matches_the_authors_callback_in_the_pipeline(tiny_pipe):
    """Run the authors' mechanism (callback_on_step_end writes traj[max(offset+1, i+1)] into
    row 0, which starts at traj[offset]) in the real pipeline and compare what the UNet sees
    for the reference at every step, and the final latent, with our two functions."""
    steps, offset = 6, 2
    traj = invert(tiny_pipe, _latent(9), "", steps, 1.0, W, H)

    def callback(pipeline, i, t, kwargs):
        latents = kwargs["latents"]
        latents[0] = traj[max(offset + 1, i + 1)][0]
        return {"latents": latents}

    start = torch.cat([traj[offset], _latent(10)])
    with UnetCalls(tiny_pipe.unet) as calls:
        final = tiny_pipe(["", "a tree"], num_inference_steps=steps, guidance_scale=1.0, width=W,
                          height=H, latents=start, output_type="latent",
                          callback_on_step_end=callback).images
    assert len(calls) == steps
    for i, (sample, timestep, _) in enumerate(calls.inputs):
        assert int(timestep) == int(traj.timesteps[i])
        assert torch.equal(sample[:1], reference_unet_input(traj, i, offset))
    assert torch.equal(final[:1], reference_latent_after_step(traj, steps - 1, offset))
    assert torch.equal(final[:1], traj.z0)


def test_reference_indexing_values_and_range():
    steps = 50
    latents = torch.arange(steps + 1, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 2, 2)
    traj = Trajectory(latents=latents.contiguous(), timesteps=torch.arange(981, 0, -20),
                      caption="", guidance=2.0, width=16, height=16)
    after = [int(reference_latent_after_step(traj, i, 5)[0, 0, 0, 0]) for i in range(steps)]
    assert after == [6] * 6 + list(range(7, 51))
    seen = [int(reference_unet_input(traj, i, 5)[0, 0, 0, 0]) for i in range(steps)]
    assert seen == [5] + [6] * 6 + list(range(7, 50))
    with pytest.raises(ValueError, match="offset"):
        reference_latent_after_step(traj, 0, 50)
    with pytest.raises(ValueError, match="step"):
        reference_unet_input(traj, 50, 5)


# ---------------------------------------------------------------------------------- the cache


def _key(**changes) -> TrajectoryKey:
    fields = dict(picture_hash="abc123", caption="a harbour", model="tiny", width=64, height=64,
                  scheduler="ddim", steps=2, guidance=2.0)
    fields.update(changes)
    fields.setdefault("timesteps", {2: (501, 1), 3: (667, 334, 1)}[fields["steps"]])
    return TrajectoryKey(**fields)


def _computer(pipe, key: TrajectoryKey):
    seed = int(key.picture_hash.encode().hex(), 16) % 1000
    return lambda: invert(pipe, _latent(seed, key.width, key.height), key.caption, key.steps,
                          key.guidance, key.width, key.height, scheduler=key.scheduler,
                          timesteps=key.timesteps)


def test_cache_hits_make_no_unet_calls_memory_and_disk(tiny_pipe, tmp_path):
    key = _key()
    cache = TrajectoryCache(tmp_path / "cache")
    with UnetCalls(tiny_pipe.unet) as calls:
        first = cache.get_or_compute(key, _computer(tiny_pipe, key))
        assert len(calls) == 2
        again = cache.get_or_compute(key, _computer(tiny_pipe, key))
        assert len(calls) == 2 and again is first
        path = cache.path_for(key)
        assert path.is_file() and path.parent == tmp_path / "cache"
        assert not list(path.parent.glob("*.tmp"))
        reloaded = TrajectoryCache(tmp_path / "cache").get_or_compute(key, _computer(tiny_pipe, key))
        assert len(calls) == 2
    assert torch.equal(reloaded.latents, first.latents)
    assert torch.equal(reloaded.timesteps, first.timesteps)
    assert (reloaded.caption, reloaded.guidance, reloaded.width, reloaded.height, reloaded.scheduler) \
        == (first.caption, first.guidance, first.width, first.height, first.scheduler)


@pytest.mark.parametrize("change", [
    {"caption": "a forest"}, {"caption": ""}, {"steps": 3}, {"guidance": 1.0},
    {"width": 72}, {"height": 72}, {"picture_hash": "def456"}, {"model": "other/model"},
    {"scheduler": "euler"}, {"timesteps": (667, 334)},
])
def test_changing_any_key_input_recomputes(tiny_pipe, tmp_path, change):
    cache = TrajectoryCache(tmp_path)
    cache.get_or_compute(_key(), _computer(tiny_pipe, _key()))
    changed = _key(**change)
    assert changed.digest() != _key().digest()
    with UnetCalls(tiny_pipe.unet) as calls:
        cache.get_or_compute(changed, _computer(tiny_pipe, changed))
    assert len(calls) == changed.steps
    assert len(list(tmp_path.glob("trajectory-*.safetensors"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "other-key"])
def test_a_damaged_cache_file_is_recomputed_and_overwritten(tiny_pipe, tmp_path, damage):
    key = _key()
    cache = TrajectoryCache(tmp_path)
    good = cache.get_or_compute(key, _computer(tiny_pipe, key))
    path = cache.path_for(key)
    if damage == "garbage":
        path.write_bytes(b"\x00not a safetensors file" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    else:  # a valid file saved for other inputs at this name
        other = _key(caption="something else")
        save_trajectory(path, cache.get_or_compute(other, _computer(tiny_pipe, other)), other)
    fresh = TrajectoryCache(tmp_path)
    with UnetCalls(tiny_pipe.unet) as calls:
        recomputed = fresh.get_or_compute(key, _computer(tiny_pipe, key))
    assert len(calls) == key.steps
    assert torch.equal(recomputed.latents, good.latents)
    assert torch.equal(load_trajectory(path, key).latents, good.latents)


def test_a_cache_folder_that_cannot_be_written_does_not_stop_the_run(tiny_pipe, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    key = _key()
    traj = TrajectoryCache(blocker).get_or_compute(key, _computer(tiny_pipe, key))
    assert len(traj) == key.steps + 1


def test_cancelled_computation_caches_nothing(tiny_pipe, tmp_path):
    key = _key()
    cache = TrajectoryCache(tmp_path)

    def cancelled():
        raise InversionCancelled("cancelled")

    with pytest.raises(InversionCancelled):
        cache.get_or_compute(key, cancelled)
    assert cache.get(key) is None and not list(tmp_path.iterdir())


def test_load_trajectory_names_the_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"nope")
    with pytest.raises(TrajectoryFileError, match="broken.safetensors"):
        load_trajectory(path)


def test_load_trajectory_says_what_a_foreign_safetensors_file_lacks(tmp_path):
    """A safetensors file with the right tensors but not written by save_trajectory (no format
    in its metadata) is refused as such, naming the file."""
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"latents": torch.zeros(3, 4, 8, 12), "timesteps": torch.tensor([900, 500])}, str(path),
              metadata={"steps": "2", "width": "96", "height": "64"})
    with pytest.raises(TrajectoryFileError,
                       match=r"^invalid trajectory file .*foreign\.safetensors: not a stylealigned-trajectory file$"):
        load_trajectory(path)
