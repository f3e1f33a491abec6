"""Scoring run folders and reproducing the paper's benchmark (spec section 10).

- :func:`evaluate_folders` reads run folders (or folders of run folders), scores each folder as
  one group of sets, and writes ``metrics.json``, ``metrics.md`` and ``metrics.png`` (a bar chart
  comparing the folders side by side).
- :func:`run_paper_suite` generates the paper's evaluation sets (``paper_sets.json``: the first
  object of each set is the reference, prompts ``"<object> in <style>"``, fixed seeds) with
  StyleAligned, without sharing (the baseline) and optionally the ablations, resumes where it
  stopped, then scores them next to the paper's published figures.
- :func:`add_evaluate_parser` adds the ``evaluate`` subcommand to the CLI.

A "set" is one run folder: its reference and panels. DINO set consistency is the mean cosine over
all pairs of a set's images; CLIP text alignment compares each image with its ``subject`` (the
object without the style text); the Inception Score is computed over all images of a group.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from . import metrics
from .request import GeneratedReference, Panel, Sampling, SetRequest, check_device
from .settings import StyleAlignedSettings

METRICS_FORMAT = "stylealigned-metrics"
METRICS_VERSION = 1
METRICS_JSON = "metrics.json"
METRICS_MARKDOWN = "metrics.md"
METRICS_CHART = "metrics.png"
SUITE_JSON = "suite.json"

Progress = Callable[[str, int, int, str], None]
"""``progress(phase, done, total, message)``; phase is "generate" or "score"."""


class EvaluationError(ValueError):
    """Bad input to an evaluation (a folder, a file, a set range), with a message for the user."""


# ---------------------------------------------------------------------------------------------
# Reading run folders
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredSet:
    """The pictures of one set (reference first, then panels) and the subject of each."""

    folder: Path
    files: tuple[Path, ...]
    subjects: tuple[str, ...]

    def load_images(self) -> list[Image.Image]:
        images = []
        for path in self.files:
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except FileNotFoundError:
                raise EvaluationError(f"{path}: listed in run.json but missing") from None
            except OSError as error:
                raise EvaluationError(f"{path}: not a readable picture ({error})") from None
        return images


@dataclass(frozen=True)
class Group:
    """Sets scored together and shown as one bar per metric (e.g. one folder)."""

    label: str
    folder: Path
    sets: tuple[ScoredSet, ...]


def _entry_subject(entry: dict[str, Any], style_text: str, where: str) -> str:
    subject = entry.get("subject")
    if isinstance(subject, str) and subject.strip():
        return subject.strip()
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise EvaluationError(f"{where}: has neither a subject nor a prompt to compare the image with")
    # Older folders without "subject": drop the appended style text, as the writer does.
    suffix = f", {style_text}" if style_text else ""
    return prompt[: -len(suffix)] if suffix and prompt.endswith(suffix) else prompt


def read_run_folder(folder: str | Path, subjects: Sequence[str] | None = None) -> ScoredSet:
    """The set a run folder holds, from its ``run.json`` (reference first, then panels by index).

    ``subjects`` overrides the subjects run.json gives (one per picture, reference first).
    """
    from .runfolder import read_run

    folder = Path(folder)
    try:
        run = read_run(folder)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    style_text = run.get("style_text") or ""
    entries: list[tuple[str, dict[str, Any]]] = []
    reference = run.get("reference")
    if isinstance(reference, dict) and reference.get("file"):
        entries.append(("reference", reference))
    panels = run.get("panels") or []
    if not isinstance(panels, list):
        raise EvaluationError(f"{folder / 'run.json'}: 'panels' must be a list")
    ordered = sorted(panels, key=lambda p: p.get("index", 0) if isinstance(p, dict) else 0)
    for position, panel in enumerate(ordered, start=1):
        if not isinstance(panel, dict) or not isinstance(panel.get("file"), str):
            raise EvaluationError(f"{folder / 'run.json'}: panel {position} has no 'file'")
        entries.append((f"panel {panel.get('index', position)}", panel))
    files, found = [], []
    for name, entry in entries:
        path = folder / entry["file"]
        if not path.is_file():
            raise EvaluationError(f"{path}: listed in run.json as the {name} but missing")
        files.append(path)
        found.append(_entry_subject(entry, style_text, f"{folder / 'run.json'} ({name})"))
    if subjects is not None:
        if len(subjects) != len(files):
            raise EvaluationError(
                f"{folder}: {len(files)} pictures but {len(subjects)} subjects were given"
            )
        found = list(subjects)
    if not files:
        raise EvaluationError(f"{folder / 'run.json'}: lists no pictures")
    return ScoredSet(folder, tuple(files), tuple(found))


def find_sets(folder: str | Path) -> list[ScoredSet]:
    """A run folder is one set; a folder of run folders is all of them (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: no such folder")
    if (folder / "run.json").is_file():
        return [read_run_folder(folder)]
    runs = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "run.json").is_file())
    if not runs:
        raise EvaluationError(f"{folder}: not a run folder and holds no run folders (no run.json)")
    return [read_run_folder(p) for p in runs]


def _labels(folders: Sequence[Path]) -> list[str]:
    names = [f.resolve().name or str(f) for f in folders]
    if len(set(names)) == len(names):
        return names
    return [str(f) for f in folders]


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSources:
    """Where each metric model comes from; None skips that metric."""

    dino: str | None = metrics.DEFAULT_DINO
    clip: str | None = metrics.DEFAULT_CLIP
    inception: str | None = metrics.DEFAULT_INCEPTION
    device: str = "auto"
    is_splits: int = metrics.DEFAULT_IS_SPLITS

    def enabled(self) -> list[str]:
        return [kind for kind in metrics.KINDS if getattr(self, kind)]


@dataclass
class _Models:
    dino: Any = None
    clip: Any = None
    inception: Any = None


def _load_models(sources: MetricSources) -> _Models:
    """Load every enabled model before any work, so a missing one fails at once."""
    if not sources.enabled():
        raise EvaluationError("no metric left to compute (all of --dino, --clip, --inception are none)")
    return _Models(
        dino=metrics.load_dino(sources.dino, sources.device) if sources.dino else None,
        clip=metrics.load_clip(sources.clip, sources.device) if sources.clip else None,
        inception=(metrics.load_inception(sources.inception, sources.device)
                   if sources.inception else None),
    )


def _score_group(group: Group, models: _Models, sources: MetricSources,
                 tick: Callable[[str], None]) -> dict[str, Any]:
    dino_sets, consistency_sets = [], []
    clip_images, clip_texts, per_image = [], [], []
    probs = []
    for scored in group.sets:
        images = scored.load_images()
        name = scored.folder.name
        if models.dino is not None:
            if len(images) < 2:
                raise EvaluationError(f"{scored.folder}: set consistency needs at least 2 pictures")
            dino_sets.append(models.dino.embed(images))
            consistency_sets.append(str(scored.folder))
            tick(f"{group.label}: DINO {name}")
        if models.clip is not None:
            clip_images.append(models.clip.embed_images(images))
            clip_texts.append(models.clip.embed_texts(scored.subjects))
            per_image.extend({"file": str(path), "subject": subject}
                             for path, subject in zip(scored.files, scored.subjects, strict=True))
            tick(f"{group.label}: CLIP {name}")
        if models.inception is not None:
            probs.append(models.inception.probabilities(images))
            tick(f"{group.label}: Inception {name}")

    import numpy as np

    result: dict[str, Any] = {
        "label": group.label,
        "folder": str(group.folder),
        "sets": len(group.sets),
        "images": sum(len(s.files) for s in group.sets),
    }
    if dino_sets:
        consistency = metrics.set_consistency(dino_sets)
        result["set_consistency"] = {
            "mean": consistency.mean,
            "std": consistency.std,
            "per_set": [{"folder": f, "value": v}
                        for f, v in zip(consistency_sets, consistency.per_set, strict=True)],
        }
    if clip_images:
        alignment = metrics.text_alignment(np.concatenate(clip_images), np.concatenate(clip_texts))
        for row, cosine in zip(per_image, alignment.per_image, strict=True):
            row["cosine"] = cosine
        result["text_alignment"] = {
            "mean": alignment.mean,
            "std": alignment.std,
            "clip_score_100": alignment.clip_score_100,
            "per_image": per_image,
        }
    if probs:
        score = metrics.inception_score(np.concatenate(probs), sources.is_splits)
        result["inception_score"] = {"mean": score.mean, "std": score.std, "splits": score.splits}
    return result


def score_groups(groups: Sequence[Group], sources: MetricSources = MetricSources(),
                 progress: Progress | None = None) -> dict[str, Any]:
    """Score groups of sets; returns the ``metrics.json`` document (nothing written)."""
    models = _load_models(sources)
    total = sum(len(g.sets) for g in groups) * len(sources.enabled())
    done = 0
    report = progress or (lambda phase, done, total, message: None)
    report("score", 0, total, "scoring")

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        report("score", done, total, message)

    device = next(m.device for m in (models.dino, models.clip, models.inception) if m is not None)
    return {
        "format": METRICS_FORMAT,
        "version": METRICS_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": {
            "dino": models.dino.source if models.dino else None,
            "clip": models.clip.source if models.clip else None,
            "inception": models.inception.source if models.inception else None,
            "device": device,
        },
        "conventions": {
            "set_consistency": "DINO CLS cosine, mean over all pairs within a set; mean and "
                               "population std over sets",
            "text_alignment": "raw CLIP cosine between each image and its subject; mean over images",
            "clip_score_100": "torchmetrics CLIPScore convention: mean of max(100 * cosine, 0)",
            "inception_score": "exp(E[KL(p(y|x) || p(y))]) per split; mean and std over splits",
        },
        "groups": [_score_group(g, models, sources, tick) for g in groups],
    }


def evaluate_folders(folders: Sequence[str | Path], out_dir: str | Path | None = None,
                     sources: MetricSources = MetricSources(),
                     progress: Progress | None = None) -> dict[str, Any]:
    """Score each folder (a run folder, or a folder of run folders) and write the reports.

    ``out_dir`` None: the folder itself when there is one, else the folders' common parent.
    Returns the ``metrics.json`` document, with ``"outputs"`` naming the files written.
    """
    if not folders:
        raise EvaluationError("give at least one run folder to evaluate")
    paths = [Path(f).expanduser() for f in folders]
    groups = [Group(label, path, tuple(find_sets(path)))
              for label, path in zip(_labels(paths), paths, strict=True)]
    if out_dir is None:
        out_dir = paths[0] if len(paths) == 1 else Path(os.path.commonpath(
            [p.resolve() for p in paths]))
    report = score_groups(groups, sources, progress)
    report["outputs"] = write_reports(report, out_dir)
    return report


# ---------------------------------------------------------------------------------------------
# Reports: JSON, Markdown, chart
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _get(group: dict[str, Any], metric: str, key: str = "mean") -> float | None:
    return (group.get(metric) or {}).get(key)


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per group), with the paper's figures if present."""
    paper = report.get("paper") or {}
    header = ["", "sets", "images", "DINO set consistency (mean ± std)",
              "CLIP text alignment (cosine)", "CLIP score ×100 (torchmetrics)", "Inception Score"]
    if paper:
        header += ["paper: text", "paper: DINO"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in report["groups"]:
        dino = group.get("set_consistency")
        inception = group.get("inception_score")
        row = [
            group["label"].replace("|", "\\|"), str(group["sets"]), str(group["images"]),
            f"{_fmt(dino['mean'])} ± {_fmt(dino['std'])}" if dino else "—",
            _fmt(_get(group, "text_alignment")),
            _fmt(_get(group, "text_alignment", "clip_score_100"), 2),
            (f"{_fmt(inception['mean'], 2)} ± {_fmt(inception['std'], 2)} "
             f"({inception['splits']} split{'s' if inception['splits'] != 1 else ''})"
             if inception else "—"),
        ]
        if paper:
            figures = paper.get(group.get("variant", group["label"])) or {}
            star = "*" if figures.get("note") else ""  # not the paper's own figure
            row += [_fmt(figures.get(k)) + (star if figures.get(k) is not None else "")
                    for k in ("text_alignment", "set_consistency")]
        lines.append("| " + " | ".join(row) + " |")
    models = report.get("models", {})
    used = [f"{name} `{models[key]}`" for key, name in
            (("dino", "DINO"), ("clip", "CLIP"), ("inception", "Inception v3")) if models.get(key)]
    notes = [
        "",
        f"Models: {', '.join(used) or 'none'} on {models.get('device')}.",
        "Text alignment is the raw CLIP cosine between each image and its object (the paper's "
        "convention); the CLIP score column is torchmetrics' max(100·cosine, 0).",
    ]
    if any(_get(g, "inception_score", "splits") == 1 for g in report["groups"]):
        notes.append("An Inception Score over a handful of images is not comparable with "
                     "published Inception Scores (those use thousands).")
    for name, figures in paper.items():
        if figures.get("note"):
            notes.append(f"\\* {name}: {figures['note']}.")
    return "\n".join(lines + notes) + "\n"


_PALETTE = [(52, 101, 164), (204, 0, 0), (78, 154, 6), (245, 121, 0), (117, 80, 123),
            (193, 125, 17), (6, 152, 154), (85, 87, 83)]
_CHART_METRICS = (
    ("set_consistency", "DINO set consistency"),
    ("text_alignment", "CLIP text alignment"),
    ("inception_score", "Inception Score"),
)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw_chart(report: dict[str, Any]) -> Image.Image:
    """One panel per metric, one bar per group (± std as a whisker); paper figures as dashes."""
    groups = report["groups"]
    paper = report.get("paper") or {}
    shown = [(key, title) for key, title in _CHART_METRICS if any(key in g for g in groups)]
    if not groups or not shown:
        raise ValueError("nothing to draw: the report has no groups or no metrics")
    bar_w, gap, margin = 44, 14, 40
    panel_w = max(230, len(groups) * (bar_w + gap) + gap + margin)
    plot_h, top, bottom = 260, 56, 40
    legend_h = 22 * (len(groups) + (1 if paper else 0)) + 16
    width = panel_w * len(shown) + 2 * margin
    height = top + plot_h + bottom + legend_h
    chart = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(chart)
    title_font, font, small = _font(16), _font(13), _font(11)
    draw.text((margin, 12), "StyleAligned evaluation", fill="black", font=title_font)

    for p, (key, title) in enumerate(shown):
        x0 = margin + p * panel_w
        values = [(_get(g, key), _get(g, key, "std")) for g in groups]
        marks = [(paper.get(g.get("variant", g["label"])) or {}).get(key) for g in groups]
        finite = [v for v, _ in values if v is not None] + [m for m in marks if m is not None]
        highs = [v + (s or 0) for v, s in values if v is not None] + finite
        lows = [v - (s or 0) for v, s in values if v is not None] + finite
        hi = max(max(highs, default=1.0), 0.0)
        lo = min(min(lows, default=0.0), 0.0)
        if hi - lo <= 0:
            hi = lo + 1.0
        y_max = hi + 0.15 * (hi - lo)  # headroom for the value labels

        def y_of(value: float, lo=lo, y_max=y_max) -> float:
            return top + plot_h - (value - lo) / (y_max - lo) * plot_h

        draw.text((x0, top - 22), title, fill="black", font=font)
        axis_x = x0 + margin - 8
        draw.line([(axis_x, top), (axis_x, top + plot_h)], fill=(120, 120, 120))
        zero = y_of(0.0)
        draw.line([(axis_x, zero), (x0 + panel_w - 10, zero)], fill=(120, 120, 120))
        for tick in (lo, (lo + hi) / 2, hi):
            y = y_of(tick)
            draw.line([(axis_x - 4, y), (axis_x, y)], fill=(120, 120, 120))
            draw.text((x0 - 4, y - 6), f"{tick:.2f}", fill=(90, 90, 90), font=small)
        for i, ((value, std), mark) in enumerate(zip(values, marks, strict=True)):
            left = axis_x + gap + i * (bar_w + gap)
            color = _PALETTE[i % len(_PALETTE)]
            if value is not None:
                y = y_of(value)
                draw.rectangle([left, min(y, zero), left + bar_w, max(y, zero)], fill=color)
                if std:
                    mid = left + bar_w / 2
                    draw.line([(mid, y_of(value - std)), (mid, y_of(value + std))], fill="black")
                    for v in (value - std, value + std):
                        draw.line([(mid - 6, y_of(v)), (mid + 6, y_of(v))], fill="black")
                label = f"{value:.3f}" if key != "inception_score" else f"{value:.2f}"
                # Above the bar, its whisker and the published figure's dash, whichever is higher.
                tops = [min(y, zero), y_of(value + (std or 0))]
                if mark is not None:
                    tops.append(y_of(mark))
                draw.text((left, min(tops) - 16), label, fill="black", font=small)
            else:
                draw.text((left + 4, zero - 16), "n/a", fill=(120, 120, 120), font=small)
            if mark is not None:
                y = y_of(mark)
                for dash in range(int(left - 4), int(left + bar_w + 4), 8):
                    draw.line([(dash, y), (min(dash + 4, left + bar_w + 4), y)], fill="black",
                              width=2)

    y = top + plot_h + bottom
    for i, group in enumerate(groups):
        color = _PALETTE[i % len(_PALETTE)]
        draw.rectangle([margin, y + 2, margin + 14, y + 14], fill=color)
        draw.text((margin + 22, y), f"{group['label']} ({group['sets']} sets, {group['images']} "
                                    f"images)", fill="black", font=font)
        y += 22
    if paper:
        draw.line([(margin, y + 8), (margin + 14, y + 8)], fill="black", width=2)
        draw.text((margin + 22, y), "published figure (paper / independent reproduction)",
                  fill="black", font=font)
    return chart


def write_reports(report: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """Write metrics.json, metrics.md and metrics.png into ``out_dir``; returns their paths."""
    from .runfolder import write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / METRICS_JSON, "markdown": out / METRICS_MARKDOWN,
             "chart": out / METRICS_CHART}
    document = {k: v for k, v in report.items() if k != "outputs"}
    document["outputs"] = {k: str(v) for k, v in paths.items()}
    write_json(paths["json"], document)
    paths["markdown"].write_text(markdown_table(document), encoding="utf-8")
    draw_chart(document).save(paths["chart"], format="PNG")
    return {k: str(v) for k, v in paths.items()}


# ---------------------------------------------------------------------------------------------
# The paper's benchmark
# ---------------------------------------------------------------------------------------------

VARIANTS: dict[str, StyleAlignedSettings] = {
    "stylealigned": StyleAlignedSettings(),
    "baseline": StyleAlignedSettings(share_attention=False, adain_queries=False, adain_keys=False),
    "no-adain": StyleAlignedSettings(adain_queries=False, adain_keys=False),
    "full-share": StyleAlignedSettings(full_attention_share=True),
}
"""The suite's variants: StyleAligned, plain generation, and the paper's two ablations."""

ABLATIONS = ("no-adain", "full-share")

PAPER_FIGURES: dict[str, dict[str, Any]] = {
    "stylealigned": {"text_alignment": 0.287, "set_consistency": 0.51},
    "no-adain": {"text_alignment": 0.289, "set_consistency": 0.428},
    "full-share": {"text_alignment": 0.28, "set_consistency": 0.55},
    "baseline": {
        "text_alignment": 0.3454, "set_consistency": 0.3454,
        "note": "plain SDXL is not in the paper's table; these are an independent reproduction's "
                "figures (ViT-B/32 CLIP; it measured 0.3422 / 0.5018 with StyleAligned)",
    },
}
"""Published figures: Hertz et al. 2024 (text alignment, DINO set consistency)."""

SEED_STRIDE = 100


@dataclass(frozen=True)
class PaperSet:
    id: int
    style: str
    objects: tuple[str, ...]

    def prompts(self) -> list[str]:
        return [f"{obj} in {self.style}" for obj in self.objects]

    def seeds(self) -> list[int]:
        """Fixed seeds, the same for every variant: set id * 100 + position (reference 0)."""
        return [self.id * SEED_STRIDE + k for k in range(len(self.objects))]


def load_paper_sets(path: str | Path | None = None) -> list[PaperSet]:
    """The paper's evaluation sets (``resources/eval/paper_sets.json``)."""
    from ..paths import resource

    path = Path(path) if path is not None else resource("eval", "paper_sets.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sets = [PaperSet(int(s["id"]), str(s["style"]), tuple(str(o) for o in s["objects"]))
                for s in data["sets"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvaluationError(f"{path}: not a paper sets file ({error})") from None
    for s in sets:
        if len(s.objects) < 2:
            raise EvaluationError(f"{path}: set {s.id} needs a reference and at least one panel")
    return sets


def parse_set_range(text: str) -> list[int]:
    """``"1-100"``, ``"3"``, ``"1-5,8,10-12"`` -> sorted unique set ids."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(x) for x in part.split("-", 1))
                if first > last:
                    raise ValueError
                ids.update(range(first, last + 1))
            else:
                ids.add(int(part))
        except ValueError:
            raise EvaluationError(
                f"--sets: {text!r} is not a set range (examples: 1-100, 3, 1-5,8)"
            ) from None
    return sorted(ids)


def paper_request(paper_set: PaperSet, model: str, settings: StyleAlignedSettings,
                  steps: int = 50, size: int = 1024, guidance: float = 5.0,
                  device: str = "auto", dtype: str = "auto",
                  micro_batch: int | None = None) -> SetRequest:
    """The request of one paper set: first object the reference, prompts "<object> in <style>"."""
    prompts, seeds = paper_set.prompts(), paper_set.seeds()
    return SetRequest(
        model=model,
        style=GeneratedReference(prompts[0], seeds[0]),
        panels=tuple(Panel(p, s) for p, s in zip(prompts[1:], seeds[1:], strict=True)),
        sampling=Sampling(steps=steps, guidance=guidance, width=size, height=size),
        settings=settings,
        micro_batch=micro_batch,
        device=device,
        dtype=dtype,
    )


GenerateSet = Callable[[SetRequest, Path], None]
"""``generate_set(request, folder)`` writes a run folder for the request into ``folder``."""


def engine_set_generator(cancel: threading.Event | None = None) -> GenerateSet:
    """A :data:`GenerateSet` backed by one :class:`Engine` (the model loads once) and the run
    folder writer."""
    from .generator import Engine
    from .runfolder import write_run_folder

    engine = Engine()

    def generate_set(request: SetRequest, folder: Path) -> None:
        result = engine.generate(request, None, cancel)
        if result is None:
            raise SuiteCancelled("cancelled")
        write_run_folder(folder, request, result)

    return generate_set


class SuiteCancelled(Exception):
    """The suite stopped because it was cancelled; run it again to resume."""


def default_size(model: str) -> int:
    """SDXL's 1024 px, or the built-in tiny model's 128 px."""
    return 128 if model.strip() == "tiny" else 1024


@dataclass(frozen=True)
class SuiteConfig:
    model: str
    steps: int
    size: int
    guidance: float
    variants: tuple[str, ...] = field(default=("stylealigned", "baseline"))

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed suite to be comparable (variants may grow)."""
        return {"model": self.model, "steps": self.steps, "size": self.size,
                "guidance": self.guidance, "seed_stride": SEED_STRIDE}


def _check_suite_file(out: Path, config: SuiteConfig) -> None:
    path = out / SUITE_JSON
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise EvaluationError(f"{path}: broken JSON ({error})") from None
        mismatched = {k: (before.get(k), v) for k, v in config.identity().items()
                      if before.get(k) != v}
        if mismatched:
            what = ", ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in mismatched.items())
            raise EvaluationError(
                f"{out} holds a suite made with other settings ({what}); use another --out "
                "or the same settings to resume"
            )
    from .runfolder import write_json

    write_json(path, dict(config.identity(), format="stylealigned-paper-suite", version=1))


def _record_subjects(folder: Path, objects: Sequence[str]) -> None:
    """Write the paper's objects as the subjects in run.json.

    The run folder writer derives a subject by dropping ", <style>" from the prompt, which the
    paper's "<object> in <style>" prompts do not have; this makes ``stylealigned evaluate`` on
    the suite's folders compare each picture with its object, as the suite itself does.
    """
    from .runfolder import read_run, write_json

    run = read_run(folder)
    entries = [run["reference"]] + sorted(run.get("panels") or [], key=lambda p: p.get("index", 0))
    if len(entries) != len(objects):
        raise EvaluationError(f"{folder}: {len(entries)} pictures written for {len(objects)} objects")
    if [e.get("subject") for e in entries] != list(objects):
        for entry, subject in zip(entries, objects, strict=True):
            entry["subject"] = subject
        write_json(folder / "run.json", run)


def run_paper_suite(model_source: str, out_dir: str | Path, sets: Sequence[int] | None = None,
                    steps: int = 50, ablations: bool = False, size: int | None = None,
                    guidance: float = 5.0, device: str = "auto", dtype: str = "auto",
                    micro_batch: int | None = None,
                    sources: MetricSources = MetricSources(),
                    generate_set: GenerateSet | None = None,
                    progress: Progress | None = None,
                    cancel: threading.Event | None = None,
                    paper_sets: Sequence[PaperSet] | None = None) -> dict[str, Any]:
    """Generate the paper's sets with and without sharing (and the ablations), then score them.

    Layout: ``out_dir/<variant>/set-NNN/`` run folders, ``suite.json``, and the reports
    (``metrics.json``, ``metrics.md`` with the paper's figures, ``metrics.png``). A set whose
    folder already has ``run.json`` is not generated again, so an interrupted suite resumes.
    ``generate_set`` defaults to the real engine; ``sets`` are 1-based ids (None: all).
    """
    out = Path(out_dir).expanduser()
    available = list(paper_sets) if paper_sets is not None else load_paper_sets()
    by_id = {s.id: s for s in available}
    wanted = list(sets) if sets is not None else sorted(by_id)
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise EvaluationError(
            f"--sets: no paper set {', '.join(map(str, unknown))} (there are sets "
            f"{min(by_id)}-{max(by_id)})"
        )
    if not wanted:
        raise EvaluationError("--sets: no set selected")
    variants = ("stylealigned", "baseline") + (ABLATIONS if ablations else ())
    config = SuiteConfig(model_source, steps, size or default_size(model_source), guidance,
                         variants)
    requests = {
        (set_id, variant): paper_request(by_id[set_id], model_source, VARIANTS[variant],
                                         steps, config.size, guidance, device, dtype, micro_batch)
        for set_id in wanted for variant in variants
    }  # built first: bad steps/size fail before anything is written
    _load_models(sources)  # a missing metric model fails before hours of generation
    out.mkdir(parents=True, exist_ok=True)
    _check_suite_file(out, config)

    report = progress or (lambda phase, done, total, message: None)
    total = len(requests)
    generate = generate_set
    done = 0
    report("generate", 0, total, "generating")
    # Sets outside, variants inside: an interrupted suite leaves comparable sets behind.
    for set_id in wanted:
        for variant in variants:
            folder = out / variant / f"set-{set_id:03d}"
            if not (folder / "run.json").is_file():
                if cancel is not None and cancel.is_set():
                    raise SuiteCancelled(f"cancelled; run the same command again to resume ({out})")
                if generate is None:
                    generate = engine_set_generator(cancel)
                if folder.exists():  # a set interrupted half-way: start it again
                    shutil.rmtree(folder)
                generate(requests[set_id, variant], folder)
                if not (folder / "run.json").is_file():
                    raise EvaluationError(f"{folder}: the generator wrote no run.json")
                _record_subjects(folder, by_id[set_id].objects)
            done += 1
            report("generate", done, total, f"{variant} set {set_id}")

    if generate_set is None:
        generate = None  # drop our engine (and its pipeline) before the metric models run

    groups = [
        Group(variant, out / variant, tuple(
            read_run_folder(out / variant / f"set-{i:03d}", by_id[i].objects) for i in wanted))
        for variant in variants
    ]
    result = score_groups(groups, sources, progress)
    for group in result["groups"]:
        group["variant"] = group["label"]
    result["paper"] = {v: PAPER_FIGURES[v] for v in variants}
    result["suite"] = dict(config.identity(), variants=list(variants), sets=wanted)
    result["outputs"] = write_reports(result, out)
    return result


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_evaluate_parser(subparsers) -> Any:
    """Add the ``evaluate`` subcommand to an argparse subparsers object.

    The parser's default ``func`` is :func:`evaluate_command` (``args.func(args)`` returns the
    exit code; it prints user errors itself as one line and returns 2).
    """
    parser = subparsers.add_parser(
        "evaluate",
        help="score run folders (DINO set consistency, CLIP text alignment, Inception Score) "
             "or run the paper's benchmark",
        description="Score run folders side by side, or reproduce the paper's benchmark with "
                    "--suite paper. Writes metrics.json, metrics.md and metrics.png.",
    )
    parser.add_argument("folders", nargs="*", metavar="DIR",
                        help="run folders, or folders of run folders (each DIR is one bar)")
    parser.add_argument("--suite", choices=["paper"],
                        help="generate and score the paper's evaluation sets")
    parser.add_argument("--model", help="with --suite: the model to generate with (hub id, "
                                        "folder, .safetensors or 'tiny')")
    parser.add_argument("--out", help="where to write the reports (with --suite: the run folders "
                                      "too); default: DIR, or the DIRs' common parent")
    parser.add_argument("--sets", default="1-100", help="with --suite: set ids (default 1-100)")
    parser.add_argument("--steps", type=int, default=50, help="with --suite: denoising steps (default %(default)s)")
    parser.add_argument("--size", type=int, help="with --suite: image size (default 1024; "
                                                 "128 for tiny)")
    parser.add_argument("--ablations", action="store_true",
                        help="with --suite: also without AdaIN and with full attention sharing")
    parser.add_argument("--dino", default=metrics.DEFAULT_DINO,
                        help="DINO model: hub id or folder, 'none' to skip (default %(default)s)")
    parser.add_argument("--clip", default=metrics.DEFAULT_CLIP,
                        help="CLIP model: hub id or folder, 'none' to skip (default %(default)s)")
    parser.add_argument("--inception", default=metrics.DEFAULT_INCEPTION,
                        help="Inception v3 weights: .safetensors/.pth state dict, 'torchvision' "
                             "for the published weights, 'none' to skip (default %(default)s)")
    parser.add_argument("--device", default="auto", type=check_device,
                        help="where the models run: auto, cpu, cuda, cuda:N or mps (default %(default)s)")
    parser.set_defaults(func=evaluate_command)
    return parser


def _source(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in ("", "none", "off") else value


class _TqdmProgress:
    """A terminal progress bar per phase (generate, score)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.bar = None

    def __call__(self, phase: str, done: int, total: int, message: str) -> None:
        from tqdm import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=total, desc=phase, unit="set" if phase == "generate" else "step",
                            file=sys.stderr, dynamic_ncols=True)
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _user_error_types() -> tuple[type[BaseException], ...]:
    from .generator import GenerationError

    return (EvaluationError, metrics.MetricModelError, GenerationError, ValueError, OSError)


def evaluate_command(args) -> int:
    """Run ``stylealigned evaluate`` from parsed arguments; user errors are one line, exit 2."""
    progress = _TqdmProgress()
    try:
        sources = MetricSources(dino=_source(args.dino), clip=_source(args.clip),
                                inception=_source(args.inception), device=args.device)
        metrics.resolve_device(args.device)
        if args.suite:
            if args.folders:
                raise EvaluationError("--suite paper takes no DIR (use --out for its folder)")
            if not args.model or not args.out:
                raise EvaluationError("--suite paper needs --model SOURCE and --out DIR")
            report = run_paper_suite(args.model, args.out, parse_set_range(args.sets),
                                     steps=args.steps, ablations=args.ablations, size=args.size,
                                     device=args.device, sources=sources, progress=progress)
        else:
            if not args.folders:
                raise EvaluationError("give run folders to evaluate, or --suite paper")
            report = evaluate_folders(args.folders, args.out, sources, progress)
    except KeyboardInterrupt:
        progress.close()
        print("stylealigned: interrupted (a suite resumes when run again)", file=sys.stderr)
        return 130
    except SuiteCancelled as error:
        progress.close()
        print(f"stylealigned: {error}", file=sys.stderr)
        return 130
    except _user_error_types() as error:
        progress.close()
        if getattr(args, "debug", False):  # the main parser's --debug: show the traceback
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"stylealigned: error: {message}", file=sys.stderr)
        return 2
    progress.close()
    print(markdown_table(report), end="")
    for path in report["outputs"].values():
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stylealigned_desktop.engine.evaluation evaluate ...`` (for tests and scripts)."""
    import argparse

    parser = argparse.ArgumentParser(prog="stylealigned")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
