"""``stylealigned generate`` with characters (spec section 13), called as a user calls it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop import cli
from stylealigned_desktop.cli import build_generate_request, build_parser
from stylealigned_desktop.engine.request import Character

MIRA = "Mira=a red-haired girl in a yellow raincoat"
BASE = ["generate", "--model", "tiny", "--steps", "2", "--width", "192", "--height", "128", "--quiet",
        "--scheduler", "euler", "--reference-prompt", "a lighthouse", "--style", "ink wash", "--seed", "4"]


def _request(*args):
    return build_generate_request(build_parser().parse_args([*BASE, "--out", "unused", *args]))


def test_a_storyboard_with_a_character_from_the_command_line_and_a_prompts_file(tmp_path):
    design = tmp_path / "mira.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)).save(design)
    prompts = tmp_path / "panels.txt"
    prompts.write_text("[Mira] meets [Old Bo] | seed=30\na quiet street\n", encoding="utf-8")
    out = tmp_path / "run"
    code = cli.main([*BASE, "--character", MIRA, "--character", "Old Bo=an old man with a blue hat",
                     "--character-words", "Mira=girl,raincoat", "--character-image", f"Mira={design}",
                     "--character-dropout", "0.3", "--character-layers", "all", "--prompt", "[Mira] runs",
                     "--prompts-file", str(prompts), "--out", str(out)])
    assert code == 0
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in run["characters"]] == ["Mira", "Old Bo"]
    assert run["characters"][0]["words"] == ["girl", "raincoat"] and run["settings"]["character_dropout"] == 0.3
    files = [a["file"] for a in run["anchors"]]
    assert files == ["anchor-Mira-1.png", "anchor-Mira-2.png", "anchor-Old_Bo-1.png", "anchor-Old_Bo-2.png"]
    assert run["anchors"][0]["picture"] == str(design) and run["anchors"][1]["seed"] == 4 + 1000 + 1
    for name in files:
        with Image.open(out / name) as picture:
            assert picture.size == (192, 128)
            assert json.loads(picture.text["stylealigned"])["role"] == "anchor"
    panels = {p["index"]: p for p in run["panels"]}
    assert panels[1]["prompt"] == "[Mira] runs, ink wash" and set(panels[1]["masks"]) == {"Mira"}
    assert set(panels[2]["masks"]) == {"Mira", "Old Bo"} and "masks" not in panels[3]
    assert [len(row) for row in panels[2]["masks"]["Old Bo"]] == [6] * 4  # the deepest grid, 128/32 x 192/32


def test_the_request_a_command_line_describes():
    request = _request("--character", MIRA, "--anchors-per-character", "3", "--character-shift", "0.5",
                       "--prompt", "[Mira] sleeps")
    assert request.characters == (Character("Mira", "a red-haired girl in a yellow raincoat",
                                            anchor_seeds=(1004, 1005, 1006), anchor_text=", ink wash"),)
    assert request.settings.anchors_per_character == 3 and request.settings.character_shift == 0.5
    assert request.panels[0].prompt == "[Mira] sleeps, ink wash"


@pytest.mark.parametrize("args, message", [
    (["--character", MIRA, "--prompt", "[Bob] runs"], r"panel 1: the prompt names the unknown character \[Bob\]"),
    (["--character", "Mira", "--prompt", "[Mira] runs"], "--character takes NAME=VALUE"),
    (["--character", MIRA, "--character", MIRA, "--prompt", "x"], "--character Mira is given twice"),
    (["--character", MIRA, "--character-words", "Bob=hat", "--prompt", "x"], "names Bob, which no --character"),
    (["--character", MIRA, "--character-words", "Mira=dog", "--prompt", "x"], "'dog' of \\[Mira\\] is not a word"),
    (["--character", MIRA, "--character-image", "Mira=/no/such.png", "--prompt", "x"], r"an anchor picture of \[Mira\]: /no/such.png: no such file"),
    (["--character", "7up=a can", "--prompt", "x"], "a character's name starts with a capital letter"),
    (["--character", MIRA, "--character-dropout", "1.5", "--prompt", "[Mira]"], "character_dropout must be a number from 0 to 1"),
    (["--character", MIRA, "--anchors-per-character", "0", "--prompt", "[Mira]"], "anchors_per_character must be a whole number from 1 to 8"),
])
def test_mistakes_are_said_before_any_model_loads(tmp_path, capsys, args, message):
    code = cli.main([*BASE, *args, "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1, err  # one line
    assert not (tmp_path / "run").exists()  # no empty output folder left behind


def test_a_layer_choice_that_does_not_exist_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        cli.main([*BASE, "--character-layers", "middle", "--prompt", "x", "--out", str(tmp_path)])
    assert refused.value.code == 2 and "up" in capsys.readouterr().err
