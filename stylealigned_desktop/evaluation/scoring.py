"""Scoring run folders (spec section 10).

- :func:`evaluate_folders` reads run folders (or folders of run folders), scores each folder as
  one group of sets, and writes the reports (``metrics.json``, ``metrics.md``, ``metrics.png``:
  :mod:`.report`).
- :func:`score_groups` scores groups of sets and returns the ``metrics.json`` document; the
  paper's benchmark (:mod:`.paper_suite`) uses it too.

A "set" is one run folder: its reference and panels. DINO set consistency is the mean cosine over
all pairs of a set's images; CLIP text alignment compares each image with its ``subject`` (the
object without the style text); the Inception Score is computed over all images of a group.
The command line (``stylealigned evaluate``) lives in :mod:`stylealigned_desktop.cli.evaluate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from . import identity, metrics
from .report import write_reports

METRICS_FORMAT = "stylealigned-metrics"
METRICS_VERSION = 1

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
    characters: tuple[tuple[str, tuple[tuple[Path, tuple[str, ...]], ...]], ...] = ()
    """Per character, the panels' pictures and subject masks (spec section 13, :mod:`.identity`)."""

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
    from ..engine.runfolder import read_run

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
    crops = identity.character_crops(folder, ordered)
    return ScoredSet(folder, tuple(files), tuple(found), tuple((k, tuple(v)) for k, v in crops.items()))


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


DEFAULT_METRIC_SOURCES = MetricSources()


@dataclass
class MetricModels:
    """The loaded metric models; None where a metric is skipped."""

    dino: Any = None
    clip: Any = None
    inception: Any = None


def load_metric_models(sources: MetricSources) -> MetricModels:
    """Load every enabled model before any work, so a missing one fails at once."""
    if not sources.enabled():
        raise EvaluationError("no metric left to compute (all of --dino, --clip, --inception are none)")
    return MetricModels(
        dino=metrics.load_dino(sources.dino, sources.device) if sources.dino else None,
        clip=metrics.load_clip(sources.clip, sources.device) if sources.clip else None,
        inception=(metrics.load_inception(sources.inception, sources.device)
                   if sources.inception else None),
    )


def _score_group(group: Group, models: MetricModels, sources: MetricSources,
                 tick: Callable[[str], None]) -> dict[str, Any]:
    dino_sets, consistency_sets, identities = [], [], []
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
            identities += [{"folder": str(scored.folder), "character": character, "value": value}
                           for character, value in identity.set_identity(dict(scored.characters), models.dino).items()]
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
    if identities:
        result["identity"] = identity.identity_figure(identities)
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


def score_groups(groups: Sequence[Group], sources: MetricSources = DEFAULT_METRIC_SOURCES,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Score groups of sets; returns the ``metrics.json`` document (nothing written)."""
    models = load_metric_models(sources)
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
            "identity": "DINO CLS cosine between the panels' masked subject crops of one character, "
                        "mean over pairs; mean and population std over (set, character)",
            "text_alignment": "raw CLIP cosine between each image and its subject; mean over images",
            "clip_score_100": "torchmetrics CLIPScore convention: mean of max(100 * cosine, 0)",
            "inception_score": "exp(E[KL(p(y|x) || p(y))]) per split; mean and std over splits",
        },
        "groups": [_score_group(g, models, sources, tick) for g in groups],
    }


def evaluate_folders(folders: Sequence[str | Path], out_dir: str | Path | None = None,
                     sources: MetricSources = DEFAULT_METRIC_SOURCES,
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
