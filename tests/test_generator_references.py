"""Sets of several references on the engine: each reference's picture, record and cache entry
follow its own position (spec section 11), with a weight-0 reference first and with two
different reference pictures."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.denoise import decode_latent
from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.images import fit_picture, load_picture, picture_hash
from stylealigned_desktop.engine.inversion import encode_picture
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.runfolder import contact_sheet, read_parameters, write_run_folder
from stylealigned_desktop.engine.settings import StyleAlignedSettings

WIDTH, HEIGHT = 128, 64  # not square: width and height must not be swapped anywhere
PANELS = (Panel("a car, ink", 21), Panel("a boat, ink", 22))


@pytest.fixture()
def engine(tiny_pipe):
    return Engine(loader=lambda *args, **kwargs: tiny_pipe)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# --- a weight-0 reference first: (0, A, B) ----------------------------------------------------

KITE = GeneratedReference("a red kite, ink", seed=11, weight=0.0)
WHALE = GeneratedReference("a blue whale, ink", seed=12, weight=1.0)
FROG = GeneratedReference("a green frog, ink", seed=13, weight=3.0)


def _set(*references):
    return SetRequest(model="tiny", style=references, panels=PANELS,
                      sampling=Sampling(steps=2, guidance=6.0, width=WIDTH, height=HEIGHT, scheduler="euler"),
                      micro_batch=1)


def test_a_weight_zero_reference_first_leaves_each_record_at_its_own_position(engine, tmp_path):
    request = _set(KITE, WHALE, FROG)
    assert request.weights == (0.0, 0.25, 0.75)
    events = []
    result = engine.generate(request, events.append)

    # the engine's own record: pictures and PanelDone metadata keyed by position, not by row
    assert result.reference is None and set(result.references) == {1, 2}
    done = {e.reference: e.metadata for e in events if isinstance(e, ev.PanelDone) and e.index is None}
    assert set(done) == {1, 2}
    for position, reference in ((1, WHALE), (2, FROG)):
        meta = done[position]
        assert (meta["reference_index"], meta["weight"], meta["seed"], meta["prompt"]) == (
            position + 1, request.weights[position], reference.seed, reference.prompt)

    # each picture is its own reference's: the same references in the other order give them back
    swapped = engine.generate(_set(KITE, FROG, WHALE))
    for position, other in ((1, 2), (2, 1)):
        difference = np.abs(_pixels(result.references[position]) - _pixels(swapped.references[other]))
        assert difference.max() <= 2
    assert np.abs(_pixels(result.references[1]) - _pixels(result.references[2])).mean() > 10

    # run.json, each reference PNG's JSON and the contact sheet
    folder = write_run_folder(tmp_path / "run", request, result)
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert [(r["file"], r["weight"], r["seed"], r["prompt"]) for r in run["references"]] == [
        (None, 0.0, 11, KITE.prompt), ("reference-02.png", 0.25, 12, WHALE.prompt),
        ("reference-03.png", 0.75, 13, FROG.prompt)]
    assert not (folder / "reference.png").exists()
    for position, name in ((1, "reference-02.png"), (2, "reference-03.png")):
        parameters = read_parameters(folder / name)
        assert (parameters["reference_index"], parameters["weight"], parameters["seed"]) == (
            position + 1, request.weights[position], request.references[position].seed)
        assert [r["weight"] for r in parameters["references"]] == [0.0, 0.25, 0.75]
        with Image.open(folder / name) as saved:
            assert np.array_equal(_pixels(saved), _pixels(result.references[position]))
    with Image.open(folder / "contact-sheet.png") as sheet:
        expected = contact_sheet([("reference 2: a blue whale, ink", result.references[1]),
                                  ("reference 3: a green frog, ink", result.references[2]),
                                  ("1: a car, ink", result.panels[0]), ("2: a boat, ink", result.panels[1])])
        assert np.array_equal(_pixels(sheet), _pixels(expected))


# --- two different reference pictures in one set ----------------------------------------------


def _draw(path, sky, sun, ground):
    image = Image.new("RGB", (180, 120), sky)
    draw = ImageDraw.Draw(image)
    draw.ellipse((30, 10, 110, 90), fill=sun)
    draw.rectangle((0, 85, 180, 120), fill=ground)
    image.save(path)
    return str(path)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-pictures")
    return (_draw(folder / "dusk.png", (20, 30, 90), (250, 160, 20), (30, 120, 40)),
            _draw(folder / "noon.png", (160, 210, 250), (255, 255, 230), (150, 110, 60)))


def _pictures_set(pictures, tmp_path, order=(0, 1)):
    captions = ("a sunset", "a field at noon")
    style = tuple(ReferencePicture(pictures[k], caption=captions[k], inversion_offset=1, weight=1.0 + k)
                  for k in order)
    return SetRequest(model="tiny", style=style, panels=PANELS,
                      sampling=Sampling(steps=3, guidance=8.0, width=WIDTH, height=HEIGHT, scheduler="euler"),
                      settings=StyleAlignedSettings.for_reference_image(), cache_dir=str(tmp_path / "cache"))


def test_two_reference_pictures_are_each_their_own_round_trip_and_cache_entry(engine, tiny_pipe, pictures,
                                                                                tmp_path):
    request = _pictures_set(pictures, tmp_path)
    events = []
    result = engine.generate(request, events.append)
    # each picture inverted once, its steps counted as which picture of how many
    assert [(e.step, e.total, e.picture, e.pictures) for e in events if isinstance(e, ev.Inverting)] == [
        (step, 3, picture, 2) for picture in (1, 2) for step in (1, 2, 3)]

    z0 = [encode_picture(tiny_pipe, fit_picture(load_picture(p), WIDTH, HEIGHT)) for p in pictures]
    for position in (0, 1):  # the reference's picture is its own picture's VAE round trip
        expected = _pixels(decode_latent(tiny_pipe, z0[position]))
        assert np.abs(_pixels(result.references[position]) - expected).max() <= 1
    assert np.abs(_pixels(result.references[0]) - _pixels(result.references[1])).mean() > 10
    torch.testing.assert_close(result.latents[None], z0[0][0], rtol=0, atol=0)
    torch.testing.assert_close(result.latents[("reference", 1)], z0[1][0], rtol=0, atol=0)

    # the cache holds two trajectories, each keyed by its own picture and caption: a set of
    # either picture alone finds its own without inverting, and starts from its own latent
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    for k in (0, 1):
        alone = _pictures_set(pictures, tmp_path, order=(k,))
        seen = []
        key, trajectory = engine.reference_trajectory(alone, seen.append)
        assert not any(isinstance(e, ev.Inverting) for e in seen)
        assert key.picture_hash == picture_hash(fit_picture(load_picture(pictures[k]), WIDTH, HEIGHT))
        assert key.caption == alone.references[0].caption
        torch.testing.assert_close(trajectory.z0, z0[k], rtol=0, atol=0)


# --- every picture's record and the run's, whole ----------------------------------------------


def test_the_run_records_every_picture_by_its_own_row(engine, tiny_pipe, pictures, tmp_path):
    """A generated and a picture reference, a character with a picture anchor and a generated
    one, a controlled panel naming it and a windowed panel of another size: each picture's
    record (PanelDone, AnchorDone), latent, image and mask is its own row's, spelled out here."""
    dusk, noon = pictures
    mira = Character("Mira", "a girl in a yellow coat", anchor_seeds=(5, 6), anchor_pictures=(noon, None),
                     anchor_text=", ink")
    control = PanelControl(dusk, "canny", scale=0.9)
    request = SetRequest(
        model="tiny", characters=(mira,), micro_batch=1, memory="fast",
        style=(GeneratedReference("a blue whale, ink", 11, weight=1.0),
               ReferencePicture(dusk, caption="a sunset", inversion_offset=1, inversion_guidance=2.0, weight=3.0)),
        panels=(Panel("[Mira] runs, ink", 21, control), Panel("a boat, ink", 22, size=(64, 192))),
        sampling=Sampling(steps=2, guidance=6.0, width=WIDTH, height=HEIGHT, scheduler="euler", panorama_above=1.5),
        settings=StyleAlignedSettings(anchors_per_character=2), cache_dir=str(tmp_path / "cache"))
    events = []
    result = engine.generate(request, events.append)
    # a picture anchor is inverted with its character's description as caption (spec section 13)
    cached = engine.trajectory_cache(request.cache_dir)._memory.values()
    assert sorted(trajectory.caption for trajectory in cached) == ["a girl in a yellow coat", "a sunset"]

    common = request.picture_parameters()
    windows = {"windows": 2, "window_width": 64, "window_height": 128, "window_stride": 8}  # 192 px tall: 2
    expected = {
        ("reference", 0): dict(common, prompt="a blue whale, ink", seed=11, role="reference", reference_index=1,
                               weight=0.25),
        ("reference", 1): dict(common, prompt="a sunset", seed=None, role="reference", reference_index=2,
                               weight=0.75, picture=dusk, inversion_guidance=2.0, inversion_offset=1),
        ("Mira", 0): dict(common, prompt="a girl in a yellow coat", seed=None, role="anchor", character="Mira",
                          anchor=1, picture=noon, inversion_offset=0),  # 2 steps: the default offset 0
        ("Mira", 1): dict(common, prompt="a girl in a yellow coat, ink", seed=6, role="anchor", character="Mira",
                          anchor=2),
        ("panel", 0): dict(common, prompt="[Mira] runs, ink", seed=21, role="panel", index=1, control=asdict(control),
                           width=WIDTH, height=HEIGHT),
        ("panel", 1): dict(common, prompt="a boat, ink", seed=22, role="panel", index=2, control=None,
                           width=64, height=192, **windows),
    }
    done = {}
    for event in events:
        if isinstance(event, ev.AnchorDone):
            done[event.character, event.number] = event
        elif isinstance(event, ev.PanelDone):
            done[("reference", event.reference) if event.index is None else ("panel", event.index)] = event
    assert {key: event.metadata for key, event in done.items()} == expected

    # the images, latents and masks of the result are those of the same rows
    images = {**{("reference", k): image for k, image in result.references.items()},
              **{key[1:]: image for key, image in result.anchors.items()},
              **{("panel", k): image for k, image in result.panels.items()}}
    assert images.keys() == done.keys() and all(images[key] is done[key].image for key in done)
    assert result.reference is result.references[0] and result.panels[1].size == (64, 192)
    assert list(result.latents) == [None, ("reference", 1), ("anchor", "Mira", 0), ("anchor", "Mira", 1), 0, 1]
    assert all(latent.dtype == torch.float32 and latent.device.type == "cpu" for latent in result.latents.values())
    assert result.latents[1].shape == (4, 192 // 8, 64 // 8) and result.latents[0].shape == (4, HEIGHT // 8, WIDTH // 8)
    for key, path in ((("reference", 1), dusk), (("anchor", "Mira", 0), noon)):  # a picture's row ends as its z0
        z0 = encode_picture(tiny_pipe, fit_picture(load_picture(path), WIDTH, HEIGHT))
        torch.testing.assert_close(result.latents[key], z0[0], rtol=0, atol=0)
    assert set(result.masks) == {0, ("anchor", "Mira", 0), ("anchor", "Mira", 1)}  # the rows that see Mira
    assert done["panel", 0].masks is result.masks[0] and done["panel", 1].masks == {}
    for number in (0, 1):
        assert done["Mira", number].mask is result.masks["anchor", "Mira", number]["Mira"]

    assert result.metadata == {
        "request": request.to_dict(), "micro_batch": 1, "memory_mode": "fast", "vae_tiling": False,
        "device": "cpu", "dtype": "float32", "timings": result.metadata["timings"], "windows": {"2": windows}}
    assert set(result.metadata["timings"]) == {"load_s", "denoise_s", "decode_s", "per_step_s"}
