"""Progress a run reports (issue 30 item 6): each phase named, counted across the whole job,
with time left; finishing (decoding) moves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.progress import JobProgress
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Panel,
    ReferencePicture,
    Sampling,
    SetRequest,
)


@pytest.fixture(scope="module")
def two_pictures_run(tiny_pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(5)
    paths = []
    for k, size in enumerate(((120, 80), (64, 96))):
        path = folder / f"picture-{k}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    request = SetRequest(
        model="tiny",
        style=(ReferencePicture(paths[0], caption="rocks", inversion_offset=0, weight=0.6),
               GeneratedReference("a tree", 4, weight=0.2),
               ReferencePicture(paths[1], caption="sea", inversion_offset=0, weight=0.2)),
        panels=(Panel("a car", 2), Panel("a boat", 3), Panel("a kite", 5)),
        sampling=Sampling(steps=3, width=96, height=64, scheduler="euler"),
        cache_dir=str(folder / "cache"), device="cpu", micro_batch=2)
    events = []
    Engine(loader=lambda *a, **k: tiny_pipe).generate(request, events.append)
    return events


def test_reading_two_reference_pictures_is_one_bar_that_names_each_picture(two_pictures_run):
    inverting = [e for e in two_pictures_run if isinstance(e, ev.Inverting)]
    assert {(e.picture, e.pictures) for e in inverting} == {(1, 2), (2, 2)}
    assert [e.picture for e in inverting] == sorted(e.picture for e in inverting)  # picture 1, then 2
    progress = JobProgress(clock=iter(range(1000)).__next__)
    shown = [progress.update(e) for e in inverting]
    fractions = [p.fraction for p in shown]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # never goes back for picture 2
    assert fractions[len(fractions) // 2 - 1] == pytest.approx(0.5)  # picture 1 done: half the job
    assert shown[-1].phase.startswith("Reading reference picture 2 of 2")


def test_finishing_counts_every_picture_decoded(two_pictures_run):
    decoding = [e for e in two_pictures_run if isinstance(e, ev.Decoding)]
    pictures = 3 + 3  # three references and three panels
    assert [(e.done, e.total) for e in decoding] == [(k, pictures) for k in range(1, pictures + 1)]
    last_step = max(i for i, e in enumerate(two_pictures_run) if isinstance(e, ev.Step))
    first_done = min(i for i, e in enumerate(two_pictures_run) if isinstance(e, ev.PanelDone))
    assert all(last_step < two_pictures_run.index(e) < first_done for e in decoding)
    progress = JobProgress(clock=iter(range(1000)).__next__)
    assert [progress.update(e).fraction for e in decoding][-1] == 1.0


def test_time_left_is_the_phase_pace_so_far():
    seconds = iter([0.0, 2.0, 4.0, 6.0, 7.0, 7.5])
    progress = JobProgress(clock=lambda: next(seconds))
    first = progress.update(ev.Step(1, 10))
    assert first.seconds_left is None  # the phase has not moved yet
    assert progress.update(ev.Step(2, 10)).seconds_left == pytest.approx(16.0)  # 2 s a step, 8 left
    assert progress.update(ev.Step(3, 10)).seconds_left == pytest.approx(14.0)
    # a new phase starts its own pace: 1 s a picture decoded, 2 pictures left
    assert progress.update(ev.Decoding(1, 4)).seconds_left is None
    assert progress.update(ev.Decoding(2, 4)).seconds_left == pytest.approx(2.0)
    assert progress.update(ev.Decoding(4, 4)).seconds_left is None  # done


def test_loading_shows_its_stage_and_share_but_guesses_no_time_left():
    seconds = iter([0.0, 5.0])
    progress = JobProgress(clock=lambda: next(seconds))
    progress.update(ev.Loading(0.1, "reading the weights"))
    shown = progress.update(ev.Loading(0.5, "reading the weights"))
    assert shown.phase == "Loading the model: reading the weights 50%" and shown.fraction == 0.5
    assert shown.seconds_left is None
