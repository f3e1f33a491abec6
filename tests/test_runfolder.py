import hashlib
import json
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop.engine.events import RunResult
from stylealigned_desktop.engine.request import (
    Character,
    GeneratedReference,
    Lora,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
    character_dict,
)
from stylealigned_desktop.engine.runfolder import (
    contact_sheet,
    read_parameters,
    read_run,
    subject_of,
    write_run_folder,
)
from stylealigned_desktop.engine.settings import StyleAlignedSettings


def _request(only=None, seeds=(2, 3)):
    return SetRequest(
        model="tiny",
        style=GeneratedReference("a train, ink", 1),
        panels=(Panel("a car, ink", seeds[0], PanelControl("c.png", "canny")), Panel("a boat, ink", seeds[1])),
        sampling=Sampling(steps=2, width=64, height=64),
        only=only,
    )


def _result(colour, indices=(0, 1)):
    image = Image.new("RGB", (64, 64), colour)
    return RunResult(reference=image, panels={i: image for i in indices},
                     metadata={"micro_batch": 2, "device": "cpu", "dtype": "float32", "timings": {"denoise_s": 1}})


def test_writes_every_file_with_parameters(tmp_path):
    write_run_folder(tmp_path, _request(), _result("red"), style_text="ink")
    run = read_run(tmp_path)
    assert run["reference"]["subject"] == "a train" and [p["subject"] for p in run["panels"]] == ["a car", "a boat"]
    assert run["panels"][0]["control"]["mode"] == "canny" and run["panels"][1]["control"] is None
    assert run["versions"]["torch"] and run["timings"]["denoise_s"] == 1
    params = read_parameters(tmp_path / "panel-02.png")
    assert params["prompt"] == "a boat, ink" and params["seed"] == 3 and params["steps"] == 2
    assert params["stylealigned"]["share_attention"] is True and params["model"] == "tiny"
    with Image.open(tmp_path / "contact-sheet.png") as sheet:
        assert sheet.width > 64 * 3


def test_run_records_the_apps_version_also_where_the_app_has_no_installed_metadata(tmp_path, monkeypatch):
    """A frozen build, like a source tree run without ``pip install``, has no metadata of the
    app: its run.json names the same version as an installed run's."""
    import importlib.metadata

    import stylealigned_desktop

    installed_version = importlib.metadata.version

    def version_without_the_app(name):
        if name == "stylealigned-desktop":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed_version(name)

    write_run_folder(tmp_path / "installed", _request(), _result("red"), style_text="ink")
    monkeypatch.setattr(importlib.metadata, "version", version_without_the_app)
    write_run_folder(tmp_path / "frozen", _request(), _result("red"), style_text="ink")
    installed, frozen = (read_run(tmp_path / name)["versions"] for name in ("installed", "frozen"))
    assert frozen["stylealigned-desktop"] == installed["stylealigned-desktop"] == stylealigned_desktop.__version__
    assert frozen["torch"] == installed["torch"]


def test_reroll_replaces_only_the_chosen_panels(tmp_path):
    write_run_folder(tmp_path, _request(), _result("red"), style_text="ink")
    write_run_folder(tmp_path, _request(only=(1,), seeds=(2, 99)), _result("blue", indices=(1,)), style_text="ink")
    run = read_run(tmp_path)
    assert [p["seed"] for p in run["panels"]] == [2, 99] and run["rerolled"] == [2]
    with Image.open(tmp_path / "panel-01.png") as one, Image.open(tmp_path / "panel-02.png") as two:
        assert one.getpixel((0, 0)) == (255, 0, 0) and two.getpixel((0, 0)) == (0, 0, 255)


def test_read_run_errors(tmp_path):
    with pytest.raises(ValueError, match="no run.json"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(ValueError, match="broken JSON"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": "stylealigned-run", "version": 99}))
    with pytest.raises(ValueError, match="newer"):
        read_run(tmp_path)


def test_subject_and_contact_sheet_helpers():
    assert subject_of("a car, ink", "ink") == "a car" and subject_of("a car", "") == "a car"
    assert subject_of("a car in ink", "ink") == "a car in ink"
    sheet = contact_sheet([(str(i), Image.new("RGB", (10, 20), "green")) for i in range(5)], tile_size=32)
    assert sheet.size[0] > 4 * 32 and sheet.size[1] > 2 * 32
    with pytest.raises(ValueError):
        contact_sheet([])


# A1111's own parser of its "parameters" text (stable-diffusion-webui, modules/infotext_utils.py,
# parse_generation_parameters, trimmed to what it does with the text): image browsers, Civitai and
# other SD tools read our pictures the same way.
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_parse(text: str) -> dict:
    result, prompt, negative, done_with_prompt = {}, "", "", False
    *lines, lastline = text.strip().split("\n")
    if len(A1111_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for key, value in A1111_PARAM.findall(lastline):
        if value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        size = A1111_IMAGESIZE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    result["Prompt"], result["Negative prompt"] = prompt, negative
    return result


def test_pictures_carry_a1111_parameters_and_the_full_json(tmp_path):
    request = SetRequest(
        model="/models/my, sdxl: v2",  # a comma and a colon: A1111 quotes the value
        style=GeneratedReference("a train, ink", 1),
        panels=(Panel("a car, ink", 7), Panel("a boat, ink", 3)),
        sampling=Sampling(steps=30, guidance=7.5, width=128, height=64, scheduler="dpmpp-2m",
                          negative_prompt="blurry, text"),
        settings=StyleAlignedSettings(shared_score_shift=0.5, adain_values=True),
    )
    write_run_folder(tmp_path, request, _result("red"), style_text="ink")
    with Image.open(tmp_path / "panel-01.png") as image:
        chunks = dict(image.text)
    a1111 = a1111_parse(chunks["parameters"])
    assert a1111["Prompt"] == "a car, ink" and a1111["Negative prompt"] == "blurry, text"
    assert (a1111["Steps"], a1111["Sampler"], a1111["CFG scale"], a1111["Seed"]) == ("30", "DPM++ 2M", "7.5", "7")
    assert (a1111["Size-1"], a1111["Size-2"]) == ("128", "64")  # width x height
    assert a1111["Model"] == "/models/my, sdxl: v2"
    assert json.loads(a1111["StyleAligned"]) == request.settings.to_dict()
    full = json.loads(chunks["stylealigned"])
    assert full == read_parameters(tmp_path / "panel-01.png")
    assert (full["prompt"], full["seed"], full["width"], full["height"]) == ("a car, ink", 7, 128, 64)
    assert StyleAlignedSettings.from_dict(full["stylealigned"]) == request.settings
    reference = a1111_parse(read_text_chunk(tmp_path / "reference.png"))
    assert reference["Prompt"] == "a train, ink" and reference["Seed"] == "1"


# A1111's extra-network tags in a prompt (modules/extra_networks.py, parse_prompt) and its reading
# of "Lora hashes" when an infotext is pasted (extensions-builtin/Lora/scripts/lora_script.py).
A1111_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")


def a1111_lora_hashes(text: str) -> dict:
    pairs = [x.strip().split(":", 1) for x in text.split(",")]
    return {x[0].strip().replace(",", ""): x[1].strip() for x in pairs}


def addnet_hash(path) -> str:
    """kohya's LoRA hash, from its definition: SHA-256 of the bytes after the safetensors header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()


def _weights_file(path, seed):
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)}, str(path),
              metadata={"ss_output_name": path.stem})
    return path


def test_loras_and_the_vae_are_written_as_a1111_writes_them(tmp_path):
    """Tags after the prompt, "Lora hashes" (12 digits of kohya's hash), "VAE" (its name) and
    "VAE hash" (10 digits of the file's SHA-256) for A1111, Forge and Civitai; the JSON keeps
    where each file was, its weight and the memory mode, for the app's own restore."""
    ink = _weights_file(tmp_path / "loras" / "ink-wash.safetensors", 1)
    paper = _weights_file(tmp_path / "loras" / "paper, rough.safetensors", 2)  # a comma: dropped
    vae = _weights_file(tmp_path / "vaes" / "sdxl_vae.safetensors", 3)
    request = SetRequest(
        model="tiny", style=GeneratedReference("a train, ink", 1), panels=(Panel("a car, ink", 7),),
        sampling=Sampling(steps=3, width=128, height=64), memory="low", vae=str(vae),
        loras=(Lora(str(ink), 0.7), Lora(str(paper), -0.3)),
    )
    write_run_folder(tmp_path / "run", request, _result("red", indices=(0,)))
    a1111 = a1111_parse(read_text_chunk(tmp_path / "run" / "panel-01.png"))
    assert A1111_EXTRA_NET.findall(a1111["Prompt"]) == [("lora", "ink-wash:0.7"), ("lora", "paper rough:-0.3")]
    assert A1111_EXTRA_NET.sub("", a1111["Prompt"]).strip() == "a car, ink"
    assert a1111_lora_hashes(a1111["Lora hashes"]) == {"ink-wash": addnet_hash(ink)[:12],
                                                       "paper rough": addnet_hash(paper)[:12]}
    assert a1111["VAE"] == "sdxl_vae.safetensors"
    assert a1111["VAE hash"] == hashlib.sha256(vae.read_bytes()).hexdigest()[:10]
    assert a1111["Steps"] == "3" and a1111["Seed"] == "7"  # the other fields still parse
    full = read_parameters(tmp_path / "run" / "panel-01.png")
    assert full["prompt"] == "a car, ink" and full["memory"] == "low" and full["vae"] == str(vae)
    assert [(x["file"], x["path"], x["weight"], x["hash"]) for x in full["loras"]] == [
        ("ink-wash.safetensors", str(ink), 0.7, addnet_hash(ink)),
        ("paper, rough.safetensors", str(paper), -0.3, addnet_hash(paper))]
    assert read_run(tmp_path / "run")["loras"] == full["loras"]

    folder_vae = tmp_path / "vaes" / "fp16-fix"
    folder_vae.mkdir()
    write_run_folder(tmp_path / "run2", replace(request, vae=str(folder_vae), loras=()),
                     _result("red", indices=(0,)))
    a1111 = a1111_parse(read_text_chunk(tmp_path / "run2" / "panel-01.png"))
    assert a1111["VAE"] == "fp16-fix" and "VAE hash" not in a1111 and "Lora hashes" not in a1111
    assert "<lora:" not in a1111["Prompt"]


def read_text_chunk(path, name="parameters"):
    with Image.open(path) as image:
        return image.text[name]


def test_pictures_of_earlier_versions_and_foreign_pictures(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    old = tmp_path / "old.png"
    info = PngInfo()
    info.add_text("parameters", json.dumps({"prompt": "a boat", "steps": 4}))
    Image.new("RGB", (8, 8)).save(old, pnginfo=info)
    assert read_parameters(old) == {"prompt": "a boat", "steps": 4}
    foreign = tmp_path / "a1111.png"
    info = PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512")
    Image.new("RGB", (8, 8)).save(foreign, pnginfo=info)
    with pytest.raises(ValueError, match="no StyleAligned settings"):
        read_parameters(foreign)


def test_several_references_and_mixed_sizes_are_recorded(tmp_path):
    request = SetRequest(
        model="tiny",
        style=(GeneratedReference("a train, ink", 1, weight=3), ReferencePicture("/mood/cat.png", "a cat", weight=1),
               GeneratedReference("unused, ink", 5, weight=0)),
        panels=(Panel("a car, ink", 2, size=(192, 64)), Panel("a boat, ink", 3, size=(64, 128)), Panel("x, ink", 4)),
        sampling=Sampling(steps=2, width=128, height=128),
    )
    square, wide, tall = (Image.new("RGB", size, c) for size, c in [((128, 128), "red"), ((192, 64), "green"),
                                                                   ((64, 128), "blue")])
    result = RunResult(reference=square, panels={0: wide, 1: tall, 2: square}, metadata={},
                       references={0: square, 1: square})
    write_run_folder(tmp_path, request, result, style_text="ink")
    run = read_run(tmp_path)
    refs = run["references"]
    assert [(r["file"], r["kind"], r["weight"]) for r in refs] == [
        ("reference.png", "generated", 0.75), ("reference-02.png", "picture", 0.25), (None, "generated", 0.0)]
    assert refs[0]["subject"] == "a train" and refs[1]["picture"] == "/mood/cat.png" and run["reference"] == refs[0]
    assert [r["weight"] for r in run["style"]] == [3.0, 1.0, 0.0]  # as requested
    assert not (tmp_path / "reference-03.png").exists()
    assert [(p["width"], p["height"]) for p in run["panels"]] == [(192, 64), (64, 128), (128, 128)]
    params = read_parameters(tmp_path / "panel-01.png")
    assert (params["width"], params["height"]) == (192, 64)
    assert [r["weight"] for r in params["references"]] == [0.75, 0.25, 0.0]
    ref2 = read_parameters(tmp_path / "reference-02.png")
    assert ref2["role"] == "reference" and ref2["reference_index"] == 2 and ref2["weight"] == 0.25
    with Image.open(tmp_path / "panel-01.png") as image:
        assert image.size == (192, 64)


def test_contact_sheet_keeps_each_pictures_shape():
    wide = Image.new("RGB", (210, 120), "red")  # 7:4
    tall = Image.new("RGB", (64, 128), "blue")
    sheet = contact_sheet([("wide", wide), ("tall", tall)], tile_size=140)

    def box(colour):
        pixels = [(x, y) for x in range(sheet.width) for y in range(sheet.height) if sheet.getpixel((x, y)) == colour]
        xs, ys = [p[0] for p in pixels], [p[1] for p in pixels]
        return max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    w, h = box((255, 0, 0))
    assert w == 140 and abs(w / h - 210 / 120) < 0.03
    w, h = box((0, 0, 255))
    assert h == 140 and abs(h / w - 2) < 0.03


# --- pictures and record committed together; hostile run.json (issue 17) ---------------------

KILLED_REROLL = """
import os, sys
from PIL import Image
from stylealigned_desktop.engine import runfolder
from stylealigned_desktop.engine.events import RunResult
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
kill_at, where = sys.argv[1], sys.argv[2]
request = SetRequest(model="tiny", style=GeneratedReference("a train", 1),
                     panels=(Panel("a car", 2), Panel("a boat", 42)),
                     sampling=Sampling(steps=2, width=64, height=64), only=(1,))
image = Image.new("RGB", (64, 64), "blue")
calls = {"n": 0}
def killer(real):
    def call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os._exit(9)
        return real(*args, **kwargs)
    return call
if kill_at == "staging":
    Image.Image.save = killer(Image.Image.save)  # the second picture (the contact sheet) is never saved
else:
    os.replace = killer(os.replace)  # after the journal: one picture renamed, then killed
runfolder.write_run_folder(where, request, RunResult(reference=None, panels={1: image}, metadata={}))
"""


def _seeds_agree(folder):
    run = read_run(folder)  # a reader: finishes an interrupted commit first
    return {p["index"]: (p["seed"], read_parameters(folder / p["file"])["seed"]) for p in run["panels"]}


@pytest.mark.parametrize("kill_at", ["staging", "renames"])
def test_a_killed_reroll_never_leaves_pictures_and_record_disagreeing(tmp_path, kill_at):
    import subprocess
    import sys

    write_run_folder(tmp_path, _request(seeds=(2, 2)), _result("red"))
    result = subprocess.run([sys.executable, "-c", KILLED_REROLL, kill_at, str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    seeds = _seeds_agree(tmp_path)
    assert all(recorded == pictured for recorded, pictured in seeds.values()), seeds
    assert seeds[2][0] == (2 if kill_at == "staging" else 42)


def test_stale_temporaries_of_a_killed_run_are_removed_and_fresh_ones_kept(tmp_path):
    import os
    import time

    stale = tmp_path / ".panel-01.png.99999999.abcd.tmp"
    fresh = tmp_path / ".panel-02.png.99999998.efgh.tmp"  # another writer, right now
    for path in (stale, fresh):
        path.write_bytes(b"half a picture")
    long_ago = time.time() - 120
    os.utime(stale, (long_ago, long_ago))
    write_run_folder(tmp_path, _request(), _result("red"))
    assert not stale.exists() and fresh.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p != fresh]


@pytest.mark.parametrize("change, message", [
    (lambda run: run["panels"][0].update(file="../secret.png"), "file name"),
    (lambda run: run["panels"][0].update(file="/etc/passwd"), "file name"),
    (lambda run: run["panels"][0].update(file="panel-02.png"), "panel-01.png"),
    (lambda run: run["panels"][0].update(index="1"), "index"),
    (lambda run: run["reference"].update(file="..\\\\x.png"), "file name"),
    (lambda run: run.update(panels={"1": {}}), "list"),
])
def test_a_hostile_run_json_is_refused_by_readers(tmp_path, change, message):
    write_run_folder(tmp_path, _request(), _result("red"))
    run = json.loads((tmp_path / "run.json").read_text())
    change(run)
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=message):
        read_run(tmp_path)


def test_a_run_json_that_is_a_fifo_or_a_link_is_refused_without_waiting(tmp_path):
    import os

    (tmp_path / "a").mkdir()
    os.mkfifo(tmp_path / "a" / "run.json")
    with pytest.raises(ValueError, match="regular file"):
        read_run(tmp_path / "a")
    write_run_folder(tmp_path / "b", _request(), _result("red"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "run.json").symlink_to(tmp_path / "b" / "run.json")
    with pytest.raises(ValueError, match="regular file"):
        read_run(tmp_path / "c")


def test_pictures_of_a_set_with_characters_record_them_and_a1111_reads_the_expanded_prompt(tmp_path):
    """Spec section 13 (issue 25, Records): the PNG's JSON holds the characters, the anchor and
    the character settings; A1111's text holds the prompt with each [Name] spelled out."""
    mira = Character("Mira", "a red-haired girl in a yellow raincoat", ("girl",), anchor_seeds=(5, 6))
    bo = Character("Old Bo", "an old man", anchor_seeds=(7, 8))
    request = SetRequest(
        model="tiny", style=GeneratedReference("a train, ink", 1),
        panels=(Panel("[Mira] meets [Old Bo] at [Mira]'s door [sic], ink", 7), Panel("a boat, ink", 3)),
        sampling=Sampling(steps=2, guidance=5.0, width=64, height=64),
        settings=StyleAlignedSettings(character_dropout=0.3, anchors_per_character=2), characters=(mira, bo))
    result = _result("red")
    result.anchors[("anchor", "Mira", 0)] = Image.new("RGB", (64, 64), "blue")
    result.masks[("anchor", "Mira", 0)] = {"Mira": np.array([[0, 1], [1, 1]], np.uint8)}
    write_run_folder(tmp_path, request, result, style_text="ink")
    a1111 = a1111_parse(read_text_chunk(tmp_path / "panel-01.png"))
    assert a1111["Prompt"] == ("a red-haired girl in a yellow raincoat meets an old man at a red-haired girl in a "
                               "yellow raincoat's door [sic], ink")
    assert a1111_parse(read_text_chunk(tmp_path / "panel-02.png"))["Prompt"] == "a boat, ink"
    full = read_parameters(tmp_path / "panel-01.png")
    assert full["prompt"] == request.panels[0].prompt  # the app restores the names, not the text
    assert full["characters"] == [character_dict(mira), character_dict(bo)]
    assert full["stylealigned"]["character_dropout"] == 0.3 and full["stylealigned"]["anchors_per_character"] == 2
    anchor = read_parameters(tmp_path / "anchor-Mira-1.png")
    assert (anchor["role"], anchor["character"], anchor["anchor"], anchor["seed"]) == ("anchor", "Mira", 1, 5)
    assert anchor["character_record"] == character_dict(mira) and anchor["characters"] == full["characters"]
