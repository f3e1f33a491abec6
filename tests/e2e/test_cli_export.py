"""``stylealigned export`` end to end, as a user runs it: a run folder made by ``generate`` with
the tiny model from a prompts file carrying panel notes, and a saved session."""

from __future__ import annotations

import csv
import json
import random

import av
import opentimelineio as otio
from PIL import Image
from pypdf import PdfReader

from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session

from .test_cli import run_cli


def test_generate_then_export_everything(tmp_path):
    prompts = tmp_path / "board.txt"
    prompts.write_text(
        "a fox in the snow | dialogue=Where is everyone? | action=The fox looks up. | duration=0.6\n"
        "a crow on a branch | size=64x128 | camera=close-up | duration=0.9\n"
        "an empty field | scene=2 | dialogue=Gone. | notes=hold\n", "utf-8")
    run = tmp_path / "run"
    made = run_cli("generate", "--model", "tiny", "--steps", "2", "--width", "128", "--height", "64",
                   "--quiet", "--reference-prompt", "a forest", "--prompts-file", prompts, "--out", run)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    result = run_cli("export", run, "--pdf", out / "board.pdf", "--layout", "1", "--animatic",
                     out / "cut.mp4", "--size", "128x96", "--fps", "10", "--otio", out / "cut.otio",
                     "--shot-list", out / "shots.csv", "--storyboarder", out / "sb", "--quiet")
    assert result.returncode == 0, result.stderr
    pages = PdfReader(out / "board.pdf").pages
    assert len(pages) == 4 and "Where is everyone?" in pages[1].extract_text()
    assert "Gone." in pages[3].extract_text() and "Scene 2 · Shot 1 · Panel 3" in pages[3].extract_text()
    with av.open(str(out / "cut.mp4")) as container:
        count = sum(1 for _ in container.decode(video=0))
    assert abs(count - (0.6 + 0.9 + 2.0) * 10) <= 3  # panel 3 takes the default 2 s
    clips = list(otio.adapters.read_from_file(str(out / "cut.otio")).find_clips())
    assert [round(c.duration().to_seconds(), 1) for c in clips] == [0.6, 0.9, 2.0]
    assert clips[1].media_reference.target_url == (run / "panel-02.png").resolve().as_uri()
    with open(out / "shots.csv", encoding="utf-8-sig") as handle:
        assert [row["Camera"] for row in csv.DictReader(handle)] == ["", "close-up", ""]
    project = json.loads((out / "sb" / "sb.storyboarder").read_text())
    assert [b["dialogue"] for b in project["boards"]] == ["Where is everyone?", "", "Gone."]
    assert (out / "cut.srt").read_text().count("-->") == 2


def test_export_a_session_and_one_line_errors(tmp_path):
    session = Session(rng=random.Random(5))
    session.update_settings(model="tiny", width=128, height=64)
    session.set_style_text("ink wash")
    for prompt in ("a door", "a hall"):
        session.add_panel(prompt)
    session.update_panel_notes(1, dialogue="Who's there?", duration=1.5)
    plan = session.prepare_generate()
    plan.folder.mkdir(parents=True)
    for k, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        Image.new("RGB", (128, 64), colour).save(plan.folder / f"panel-{k + 1:02d}.png")
    session.record_run(plan)
    folder = tmp_path / "Door.stylealigned"
    store.save_session_as(session, folder)
    session.close()
    result = run_cli("export", folder, "--pdf", tmp_path / "door.pdf", "--otio", tmp_path / "door.otio")
    assert result.returncode == 0, result.stderr
    assert "Who's there?" in PdfReader(tmp_path / "door.pdf").pages[1].extract_text()
    clips = list(otio.adapters.read_from_file(str(tmp_path / "door.otio")).find_clips())
    assert [c.duration().to_seconds() for c in clips] == [2.0, 1.5]
    assert clips[0].media_reference.target_url.endswith("/panel-01.png")
    nothing = run_cli("export", folder)
    assert nothing.returncode == 2 and "nothing to export" in nothing.stderr
    wrong = run_cli("export", tmp_path, "--pdf", tmp_path / "x.pdf")
    assert wrong.returncode == 2 and "neither a session folder" in wrong.stderr
