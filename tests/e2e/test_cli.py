"""The command line end to end, as a user runs it (subprocesses, the tiny model)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stylealigned_desktop.engine.runfolder import read_parameters

SMALL = ["--model", "tiny", "--steps", "3", "--width", "128", "--height", "128", "--quiet"]


def run_cli(*args, cwd=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "stylealigned_desktop.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pics") / "mood.png"
    image = Image.new("RGB", (180, 120), (240, 220, 180))
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 20, 120, 100), fill=(40, 60, 160))
    draw.line((0, 119, 179, 0), fill=(200, 30, 30), width=6)
    image.save(path)
    return path


def test_generate_writes_every_file_with_metadata_and_is_reproducible(tmp_path):
    args = ["generate", *SMALL, "--reference-prompt", "a toy train", "--prompt", "a toy car",
            "--prompt", "a toy boat", "--prompt", "a toy plane", "--style", "macro photo. 3d game asset.",
            "--seed", "7", "--micro-batch", "2"]
    first = run_cli(*args, "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "a"
    files = ["reference.png", "panel-01.png", "panel-02.png", "panel-03.png", "contact-sheet.png", "run.json"]
    assert all((out / name).is_file() for name in files)
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "stylealigned-run" and run["model"] == "tiny"
    assert [p["seed"] for p in run["panels"]] == [8, 9, 10] and run["reference"]["seed"] == 7
    assert run["panels"][1]["subject"] == "a toy boat" and run["style_text"] == "macro photo. 3d game asset."
    assert run["sampling"]["scheduler"] == "ddim" and run["sampling"]["negative_prompt"] is None
    assert {"torch", "diffusers", "transformers"} <= set(run["versions"]) and run["timings"]
    params = read_parameters(out / "panel-02.png")
    assert params["prompt"] == "a toy boat, macro photo. 3d game asset." and params["seed"] == 9
    assert params["steps"] == 3 and params["width"] == 128 and params["guidance"] == 5.0
    assert params["scheduler"] == "ddim" and params["model"] == "tiny" and "stylealigned" in params
    with Image.open(out / "reference.png") as reference:
        assert reference.size == (128, 128)
    second = run_cli(*args, "--out", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    for name in files[:4]:
        assert np.array_equal(pixels(out / name), pixels(tmp_path / "b" / name)), name


def test_reroll_changes_only_the_chosen_panel(tmp_path):
    base = ["generate", *SMALL, "--reference-prompt", "a castle", "--prompt", "a knight", "--prompt", "a dragon",
            "--prompt", "a horse", "--out", tmp_path]
    assert run_cli(*base).returncode == 0
    before = {n: pixels(tmp_path / f"panel-0{n}.png") for n in (1, 2, 3)}
    result = run_cli(*base, "--only", "2", "--panel-seeds", "1,99,3")
    assert result.returncode == 0, result.stderr
    after = {n: pixels(tmp_path / f"panel-0{n}.png") for n in (1, 2, 3)}
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[3], after[3])
    assert not np.array_equal(before[2], after[2])
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["panels"][1]["seed"] == 99 and run["rerolled"] == [2]


def test_reference_picture_mode_end_to_end(tmp_path, picture):
    result = run_cli("generate", *SMALL, "--reference-image", picture, "--reference-caption", "",
                     "--prompt", "a house", "--prompt", "a tree", "--style", "oil painting",
                     "--inversion-offset", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["style"]["kind"] == "picture" and run["sampling"]["guidance"] == 10.0
    assert run["settings"]["share_group_norm"] is True and abs(run["settings"]["shared_score_shift"] - 0.6931) < 1e-3
    params = read_parameters(tmp_path / "reference.png")
    assert params["style_source"]["path"] == str(picture)


def test_mixed_controls_from_a_prompts_file(tmp_path, picture):
    board = tmp_path / "board.txt"
    board.write_text(
        "# a storyboard with mixed controls\n"
        f"a harbour at dawn | control=canny:{picture.name} | scale=0.9\n"
        "a lighthouse\n"
        f"a ship | control=depth:{picture} | end=0.8\n", encoding="utf-8")
    (tmp_path / picture.name).write_bytes(picture.read_bytes())
    result = run_cli("generate", *SMALL, "--reference-prompt", "a port town", "--prompts-file", board,
                     "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    controls = [p["control"] for p in run["panels"]]
    assert controls[0]["mode"] == "canny" and controls[0]["scale"] == 0.9
    assert controls[1] is None and controls[2]["mode"] == "depth" and controls[2]["guidance_end"] == 0.8


def test_preprocess_invert_and_make_tiny(tmp_path, picture):
    canny = run_cli("preprocess", picture, "--mode", "canny", "--width", "96", "--height", "64",
                    "--out", tmp_path / "edges.png")
    assert canny.returncode == 0, canny.stderr
    edges = pixels(tmp_path / "edges.png")
    assert edges.shape == (64, 96, 3) and set(np.unique(edges)) <= {0, 255}
    inverted = run_cli("invert", picture, "--model", "tiny", "--steps", "2", "--width", "64", "--height", "64",
                       "--out", tmp_path / "traj.safetensors")
    assert inverted.returncode == 0, inverted.stderr
    from safetensors.torch import load_file

    assert load_file(tmp_path / "traj.safetensors")["latents"].shape == (3, 4, 8, 8)
    made = run_cli("models", "make-tiny", tmp_path / "tiny-model")
    assert made.returncode == 0 and (tmp_path / "tiny-model" / "model_index.json").is_file()
    from_folder = run_cli("generate", "--model", tmp_path / "tiny-model", "--steps", "2", "--width", "64",
                          "--height", "64", "--reference-prompt", "a", "--prompt", "b", "--quiet",
                          "--out", tmp_path / "from-folder")
    assert from_folder.returncode == 0, from_folder.stderr


def _bad_inputs(tmp_path, picture):
    (tmp_path / "model.ckpt").write_bytes(b"\x80")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "locked").mkdir()
    base = ["generate", "--model", "tiny", "--out", tmp_path / "o"]
    return {
        "unknown model path": ([*base[:1], "--model", tmp_path / "nope", "--reference-prompt", "a", "--prompt", "b",
                                "--out", tmp_path / "o"], "no such file"),
        "pickle checkpoint": ([*base[:1], "--model", tmp_path / "model.ckpt", "--reference-prompt", "a",
                               "--prompt", "b", "--out", tmp_path / "o"], "pickle"),
        "no prompts": ([*base, "--reference-prompt", "a"], "no panel prompts"),
        "empty prompts file": ([*base, "--reference-prompt", "a", "--prompts-file", tmp_path / "empty.txt"],
                               "no panel prompts"),
        "size not a multiple of 8": ([*base, "--reference-prompt", "a", "--prompt", "b", "--width", "1001"],
                                     "multiple of 8"),
        "out of range setting": ([*base, "--reference-prompt", "a", "--prompt", "b", "--only-self-level", "2"],
                                 "only_self_level"),
        "unwritable output": ([*base[:3], "--reference-prompt", "a", "--prompt", "b", "--out",
                               "/proc/stylealigned/out"], "cannot write"),
        "corrupt reference picture": ([*base, "--reference-image", tmp_path / "corrupt.png", "--prompt", "b",
                                       "--steps", "2", "--width", "64", "--height", "64"], "corrupt.png"),
        "bad panel seeds": ([*base, "--reference-prompt", "a", "--prompt", "b", "--panel-seeds", "1,2"],
                            "panel-seeds"),
        "missing control picture": ([*base, "--reference-prompt", "a", "--prompt", "b", "--control", "canny",
                                     "--control-image", tmp_path / "nope.png", "--steps", "2", "--width", "64",
                                     "--height", "64"], "nope.png"),
    }


def test_bad_input_gets_one_line_and_exit_code_2(tmp_path, picture):
    for name, (args, fragment) in _bad_inputs(tmp_path, picture).items():
        result = run_cli(*args)
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
        message = [line for line in result.stderr.splitlines() if line.startswith("stylealigned: error")]
        assert len(message) == 1 and fragment in message[0], (name, result.stderr)


def test_a_mixed_size_storyboard_from_a_prompts_file(tmp_path):
    board = tmp_path / "board.txt"
    board.write_text("# wide, tall and the set's size\n"
                     "the harbour at dawn | size=192x128\n"
                     "the keeper's face | size=64x128 | seed=41\n"
                     "a teacup\n", encoding="utf-8")
    result = run_cli("generate", *SMALL, "--reference-prompt", "a lighthouse", "--style", "ink wash",
                     "--prompts-file", board, "--micro-batch", "2", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    sizes = {}
    for name in ("reference.png", "panel-01.png", "panel-02.png", "panel-03.png"):
        with Image.open(out / name) as image:
            sizes[name] = image.size
    assert sizes == {"reference.png": (128, 128), "panel-01.png": (192, 128), "panel-02.png": (64, 128),
                     "panel-03.png": (128, 128)}
    run = json.loads((out / "run.json").read_text())
    assert [(p["width"], p["height"]) for p in run["panels"]] == [(192, 128), (64, 128), (128, 128)]
    params = read_parameters(out / "panel-02.png")
    assert (params["width"], params["height"], params["seed"]) == (64, 128, 41)
    with Image.open(out / "contact-sheet.png") as sheet:
        assert sheet.width > 128
    # the same panel alone, at its size, is the same picture: the others' sizes do not matter
    again = run_cli("generate", *SMALL, "--reference-prompt", "a lighthouse", "--style", "ink wash",
                    "--prompt", "the keeper's face", "--panel-seeds", "41", "--panel-sizes", "64x128",
                    "--micro-batch", "2", "--out", tmp_path / "alone")
    assert again.returncode == 0, again.stderr
    assert np.abs(pixels(tmp_path / "alone" / "panel-01.png") - pixels(out / "panel-02.png")).max() <= 1


def test_two_weighted_references_blend_and_are_recorded(tmp_path, picture):
    result = run_cli("generate", *SMALL, "--reference-image", f"{picture}:3", "--reference-caption", "a blue box",
                     "--reference-prompt", "a red kite:1", "--style", "gouache", "--inversion-offset", "1",
                     "--prompt", "a bird", "--prompt", "a boat", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 references and 2 panel(s)" not in result.stderr  # --quiet
    run = json.loads((tmp_path / "run.json").read_text())
    assert [(r["kind"], r["weight"]) for r in run["references"]] == [("picture", 0.75), ("generated", 0.25)]
    assert [r["file"] for r in run["references"]] == ["reference.png", "reference-02.png"]
    assert run["references"][1]["prompt"] == "a red kite, gouache" and run["sampling"]["guidance"] == 10.0
    assert [r["weight"] for r in run["style"]] == [3.0, 1.0]
    for name in ("reference.png", "reference-02.png", "panel-01.png", "panel-02.png"):
        assert (tmp_path / name).is_file(), name
    panel = read_parameters(tmp_path / "panel-01.png")
    assert [(r["kind"], r["weight"]) for r in panel["references"]] == [("picture", 0.75), ("generated", 0.25)]
    kite = read_parameters(tmp_path / "reference-02.png")
    assert kite["role"] == "reference" and kite["reference_index"] == 2 and kite["weight"] == 0.25
    # the blend is not either reference alone
    alone = run_cli("generate", *SMALL, "--reference-prompt", "a red kite", "--style", "gouache", "--guidance", "10",
                    "--share-group-norm", "--shared-score-shift", "0.6931471805599453",
                    "--prompt", "a bird", "--prompt", "a boat", "--out", tmp_path / "alone")
    assert alone.returncode == 0, alone.stderr
    # each reference is drawn as alone (up to the rounding of a bigger UNet batch)
    assert np.abs(pixels(tmp_path / "alone" / "reference.png") - pixels(tmp_path / "reference-02.png")).max() <= 1
    assert np.abs(pixels(tmp_path / "alone" / "panel-01.png") - pixels(tmp_path / "panel-01.png")).mean() > 1
