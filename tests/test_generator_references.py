"""Sets of several references on the engine: each reference's picture, record and cache entry
follow its own position (spec section 11), with a weight-0 reference first and with two
different reference pictures."""

from __future__ import annotations

import json

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
    GeneratedReference,
    Panel,
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
    assert sum(isinstance(e, ev.Inverting) for e in events) == 2 * 3  # each picture inverted once

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
