"""Reference-picture sets on the storyboard engine (issue 4): trajectory use, exactness, cache."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.denoise import decode_latent
from stylealigned_desktop.engine.generator import Engine, GenerationError, initial_noise
from stylealigned_desktop.engine.images import PictureError, fit_picture, load_picture
from stylealigned_desktop.engine.install import style_aligned
from stylealigned_desktop.engine.inversion import encode_picture, reference_latent_after_step
from stylealigned_desktop.engine.request import Panel, ReferencePicture, Sampling, SetRequest
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .unet_spies import reference_row_inputs

SIZE, STEPS, OFFSET = 128, 4, 1
PANELS = (Panel("a car", 21), Panel("a boat", 22), Panel("a cat", 23))


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "style.png"
    image = Image.new("RGB", (200, 150), (20, 30, 90))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 20, 150, 130), fill=(250, 160, 20))
    draw.rectangle((0, 110, 200, 150), fill=(30, 120, 40))
    image.save(path)
    return path


@pytest.fixture()
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


def _request(picture, tmp_path, caption="a sunset", **kwargs):
    return SetRequest(
        model="tiny",
        style=ReferencePicture(str(picture), caption=caption, inversion_offset=OFFSET),
        panels=PANELS,
        sampling=Sampling(steps=STEPS, guidance=10.0, width=SIZE, height=SIZE),
        settings=StyleAlignedSettings.for_reference_image(),
        cache_dir=str(tmp_path / "cache"),
        **kwargs,
    )


def _trajectory(engine, request):
    cache = engine.trajectory_cache(request.cache_dir)
    return next(iter(cache._memory.values()))


def test_panels_match_the_authors_full_batch_with_the_step_callback(engine, tiny_pipe, picture, tmp_path):
    request = _request(picture, tmp_path, micro_batch=1)
    result = engine.generate(request)
    traj = _trajectory(engine, request)
    latents = torch.cat([traj[OFFSET]] + [initial_noise(p.seed, SIZE, SIZE) for p in PANELS])

    def overwrite_reference(pipe, i, t, kwargs):  # the authors' inversion callback
        kwargs["latents"][0] = reference_latent_after_step(traj, i, OFFSET)
        return kwargs

    with style_aligned(tiny_pipe, request.settings):
        full = tiny_pipe(["a sunset"] + [p.prompt for p in PANELS], latents=latents, num_inference_steps=STEPS,
                         guidance_scale=10.0, height=SIZE, width=SIZE, output_type="latent",
                         callback_on_step_end=overwrite_reference).images
    for index in range(3):
        torch.testing.assert_close(result.latents[index], full[1 + index], rtol=0, atol=1e-4)
    torch.testing.assert_close(result.latents[None], traj.z0[0], rtol=0, atol=0)
    for micro_batch, only in [(2, None), (3, (2, 0))]:
        other = engine.generate(_request(picture, tmp_path, micro_batch=micro_batch, only=only))
        for index in other.panels:
            torch.testing.assert_close(other.latents[index], result.latents[index], rtol=0, atol=1e-4)


def test_the_reference_row_follows_the_trajectory(engine, picture, tmp_path):
    request = _request(picture, tmp_path, micro_batch=3)
    engine.generate(request)  # invert once
    traj = _trajectory(engine, request)
    seen_inputs = reference_row_inputs(engine, request)
    assert len(seen_inputs) == STEPS
    torch.testing.assert_close(seen_inputs[0], traj[OFFSET][0])
    for i in range(STEPS - 1):  # the latent after step i is what the UNet sees at step i + 1
        torch.testing.assert_close(seen_inputs[i + 1], reference_latent_after_step(traj, i, OFFSET)[0])


def test_reference_image_is_the_vae_round_trip_of_the_picture(engine, tiny_pipe, picture, tmp_path):
    result = engine.generate(_request(picture, tmp_path))
    z0 = encode_picture(tiny_pipe, fit_picture(load_picture(picture), SIZE, SIZE))
    expected = np.asarray(decode_latent(tiny_pipe, z0), int)
    assert np.abs(np.asarray(result.reference, int) - expected).max() <= 1


def test_second_set_with_the_same_reference_starts_denoising_at_once(engine, tiny_pipe, picture, tmp_path):
    calls = []
    hook = tiny_pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = []
        engine.generate(_request(picture, tmp_path), first.append)
        inversion_calls = len(calls) - engine.unet_calls
        assert inversion_calls == STEPS and sum(isinstance(e, ev.Inverting) for e in first) == STEPS
        calls.clear()
        engine.unet_calls = 0
        second = []
        engine.generate(_request(picture, tmp_path), second.append)
        assert len(calls) == engine.unet_calls  # no UNet call outside denoising: no inversion
        assert not any(isinstance(e, ev.Inverting) for e in second)
        # a fresh engine (new process) finds the trajectory on disk
        calls.clear()
        fresh = Engine(loader=lambda *args, **kwargs: tiny_pipe)
        fresh.generate(_request(picture, tmp_path))
        assert len(calls) == fresh.unet_calls
        # changing a key input recomputes
        changed = []
        engine.generate(_request(picture, tmp_path, caption="another caption"), changed.append)
        assert sum(isinstance(e, ev.Inverting) for e in changed) == STEPS
    finally:
        hook.remove()


def test_empty_caption_works(engine, picture, tmp_path):
    result = engine.generate(_request(picture, tmp_path, caption=""))
    assert len(result.panels) == 3


def test_euler_runs_with_a_reference_picture(engine, picture, tmp_path):
    request = _request(picture, tmp_path)
    request = SetRequest(**{**request.__dict__, "sampling": Sampling(steps=STEPS, guidance=10.0, width=SIZE,
                                                                     height=SIZE, scheduler="euler")})
    result = engine.generate(request)
    assert all(torch.isfinite(latent).all() for latent in result.latents.values())


@pytest.mark.parametrize("content", [b"", b"not a picture", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_bad_picture_fails_clearly_before_denoising(engine, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    seen = []
    with pytest.raises(PictureError, match="bad.png"):
        engine.generate(_request(bad, tmp_path), seen.append)
    assert not any(isinstance(e, (ev.Step, ev.Inverting)) for e in seen)
    assert isinstance(seen[-1], ev.Failed) and "bad.png" in seen[-1].message


def test_offset_out_of_range_is_refused(engine, picture, tmp_path):
    request = _request(picture, tmp_path)
    request = SetRequest(**{**request.__dict__, "style": ReferencePicture(str(picture), inversion_offset=STEPS)})
    with pytest.raises(GenerationError) as refused:
        engine.generate(request)
    assert str(refused.value) == f"inversion offset must be in 0..{STEPS - 1} for {STEPS} steps, got {STEPS}"


def test_default_offset_scales_with_the_step_count():
    style = ReferencePicture("x.png")
    assert style.offset_for(50) == 5 and style.offset_for(25) == 2 and style.offset_for(100) == 10
    assert style.offset_for(4) == 0 and ReferencePicture("x", inversion_offset=3).offset_for(50) == 3
