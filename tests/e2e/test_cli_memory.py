"""``--memory``, ``--lora`` and ``--vae`` on the command line, as a user types them (issue 12)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylealigned_desktop.engine.generator import Engine
from stylealigned_desktop.engine.inversion import TrajectoryFileError, load_trajectory
from stylealigned_desktop.engine.models import model_identity
from stylealigned_desktop.engine.request import Lora, Panel, ReferencePicture, Sampling, SetRequest
from stylealigned_desktop.engine.runfolder import read_parameters
from stylealigned_desktop.engine.tiny import build_tiny_components
from tests.e2e.test_cli import pixels, run_cli
from tests.loras import tiny_lora_state, write_diffusers_lora, write_sd15_lora

SET = ["generate", "--model", "tiny", "--steps", "2", "--width", "128", "--height", "64", "--quiet",
       "--scheduler", "euler", "--reference-prompt", "a toy train", "--prompt", "a car", "--prompt", "a boat"]
PICTURES = ["reference.png", "panel-01.png", "panel-02.png"]


@pytest.fixture(scope="module")
def extras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extras")
    vae = build_tiny_components()["vae"]
    vae.register_to_config(force_upcast=False)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    return {"lora": write_diffusers_lora(folder / "ink.safetensors", tiny_lora_state(seed=3)),
            "sd15": write_sd15_lora(folder / "sd15-style.safetensors"), "vae": folder / "vae"}


def test_memory_lora_and_vae_flags_reach_the_pictures_and_the_record(tmp_path, extras):
    plain = run_cli(*SET, "--memory", "fast", "--out", tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    styled = [*SET, "--lora", f"{extras['lora']}:0.8", "--vae", extras["vae"]]
    low = run_cli(*styled, "--memory", "low", "--out", tmp_path / "low")
    assert low.returncode == 0, low.stderr
    run = json.loads((tmp_path / "low" / "run.json").read_text())
    assert run["memory_mode"] == "low"
    recorded = [(x["file"], x["path"], x["weight"]) for x in run["loras"]]
    assert recorded == [("ink.safetensors", str(extras["lora"]), 0.8)] and run["vae"] == str(extras["vae"])
    params = read_parameters(tmp_path / "low" / "panel-02.png")
    assert params["loras"] == run["loras"] and params["vae"] == str(extras["vae"]) and params["memory"] == "low"
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["loras"] == []
    for name in PICTURES:  # the LoRA (and the VAE) changed every picture
        assert np.abs(pixels(tmp_path / "plain" / name) - pixels(tmp_path / "low" / name)).max() > 8, name
    fast = run_cli(*styled, "--memory", "fast", "--out", tmp_path / "fast")
    assert fast.returncode == 0, fast.stderr
    for name in PICTURES:  # the memory mode never changes a picture
        assert np.array_equal(pixels(tmp_path / "fast" / name), pixels(tmp_path / "low" / name)), name


def test_lora_and_memory_mistakes_get_one_line_and_exit_code_2(tmp_path, extras):
    pickle = tmp_path / "style.ckpt"
    pickle.write_bytes(b"not really")
    cases = {
        # a LoRA file the command line can refuse is refused while parsing, before any model loads
        "missing": (["--lora", tmp_path / "gone.safetensors:0.5"], "argument --lora: LoRA file not found"),
        "pickle": (["--lora", pickle], "argument --lora: style.ckpt: pickle"),
        "another base": (["--lora", extras["sd15"]], "is a LoRA for SD 1.5"),
        "bad weight": (["--lora", f"{extras['lora']}:nan"], "weight"),
        "memory": (["--memory", "turbo"], "invalid choice"),
    }
    for name, (args, fragment) in cases.items():
        result = run_cli(*SET, *args, "--out", tmp_path / name)
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr, name
        message = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(message) == 1 and fragment in message[0], (name, result.stderr)
        assert not (tmp_path / name / "reference.png").exists(), name


def test_invert_encodes_with_the_vae_and_inverts_with_the_loras_as_a_run_does(tmp_path, extras):
    picture = tmp_path / "mood.png"
    image = Image.new("RGB", (150, 90), (230, 200, 150))
    ImageDraw.Draw(image).ellipse((30, 10, 120, 80), fill=(30, 60, 170))
    image.save(picture)
    out = tmp_path / "trajectory.safetensors"
    done = run_cli("invert", picture, "--model", "tiny", "--steps", "2", "--width", "128", "--height", "64",
                   "--caption", "a sunset", "--lora", f"{extras['lora']}:0.8", "--vae", extras["vae"],
                   "--memory", "low", "--out", out)
    assert done.returncode == 0, done.stderr
    request = SetRequest(model="tiny", style=ReferencePicture(str(picture), "a sunset"), panels=(Panel("a car", 1),),
                         sampling=Sampling(steps=2, width=128, height=64), loras=(Lora(str(extras["lora"]), 0.8),),
                         vae=str(extras["vae"]), cache_dir=str(tmp_path / "cache"))
    key, trajectory = Engine().reference_trajectory(request)
    saved = load_trajectory(out, key)  # saved for the run's key: the model with its VAE and LoRA
    assert torch.equal(saved.latents, trajectory.latents)
    with pytest.raises(TrajectoryFileError, match="different inputs"):
        load_trajectory(out, replace(key, model=model_identity("tiny")))
    plain_key, plain = Engine().reference_trajectory(replace(request, loras=(), vae=None))
    assert (plain.latents - trajectory.latents).abs().max() > 1e-3
