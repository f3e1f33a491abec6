"""Careless and hostile command lines: every bad number, prompts-file field, size and output
path is one line on stderr with exit code 2, before any model is loaded (issue 17)."""

from __future__ import annotations

import os
import pickle

import pytest

from stylealigned_desktop import cli
from stylealigned_desktop.engine import generator, models

BAD_NUMBERS = ["nan", "inf", "-inf", "1e309", "abc", ""]
GENERATE = ["generate", "--model", "tiny", "--reference-prompt", "a train", "--prompt", "a car",
            "--steps", "2", "--width", "64", "--height", "64", "--quiet"]
CONTROL = ["--control", "canny", "--control-image", "edges.png"]
PICTURE = ["--reference-image", "mood.png"]

# flag, values that must be refused besides BAD_NUMBERS, extra arguments it needs
CASES = [
    ("--guidance", ["-1", "51", "1e300"], []),
    ("--inversion-guidance", ["-1", "1e300"], PICTURE),
    ("--inversion-offset", ["-1", str(10**30)], PICTURE),
    ("--control-scale", ["-1", "1e300"], CONTROL),
    ("--control-start", ["-0.5", "1.5"], CONTROL),
    ("--control-end", ["-0.5", "2"], CONTROL),
    ("--canny-low", ["-1", "300"], CONTROL),
    ("--canny-high", ["-1", "300"], CONTROL),
    ("--width", ["0", "-64", "100000", "1099511627776", "65"], []),
    ("--height", ["0", "100000"], []),
    ("--steps", ["0", "-3", "100000"], []),
    ("--seed", ["-1", str(2**70)], []),
    ("--panel-seeds", ["-1", str(2**70)], []),
    ("--micro-batch", ["0", str(10**30)], []),
    ("--shared-score-shift", ["1e300"], []),
    ("--shared-score-scale", ["-1", "1e300"], []),
    ("--only-self-level", ["-0.1", "1.5"], []),
]


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """Any model loading or generation fails the test: validation must come first."""
    def started(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(models, "load_pipeline", started)
    monkeypatch.setattr(generator.Engine, "generate", started)
    monkeypatch.chdir(tmp_path)
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "edges.png")
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "mood.png")


def refused(capsys, *argv) -> str:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert err.count("\n") == 1 and err.startswith("stylealigned"), err
    assert "Traceback" not in err and "unexpected error" not in err
    return err


@pytest.mark.parametrize("flag, values, extra", CASES, ids=[c[0] for c in CASES])
def test_bad_numbers_on_the_command_line_are_one_line_errors(capsys, no_work, tmp_path, flag, values, extra):
    for value in BAD_NUMBERS + values:
        refused(capsys, *GENERATE, *extra, flag, value, "--out", tmp_path / "out")
    assert not (tmp_path / "out" / "run.json").exists()


@pytest.mark.parametrize("field", ["seed", "scale", "start", "end", "low", "high"])
def test_bad_numbers_in_a_prompts_file_name_the_line(capsys, no_work, tmp_path, field):
    for value in BAD_NUMBERS[:-1] + ["-1", str(2**70), "1e300"]:
        control = "" if field == "seed" else " | control=canny:edges.png"
        (tmp_path / "board.txt").write_text(f"# my board\na cat{control} | {field}={value}\n")
        err = refused(capsys, *GENERATE, "--prompts-file", "board.txt", "--out", tmp_path / "out")
        assert "board.txt:2" in err, err


def test_oversized_prompts_files_and_prompts_are_refused(capsys, no_work, tmp_path):
    (tmp_path / "many.txt").write_text("a cat\n" * 1001)
    assert "1000 panels" in refused(capsys, *GENERATE, "--prompts-file", "many.txt", "--out", "o")
    (tmp_path / "long.txt").write_text("a cat " * 200_000 + "\n")
    assert "2000" in refused(capsys, *GENERATE, "--prompts-file", "long.txt", "--out", "o")
    assert "2000" in refused(capsys, *GENERATE, "--prompt", "x" * 2001, "--out", "o")


def test_a_prompts_file_that_is_a_fifo_is_refused_at_once(capsys, no_work, tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would wait for a writer forever
    assert "regular file" in refused(capsys, *GENERATE, "--prompts-file", "pipe.txt", "--out", "o")


def test_output_paths_are_checked_before_any_work(capsys, no_work, tmp_path):
    (tmp_path / "taken").write_text("a file")
    assert "is a file" in refused(capsys, *GENERATE, "--out", "taken")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"format": "stylealigned-run", "version": 1, '
                                               '"panels": [{"index": 1, "file": "../x.png"}]}')
    assert "file name" in refused(capsys, *GENERATE, "--only", "1", "--out", "run")
    (tmp_path / "dir.safetensors").mkdir()
    assert "is a folder" in refused(capsys, "invert", "mood.png", "--model", "tiny", "--out", "dir.safetensors")
    assert "is a folder" in refused(capsys, "preprocess", "mood.png", "--mode", "canny", "--out", "run")


@pytest.mark.parametrize("argv", [
    ["invert", "mood.png", "--model", "tiny", "--out", "t.safetensors", "--steps", "100000"],
    ["invert", "mood.png", "--model", "tiny", "--out", "t.safetensors", "--guidance", "nan"],
    ["invert", "mood.png", "--model", "tiny", "--out", "t.safetensors", "--width", "100000"],
    ["invert", "mood.png", "--model", "tiny", "--out", "t.safetensors", "--height", "0"],
    ["preprocess", "mood.png", "--mode", "canny", "--out", "m.png", "--canny-low", "300"],
    ["preprocess", "mood.png", "--mode", "canny", "--out", "m.png", "--width", "100000"],
    ["generate", "--no-such-flag"],
    ["generate", "--width"],
    ["nonsense"],
])
def test_other_commands_and_argparse_errors_are_one_line(capsys, no_work, argv):
    refused(capsys, *argv)


def test_a_pickle_in_a_depth_model_folder_is_refused_without_running_it(capsys, tmp_path):
    from stylealigned_desktop.engine.control import build_tiny_depth_estimator

    model, processor = build_tiny_depth_estimator()
    folder = tmp_path / "dpt"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "model.safetensors").unlink()  # weights as a pickle, as old checkpoints ship them
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    from PIL import Image

    Image.new("RGB", (64, 64), "blue").save(tmp_path / "p.png")
    capsys.readouterr()  # the saving above printed progress
    err = refused(capsys, "preprocess", tmp_path / "p.png", "--mode", "depth", "--depth-model", folder,
                  "--device", "cpu", "--out", tmp_path / "m.png")
    assert "pickle" in err and not marker.exists()


def test_paths_that_are_not_utf8_are_used_as_the_os_gives_them(tmp_path):
    """A picture and an output named with bytes that are not UTF-8 (Linux allows any bytes)."""
    import subprocess
    import sys

    from PIL import Image

    folder = os.fsencode(tmp_path)
    picture, out = folder + b"/caf\xe9.png", folder + b"/edges-\xff.png"
    Image.new("RGB", (64, 64), "blue").save(os.fsdecode(picture))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")  # strict, as on most desktops
    result = subprocess.run([sys.executable, "-m", "stylealigned_desktop.cli", "preprocess", picture,
                             "--mode", "canny", "--width", "64", "--height", "64", "--out", out],
                            capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(out) and out in result.stdout  # printed back as the same bytes


def test_run_records_keep_paths_that_are_not_utf8(tmp_path):
    import json

    from PIL import Image

    from stylealigned_desktop.engine.events import RunResult
    from stylealigned_desktop.engine.request import Panel, ReferencePicture, Sampling, SetRequest
    from stylealigned_desktop.engine.runfolder import read_parameters, read_run, write_run_folder

    path = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    request = SetRequest(model="tiny", style=ReferencePicture(path), panels=(Panel("a cat", 1),),
                         sampling=Sampling(steps=2, width=64, height=64))
    image = Image.new("RGB", (64, 64))
    write_run_folder(tmp_path / "run", request, RunResult(reference=image, panels={0: image}, metadata={}))
    assert read_run(tmp_path / "run")["style"]["path"] == path
    assert read_parameters(tmp_path / "run" / "reference.png")["style_source"]["path"] == path
    json.loads((tmp_path / "run" / "run.json").read_bytes().decode("utf-8"))  # valid UTF-8 JSON
