"""A reference picture's trajectory in a run (engine/references.py, spec section 7): its cache
key field by field, the picture ``reference_trajectory`` inverts, a cached entry that does not
fit the schedule, a cancelled inversion, and the reference row under Euler's input scaling."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.errors import GenerationCancelled, GenerationError
from stylealigned_desktop.engine.generator import Engine, make_scheduler
from stylealigned_desktop.engine.images import fit_picture, load_picture, picture_hash
from stylealigned_desktop.engine.inversion import TrajectoryKey, reference_unet_input
from stylealigned_desktop.engine.models import model_identity
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings

from .unet_spies import reference_row_inputs

WIDTH, HEIGHT, STEPS = 128, 64, 3  # not square, not DDIM


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference-trajectories")
    paths = []
    for name, sky, sun in (("dusk", (20, 30, 90), (250, 160, 20)), ("noon", (160, 210, 250), (255, 255, 230))):
        image = Image.new("RGB", (180, 120), sky)
        ImageDraw.Draw(image).ellipse((30, 10, 110, 90), fill=sun)
        image.save(folder / f"{name}.png")
        paths.append(str(folder / f"{name}.png"))
    return paths


@pytest.fixture()
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


def _request(style, tmp_path, steps=STEPS, scheduler="euler", **kwargs):
    return SetRequest(model="tiny", style=style, panels=(Panel("a car", 2),),
                      sampling=Sampling(steps=steps, guidance=7.0, width=WIDTH, height=HEIGHT, scheduler=scheduler),
                      settings=StyleAlignedSettings.for_reference_image(), cache_dir=str(tmp_path / "cache"),
                      **kwargs)


def test_reference_trajectory_inverts_the_first_picture_under_a_key_naming_every_input(engine, tiny_pipe,
                                                                                       pictures, tmp_path):
    dusk, noon = pictures
    style = (GeneratedReference("a kite", 4), ReferencePicture(noon, "a field", inversion_guidance=2.5),
             ReferencePicture(dusk, "a sunset"))
    # DPM++ 2M: levels of its own (751, 501, 251 here), not DDIM's (667, 334, 1) as Euler's are
    key, trajectory = engine.reference_trajectory(_request(style, tmp_path, scheduler="dpmpp-2m"))
    schedule = make_scheduler(tiny_pipe.scheduler.config, "dpmpp-2m")
    schedule.set_timesteps(STEPS)
    levels = tuple(int(t) for t in schedule.timesteps)
    ddim = make_scheduler(tiny_pipe.scheduler.config, "ddim")
    ddim.set_timesteps(STEPS)
    assert levels != tuple(int(t) for t in ddim.timesteps)
    assert key == TrajectoryKey(
        picture_hash=picture_hash(fit_picture(load_picture(noon), WIDTH, HEIGHT)), caption="a field",
        model=model_identity("tiny"), width=WIDTH, height=HEIGHT, scheduler="dpmpp-2m", steps=STEPS, guidance=2.5,
        timesteps=levels)
    assert type(key.guidance) is float
    assert (trajectory.caption, trajectory.guidance, trajectory.width, trajectory.height, trajectory.scheduler) == (
        "a field", 2.5, WIDTH, HEIGHT, "dpmpp-2m")
    assert tuple(trajectory.timesteps.tolist()) == levels

    with pytest.raises(GenerationError) as refused:
        engine.reference_trajectory(_request(GeneratedReference("a kite", 4), tmp_path))
    assert str(refused.value) == "the set has no reference picture to invert"


def test_a_cached_trajectory_of_other_levels_is_refused(engine, pictures, tmp_path):
    request = _request(ReferencePicture(pictures[0], "a sunset", inversion_offset=1), tmp_path)
    key, trajectory = engine.reference_trajectory(request)
    shifted = dataclasses.replace(trajectory, timesteps=trajectory.timesteps - 1)
    engine.trajectory_cache(request.cache_dir).put(key, shifted)
    events = []
    with pytest.raises(GenerationError) as refused:
        engine.generate(request, events.append)
    assert str(refused.value) == "the cached inversion does not match this scheduler's timesteps"
    assert not any(isinstance(e, ev.Step) for e in events)


def test_a_cancelled_inversion_cancels_the_run_and_caches_nothing(engine, pictures, tmp_path):
    request = _request(ReferencePicture(pictures[0], "a sunset", inversion_offset=1), tmp_path)
    cancel = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, ev.Inverting):
            cancel.set()

    assert engine.generate(request, on_event, cancel) is None
    assert [type(e) for e in events if not isinstance(e, ev.Notice)][-2:] == [ev.Inverting, ev.Cancelled]
    assert not any(isinstance(e, ev.Step) for e in events)
    assert not list((tmp_path / "cache").glob("*.safetensors"))


def test_an_inversion_on_its_own_can_be_cancelled(engine, pictures, tmp_path):
    """``reference_trajectory`` (a server inverting for its shards) stops between two steps when
    its ``cancel`` is set, and caches nothing."""
    request = _request(ReferencePicture(pictures[0], "a sunset", inversion_offset=1), tmp_path)
    cancel = threading.Event()
    steps = []

    def on_event(event):
        if isinstance(event, ev.Inverting):
            steps.append(event.step)
            cancel.set()

    with pytest.raises(GenerationCancelled):
        engine.reference_trajectory(request, on_event, cancel)
    assert steps == [1] and not list((tmp_path / "cache").glob("*.safetensors"))


def test_under_euler_the_unet_sees_the_trajectorys_own_inputs(engine, pictures, tmp_path):
    """The trajectory holds UNet inputs; Euler scales a sample by 1/sqrt(sigma^2 + 1) before the
    UNet, so the reference row's sample is the input divided by that factor, and the UNet sees
    the trajectory's input again at every step."""
    offset, steps = 1, 4
    request = _request(ReferencePicture(pictures[1], "a field", inversion_offset=offset), tmp_path, steps=steps,
                       micro_batch=1)
    _, trajectory = engine.reference_trajectory(request)
    seen = reference_row_inputs(engine, request)
    assert len(seen) == steps
    for i, unet_input in enumerate(seen):
        torch.testing.assert_close(unet_input, reference_unet_input(trajectory, i, offset)[0], rtol=1e-5, atol=1e-5)
