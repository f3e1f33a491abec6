"""Evaluation of run folders (metrics.json, Markdown, chart) and the paper's benchmark suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylealigned_desktop import cli
from stylealigned_desktop.evaluation import metrics, paper_suite
from stylealigned_desktop.evaluation import report as evaluation_report
from stylealigned_desktop.evaluation import scoring as evaluation
from stylealigned_desktop.evaluation.scoring import EvaluationError, MetricSources

from . import test_metrics
from .test_metrics import drawn_picture, naive_mean_pairwise_cosine

# The tiny metric models (built once per test session, shared with test_metrics).
tiny_dino_dir = test_metrics.tiny_dino_dir
tiny_clip_dir = test_metrics.tiny_clip_dir
tiny_inception_file = test_metrics.tiny_inception_file


def make_run_folder(folder: Path, pictures: list[Image.Image], subjects: list[str],
                    style_text: str = "watercolor painting style") -> Path:
    """A run folder written by hand from the documented format (docs/architecture.md)."""
    folder.mkdir(parents=True)
    pictures[0].save(folder / "reference.png")
    panels = []
    for number, (picture, subject) in enumerate(zip(pictures[1:], subjects[1:], strict=True),
                                                start=1):
        name = f"panel-{number:02d}.png"
        picture.save(folder / name)
        panels.append({"index": number, "file": name, "prompt": f"{subject}, {style_text}",
                       "subject": subject, "seed": number, "control": None})
    run = {
        "format": "stylealigned-run", "version": 1, "model": "tiny",
        "style": {"kind": "generated", "prompt": f"{subjects[0]}, {style_text}", "seed": 0},
        "style_text": style_text,
        "reference": {"file": "reference.png", "prompt": f"{subjects[0]}, {style_text}",
                      "subject": subjects[0], "seed": 0},
        "panels": panels,
    }
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder


def tiny_sources(dino, clip, inception=None) -> MetricSources:
    return MetricSources(dino=str(dino), clip=str(clip),
                         inception=str(inception) if inception else None, device="cpu")


def test_evaluate_two_folders_side_by_side(tmp_path, tiny_dino_dir, tiny_clip_dir,
                                           tiny_inception_file):
    same = drawn_picture(1, 40)
    aligned = make_run_folder(tmp_path / "aligned", [same, same.copy(), same.copy()],
                              ["A house", "A temple", "A dog"])
    mixed_pictures = [drawn_picture(k, 40) for k in range(4)]
    mixed_subjects = ["Flowers", "Golden Gate bridge", "A chair", "Trees"]
    mixed = make_run_folder(tmp_path / "mixed", mixed_pictures, mixed_subjects)
    out = tmp_path / "report"
    seen = []
    report = evaluation.evaluate_folders(
        [aligned, mixed], out, tiny_sources(tiny_dino_dir, tiny_clip_dir, tiny_inception_file),
        progress=lambda phase, done, total, message: seen.append((phase, done, total)))

    data = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert data["format"] == "stylealigned-metrics"
    assert [g["label"] for g in data["groups"]] == ["aligned", "mixed"]
    first, second = data["groups"]
    assert (first["sets"], first["images"], second["images"]) == (1, 3, 4)
    assert first["set_consistency"]["mean"] == pytest.approx(1.0, abs=1e-6)

    # Independently from the embedders (checked against the raw models in test_metrics).
    dino = metrics.load_dino(str(tiny_dino_dir), "cpu")
    assert second["set_consistency"]["mean"] == pytest.approx(
        naive_mean_pairwise_cosine(dino.embed(mixed_pictures)), abs=1e-9)
    clip = metrics.load_clip(str(tiny_clip_dir), "cpu")
    image_rows, text_rows = clip.embed_images(mixed_pictures), clip.embed_texts(mixed_subjects)
    cosines = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in zip(image_rows, text_rows, strict=True)]
    assert second["text_alignment"]["mean"] == pytest.approx(np.mean(cosines), abs=1e-9)
    assert [row["subject"] for row in second["text_alignment"]["per_image"]] == mixed_subjects
    assert second["text_alignment"]["clip_score_100"] == pytest.approx(
        np.mean(np.maximum(100 * np.array(cosines), 0)), abs=1e-6)
    inception = second["inception_score"]
    # KL >= 0 and at most ln(4) for 4 pictures: 1 <= IS <= 4 (up to rounding).
    assert inception["splits"] == 1 and 1.0 - 1e-9 <= inception["mean"] <= 4.0 + 1e-9
    assert report["groups"][1]["inception_score"]["mean"] == inception["mean"]

    # Progress: 2 sets x 3 metrics, counted up to the end.
    assert seen[-1] == ("score", 6, 6)

    markdown = (out / "metrics.md").read_text(encoding="utf-8")
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and rows[1].startswith("| aligned | 1 | 3 | 1.000 ± 0.000 |")
    assert "torchmetrics" in markdown

    with Image.open(out / "metrics.png") as chart:
        colors = {tuple(c) for c in np.asarray(chart.convert("RGB")).reshape(-1, 3)}
    # One bar colour per folder, drawn in the chart.
    assert evaluation_report._PALETTE[0] in colors and evaluation_report._PALETTE[1] in colors
    assert report["outputs"]["chart"] == str(out / "metrics.png")


def test_a_folder_of_run_folders_is_one_group_and_reports_go_next_to_it(
        tmp_path, tiny_dino_dir, tiny_clip_dir):
    parent = tmp_path / "variant"
    parent.mkdir()
    sets = [[drawn_picture(k, 32) for k in (0, 1)], [drawn_picture(k, 32) for k in (2, 3, 4)]]
    for number, pictures in enumerate(sets, start=1):
        make_run_folder(parent / f"set-{number:03d}", pictures,
                        [f"object {k}" for k in range(len(pictures))])
    (parent / "notes").mkdir()  # not a run folder: ignored
    report = evaluation.evaluate_folders([parent], None, tiny_sources(tiny_dino_dir, tiny_clip_dir))
    assert (parent / "metrics.json").is_file() and (parent / "metrics.md").is_file()
    group = report["groups"][0]
    assert (group["sets"], group["images"]) == (2, 5)
    dino = metrics.load_dino(str(tiny_dino_dir), "cpu")
    per_set = [naive_mean_pairwise_cosine(dino.embed(p)) for p in sets]
    assert [s["value"] for s in group["set_consistency"]["per_set"]] == pytest.approx(per_set)
    assert group["set_consistency"]["mean"] == pytest.approx(np.mean(per_set))
    assert group["set_consistency"]["std"] == pytest.approx(np.std(per_set))
    assert "inception_score" not in group


def test_bad_folders_give_errors_that_name_the_file(tmp_path):
    folder = make_run_folder(tmp_path / "run", [drawn_picture(0), drawn_picture(1)], ["a", "b"])
    (folder / "panel-01.png").unlink()
    with pytest.raises(EvaluationError, match=r"panel-01\.png: listed in run.json"):
        evaluation.find_sets(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvaluationError, match="holds no run folders"):
        evaluation.find_sets(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EvaluationError, match="broken JSON"):
        evaluation.find_sets(broken)
    unreadable = make_run_folder(tmp_path / "bad-png", [drawn_picture(0), drawn_picture(1)],
                                 ["a", "b"])
    (unreadable / "reference.png").write_bytes(b"not a png")
    with pytest.raises(EvaluationError, match="reference.png: not a readable picture"):
        evaluation.find_sets(unreadable)[0].load_images()


def test_cli_evaluate_writes_reports_and_user_errors_are_one_line(
        tmp_path, capsys, tiny_dino_dir, tiny_clip_dir):
    folder = make_run_folder(tmp_path / "run", [drawn_picture(0), drawn_picture(3)],
                             ["A lion", "A dog"])
    out = tmp_path / "out"
    code = cli.main(["evaluate", str(folder), "--dino", str(tiny_dino_dir),
                            "--clip", str(tiny_clip_dir), "--inception", "none",
                            "--device", "cpu", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "| run | 1 | 2 |" in captured.out and f"wrote {out / 'metrics.json'}" in captured.out
    assert json.loads((out / "metrics.json").read_text())["models"]["inception"] is None

    def one_line_error(argv: list[str]) -> str:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("stylealigned: error: "), err
        return err[0]

    assert "hf download facebook/dino-vitb8" in one_line_error(
        ["evaluate", str(folder), "--clip", "none", "--inception", "none"])
    assert "no such folder" in one_line_error(["evaluate", str(tmp_path / "nope")])
    assert "needs --model" in one_line_error(["evaluate", "--suite", "paper"])
    assert "no metric left" in one_line_error(
        ["evaluate", str(folder), "--dino", "none", "--clip", "none", "--inception", "none"])
    assert "--sets" in one_line_error(["evaluate", "--suite", "paper", "--model", "tiny",
                                       "--out", str(tmp_path / "s"), "--sets", "3-1"])


def test_set_ranges():
    assert paper_suite.parse_set_range("1-100") == list(range(1, 101))
    assert paper_suite.parse_set_range("1-3, 7,5-5") == [1, 2, 3, 5, 7]
    for bad in ("", "a-b", "5-2", "1-"):
        with pytest.raises(EvaluationError, match="not a set range"):
            paper_suite.parse_set_range(bad)


def test_paper_sets_and_requests():
    sets = paper_suite.load_paper_sets()
    assert [s.id for s in sets] == list(range(1, 101))
    first = sets[0]
    assert first.prompts()[0] == f"{first.objects[0]} in {first.style}"
    requests = {name: paper_suite.paper_request(first, "tiny", settings, steps=3, size=64)
                for name, settings in paper_suite.VARIANTS.items()}
    for request in requests.values():
        assert request.style.prompt == f"{first.objects[0]} in {first.style}"
        assert [p.prompt for p in request.panels] == [f"{o} in {first.style}"
                                                      for o in first.objects[1:]]
        # The same seeds for every variant: only the sharing differs.
        assert (request.style.seed, [p.seed for p in request.panels]) == (
            requests["stylealigned"].style.seed, [p.seed for p in requests["stylealigned"].panels])
    assert len({request.style.seed} | {p.seed for p in request.panels}) == len(first.objects)
    assert not requests["baseline"].settings.is_active
    assert requests["stylealigned"].settings == paper_suite.StyleAlignedSettings()
    assert not requests["no-adain"].settings.adain_queries
    assert requests["no-adain"].settings.share_attention
    assert requests["full-share"].settings.full_attention_share


def fake_generator(calls: list, fail_after: int | None = None):
    """Writes run folders with the real writer; pictures depend on the seeds only."""
    from stylealigned_desktop.engine.events import RunResult
    from stylealigned_desktop.engine.runfolder import write_run_folder

    def generate_set(request, folder: Path) -> None:
        if fail_after is not None and len(calls) >= fail_after:
            folder.mkdir(parents=True)
            drawn_picture(0).save(folder / "reference.png")  # interrupted half-way
            raise KeyboardInterrupt
        calls.append((request, folder))
        result = RunResult(
            reference=drawn_picture(request.style.seed % 5, 32),
            panels={i: drawn_picture(p.seed % 5, 32) for i, p in enumerate(request.panels)},
            metadata={})
        write_run_folder(folder, request, result)

    return generate_set


def test_paper_suite_scores_both_variants_and_resumes(tmp_path, tiny_dino_dir, tiny_clip_dir):
    out = tmp_path / "suite"
    sources = tiny_sources(tiny_dino_dir, tiny_clip_dir)
    calls: list = []
    with pytest.raises(KeyboardInterrupt):
        paper_suite.run_paper_suite("tiny", out, sets=[1, 2], steps=2, sources=sources,
                                   generate_set=fake_generator(calls, fail_after=3))
    # Sets outside, variants inside: set 1 both variants, set 2 StyleAligned, then interrupted.
    done = [(r.settings.share_attention, f.name) for r, f in calls]
    assert done == [(True, "set-001"), (False, "set-001"), (True, "set-002")]
    assert not (out / "baseline" / "set-002" / "run.json").exists()

    resumed: list = []
    report = paper_suite.run_paper_suite("tiny", out, sets=[1, 2], steps=2, sources=sources,
                                        generate_set=fake_generator(resumed))
    assert [f.relative_to(out).as_posix() for _, f in resumed] == ["baseline/set-002"]
    assert [g["label"] for g in report["groups"]] == ["stylealigned", "baseline"]
    paper_objects = [o for s in paper_suite.load_paper_sets()[:2] for o in s.objects]
    for group in report["groups"]:
        assert group["sets"] == 2 and group["images"] == len(paper_objects)
        # Text alignment compares each picture with its paper object only.
        assert [r["subject"] for r in group["text_alignment"]["per_image"]] == paper_objects
    # The suite's run folders name each picture's object, so a later `evaluate` agrees.
    assert [s.subjects for s in evaluation.find_sets(out / "baseline")] == [
        s.objects for s in paper_suite.load_paper_sets()[:2]]
    later = evaluation.evaluate_folders([out / "stylealigned", out / "baseline"],
                                        tmp_path / "later", sources)
    for mine, theirs in zip(report["groups"], later["groups"], strict=True):
        assert theirs["text_alignment"]["mean"] == pytest.approx(mine["text_alignment"]["mean"])
        assert theirs["set_consistency"]["mean"] == pytest.approx(mine["set_consistency"]["mean"])
    markdown = (out / "metrics.md").read_text(encoding="utf-8")
    assert "paper: DINO" in markdown and "0.287" in markdown and "0.510" in markdown
    assert "independent reproduction" in markdown
    assert json.loads((out / "metrics.json").read_text())["paper"]["stylealigned"] == {
        "text_alignment": 0.287, "set_consistency": 0.51}

    # Nothing left to generate; asking for the ablations generates only those.
    again: list = []
    paper_suite.run_paper_suite("tiny", out, sets=[1, 2], steps=2, sources=sources,
                               generate_set=fake_generator(again))
    assert again == []
    ablations: list = []
    report = paper_suite.run_paper_suite("tiny", out, sets=[2], steps=2, ablations=True,
                                        sources=sources, generate_set=fake_generator(ablations))
    assert sorted(f.relative_to(out).as_posix() for _, f in ablations) == [
        "full-share/set-002", "no-adain/set-002"]
    assert [g["label"] for g in report["groups"]] == [
        "stylealigned", "baseline", "no-adain", "full-share"]
    assert all(g["sets"] == 1 for g in report["groups"])

    with pytest.raises(EvaluationError, match="steps 2 there, 3 now"):
        paper_suite.run_paper_suite("tiny", out, sets=[1], steps=3, sources=sources,
                                   generate_set=fake_generator([]))
    with pytest.raises(EvaluationError, match="no paper set 101"):
        paper_suite.run_paper_suite("tiny", out, sets=[101], steps=2, sources=sources,
                                   generate_set=fake_generator([]))


def test_the_paper_suite_gains_a_small_character_set(tmp_path, tiny_dino_dir, tiny_clip_dir, monkeypatch):
    """Issue 25: ``evaluate --suite paper --characters`` also generates the app's character sets
    with character sharing and with dropout 1, compares each picture with its object (names
    spelled out) and reports character identity for both."""
    character_sets = paper_suite.load_character_sets()
    assert 3 <= len(character_sets) <= 6  # small
    for s in character_sets:
        (character,) = s.characters
        assert f"[{character.name}]" not in s.objects[0]  # the reference shows no character
        assert all(o.startswith(f"[{character.name}]") for o in s.objects[1:])
    calls: list = []

    def generate_set(request, folder: Path) -> None:
        """The real run-folder writer; each panel naming a character gets a mask from its seed."""
        from stylealigned_desktop.engine.events import RunResult
        from stylealigned_desktop.engine.runfolder import write_run_folder

        calls.append((request, folder))
        masks = {i: {c.name: (np.random.default_rng(p.seed).random((4, 4)) > 0.3).astype(np.uint8)
                     for c in request.characters if f"[{c.name}]" in p.prompt} for i, p in enumerate(request.panels)}
        write_run_folder(folder, request, RunResult(
            reference=drawn_picture(request.style.seed % 5, 32), metadata={},
            panels={i: drawn_picture(p.seed % 5, 32) for i, p in enumerate(request.panels)},
            masks={i: m for i, m in masks.items() if m}))

    called = {}
    monkeypatch.setattr(paper_suite, "run_paper_suite", lambda *a, **k: called.update(k) or {"groups": []})
    cli.main(["evaluate", "--suite", "paper", "--characters", "--model", "tiny", "--sets", "1", "--out", "x"])
    assert called["characters"] is True  # the command line's flag reaches the suite
    monkeypatch.undo()
    report = paper_suite.run_paper_suite("tiny", tmp_path / "suite", sets=[1], steps=2, characters=True,
                                        sources=tiny_sources(tiny_dino_dir, tiny_clip_dir), generate_set=generate_set)
    assert [g["label"] for g in report["groups"]] == ["stylealigned", "baseline", "characters", "characters-off"]
    made = [(f.parent.name, f.name) for _, f in calls]
    assert made[:2] == [("stylealigned", "set-001"), ("baseline", "set-001")]
    assert made[2:4] == [("characters", "set-001"), ("characters-off", "set-001")]  # sets outside
    first = character_sets[0]
    for request, folder in calls[2:]:
        assert request.characters == next(s for s in character_sets if folder.name == f"set-{s.id:03d}").characters
        assert request.settings.character_dropout == (1.0 if folder.parent.name == "characters-off" else 0.5)
    request = calls[2][0]
    assert [p.prompt for p in request.panels] == [f"{o} in {first.style}" for o in first.objects[1:]]
    assert request.characters[0].anchor_text == f" in {first.style}"
    assert request.characters[0].anchor_seeds[:2] == (first.id * 100 + 50, first.id * 100 + 51)
    by_label = {g["label"]: g for g in report["groups"]}
    description = first.characters[0].description
    subjects = [r["subject"] for r in by_label["characters"]["text_alignment"]["per_image"]]
    assert subjects[:len(first.objects)] == [first.objects[0]] + [
        o.replace(f"[{first.characters[0].name}]", description) for o in first.objects[1:]]
    for label in ("characters", "characters-off"):
        per_set = by_label[label]["identity"]["per_set"]
        assert sorted(e["character"] for e in per_set) == sorted(s.characters[0].name for s in character_sets)
    assert "identity" not in by_label["baseline"]
    assert report["suite"]["variants"] == ["stylealigned", "baseline", "characters", "characters-off"]


@pytest.mark.slow
def test_cli_paper_suite_end_to_end_with_the_tiny_model(tmp_path, capsys, tiny_dino_dir,
                                                        tiny_clip_dir):
    out = tmp_path / "paper"
    code = cli.main(["evaluate", "--suite", "paper", "--model", "tiny", "--sets", "1-2",
                            "--steps", "2", "--size", "64", "--out", str(out), "--dino", str(tiny_dino_dir),
                            "--clip", str(tiny_clip_dir), "--inception", "none",
                            "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    sets = paper_suite.load_paper_sets()[:2]
    assert [g["label"] for g in data["groups"]] == ["stylealigned", "baseline"]
    assert all(g["images"] == sum(len(s.objects) for s in sets) for g in data["groups"])
    assert data["suite"]["steps"] == 2 and data["suite"]["sets"] == [1, 2]
    for variant in ("stylealigned", "baseline"):
        run = json.loads((out / variant / "set-001" / "run.json").read_text(encoding="utf-8"))
        assert (run["sampling"]["steps"], run["sampling"]["width"]) == (2, 64)
        assert run["reference"]["prompt"] == f"{sets[0].objects[0]} in {sets[0].style}"
        assert len(run["panels"]) == len(sets[0].objects) - 1
    assert (out / "metrics.png").is_file() and "| stylealigned | 2 |" in captured.out

    def pixels(variant: str, name: str) -> np.ndarray:
        with Image.open(out / variant / "set-001" / name) as image:
            return np.asarray(image.convert("RGB"), dtype=np.int16)

    # The reference is generated exactly as it would be alone: the same in both variants,
    # while sharing changes the panels.
    assert np.array_equal(pixels("stylealigned", "reference.png"),
                          pixels("baseline", "reference.png"))
    assert pixels("stylealigned", "reference.png").shape == (64, 64, 3)
    assert any(not np.array_equal(pixels("stylealigned", f"panel-0{k}.png"),
                                  pixels("baseline", f"panel-0{k}.png")) for k in (1, 2, 3))


def test_the_paper_suites_engine_decodes_no_previews(tmp_path, monkeypatch):
    """The suite shows no pictures while it runs, so its real engine decodes no live preview
    (issue 27: a decode per panel and step would be paid for nothing)."""
    from stylealigned_desktop.engine.preview_decoders import FullVae, LatentFactors, TinyAutoencoder

    decoded = []
    for decoder in (LatentFactors, TinyAutoencoder, FullVae):
        monkeypatch.setattr(decoder, "decode", lambda self, x0: decoded.append(x0))
    first = paper_suite.load_paper_sets()[0]
    request = paper_suite.paper_request(first, "tiny", paper_suite.VARIANTS["stylealigned"], steps=2, size=64)
    paper_suite.engine_set_generator()(request, tmp_path / "set")
    assert (tmp_path / "set" / "run.json").is_file() and decoded == []
