"""Character identity (spec section 13) as an ``evaluate`` figure: DINO cosine between the
panels' masked subject crops, against crops cut by hand from the written rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop import cli
from stylealigned_desktop.evaluation import metrics
from stylealigned_desktop.evaluation import scoring as evaluation
from stylealigned_desktop.evaluation.identity import subject_crop

from . import test_metrics
from .test_evaluation import make_run_folder, tiny_sources
from .test_metrics import drawn_picture, naive_mean_pairwise_cosine

tiny_dino_dir = test_metrics.tiny_dino_dir
tiny_clip_dir = test_metrics.tiny_clip_dir

MIRA = ["0110", "0110", "0000"]  # a 3x4 grid over 60x80 pictures: 20x20 cells
BO = ["1000", "1100", "0000"]


def _picture(background, kind):
    """A 80x60 picture: ``background`` everywhere, the drawn picture ``kind`` in the middle cells."""
    image = Image.new("RGB", (80, 60), background)
    image.paste(drawn_picture(kind, 40).crop((0, 0, 40, 40)), (20, 0))
    return image


def _by_hand(image, rows):
    """The crop as the rule says it: the mask's cells (20x20 pixels each) kept, grey elsewhere,
    cut to the rows and columns that have a cell of the mask."""
    pixels = np.asarray(image.convert("RGB")).copy()
    kept = np.zeros(pixels.shape[:2], bool)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell == "1":
                kept[20 * r: 20 * r + 20, 20 * c: 20 * c + 20] = True
    pixels[~kept] = (128, 128, 128)
    ys, xs = np.nonzero(kept)
    return pixels[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def test_crops_are_the_masked_bounding_box():
    image = _picture((10, 200, 30), 1)
    for rows in (MIRA, BO):
        crop = subject_crop(image, np.array([[c == "1" for c in row] for row in rows]))
        assert np.array_equal(np.asarray(crop), _by_hand(image, rows))
    assert subject_crop(image, np.zeros((3, 4), bool)) is None


def _character_run(tmp_path):
    pictures = [_picture((200, 40, 40), 3), _picture((10, 200, 30), 1), _picture((30, 60, 200), 1),
                _picture((230, 200, 30), 2)]
    folder = make_run_folder(tmp_path / "story", pictures, ["A house", "Mira", "Mira", "Mira and Bo"])
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    run["panels"][0]["masks"] = {"Mira": MIRA}
    run["panels"][1]["masks"] = {"Mira": MIRA}
    run["panels"][2]["masks"] = {"Mira": MIRA, "Bo": BO}  # Bo in one panel only: no figure
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder, pictures


def test_identity_is_the_pairwise_dino_cosine_of_the_crops(tmp_path, tiny_dino_dir, tiny_clip_dir):
    folder, pictures = _character_run(tmp_path)
    report = evaluation.evaluate_folders([folder], tmp_path / "out", tiny_sources(tiny_dino_dir, tiny_clip_dir))
    group = report["groups"][0]
    dino = metrics.load_dino(str(tiny_dino_dir), "cpu")
    crops = [Image.fromarray(_by_hand(p, MIRA)) for p in pictures[1:]]
    expected = naive_mean_pairwise_cosine(dino.embed(crops))
    assert [(e["character"], e["value"]) for e in group["identity"]["per_set"]] == [("Mira", pytest.approx(expected))]
    assert group["identity"]["mean"] == pytest.approx(expected) and group["identity"]["std"] == 0.0
    # the two Mira panels share the subject, not the background: identity above set consistency
    assert expected > naive_mean_pairwise_cosine(dino.embed(pictures[1:3])) - 1e-9
    assert "Character identity, story" in (tmp_path / "out" / "metrics.md").read_text(encoding="utf-8")


def test_evaluate_from_the_command_line_reports_identity(tmp_path, tiny_dino_dir, capsys):
    folder, _pictures = _character_run(tmp_path)
    code = cli.main(["evaluate", str(folder), "--dino", str(tiny_dino_dir), "--clip", "none", "--inception", "none",
                     "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    data = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert data["groups"][0]["identity"]["per_set"][0]["character"] == "Mira"
    with Image.open(tmp_path / "out" / "metrics.png") as chart:
        assert chart.width >= 2 * 230  # two metric panels: set consistency and identity
