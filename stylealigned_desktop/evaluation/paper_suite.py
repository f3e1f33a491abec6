"""The paper's benchmark (spec section 10): generate its evaluation sets, then score them.

:func:`run_paper_suite` generates the paper's sets (``paper_sets.json``: the first object of
each set is the reference, prompts ``"<object> in <style>"``, fixed seeds) with StyleAligned,
without sharing (the baseline) and optionally the ablations, resumes where it stopped (a set
whose folder has ``run.json`` is not generated again), then scores them next to the paper's
published figures. With ``characters`` it also runs the app's small character set
(``character_sets.json``, spec section 13): each set's panels name one character, generated with
character sharing (``characters``) and with dropout 1, the panels without their character but
with its masks (``characters-off``), so that both report character identity.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.characters import expand_character_names
from ..engine.models import native_side
from ..engine.request import Character, GeneratedReference, Panel, Sampling, SetRequest
from ..engine.settings import MAX_ANCHORS, StyleAlignedSettings
from .report import write_reports
from .scoring import (
    DEFAULT_METRIC_SOURCES,
    EvaluationError,
    Group,
    MetricSources,
    Progress,
    load_metric_models,
    read_run_folder,
    score_groups,
)

SUITE_JSON = "suite.json"

VARIANTS: dict[str, StyleAlignedSettings] = {
    "stylealigned": StyleAlignedSettings(),
    "baseline": StyleAlignedSettings(share_attention=False, adain_queries=False, adain_keys=False),
    "no-adain": StyleAlignedSettings(adain_queries=False, adain_keys=False),
    "full-share": StyleAlignedSettings(full_attention_share=True),
}
"""The suite's variants: StyleAligned, plain generation, and the paper's two ablations."""

ABLATIONS = ("no-adain", "full-share")
CHARACTER_VARIANTS: dict[str, StyleAlignedSettings] = {
    "characters": StyleAlignedSettings(),
    "characters-off": StyleAlignedSettings(character_dropout=1.0),
}
"""The character set's variants: sharing the character (the defaults), and dropout 1 (each panel
is itself without its character, tests/test_characters.py; its masks are still made)."""
ANCHOR_SEED_OFFSET = 50
"""A character set's anchor k is seeded ``id * SEED_STRIDE + ANCHOR_SEED_OFFSET + k``."""

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
    characters: tuple[Character, ...] = ()
    """A character set's characters (its objects name them as ``[Name]``)."""

    def prompts(self) -> list[str]:
        return [f"{obj} in {self.style}" for obj in self.objects]

    def subjects(self) -> list[str]:
        """What each picture shows, names spelled out (what text alignment compares it with)."""
        return [expand_character_names(obj, self.characters) for obj in self.objects]

    def seeds(self) -> list[int]:
        """Fixed seeds, the same for every variant: set id * 100 + position (reference 0)."""
        return [self.id * SEED_STRIDE + k for k in range(len(self.objects))]


def load_paper_sets(path: str | Path | None = None) -> list[PaperSet]:
    """The paper's evaluation sets (``resources/eval/paper_sets.json``)."""
    from ..paths import resource

    path = Path(path) if path is not None else resource("eval", "paper_sets.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sets = [PaperSet(int(s["id"]), str(s["style"]), tuple(str(o) for o in s["objects"]),
                         _characters(s, f" in {s['style']}")) for s in data["sets"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvaluationError(f"{path}: not a paper sets file ({error})") from None
    for s in sets:
        if len(s.objects) < 2:
            raise EvaluationError(f"{path}: set {s.id} needs a reference and at least one panel")
    return sets


def load_character_sets(path: str | Path | None = None) -> list[PaperSet]:
    """The app's small character set (``resources/eval/character_sets.json``)."""
    from ..paths import resource

    return load_paper_sets(path if path is not None else resource("eval", "character_sets.json"))


def _characters(entry: dict, anchor_text: str) -> tuple[Character, ...]:
    """A set's ``character`` (name, description, words): anchors seeded from the set's id."""
    if "character" not in entry:
        return ()
    c = entry["character"]
    seeds = tuple(int(entry["id"]) * SEED_STRIDE + ANCHOR_SEED_OFFSET + k for k in range(MAX_ANCHORS))
    return (Character(str(c["name"]), str(c["description"]), tuple(c.get("words", ())), anchor_seeds=seeds,
                      anchor_text=anchor_text),)


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
        characters=paper_set.characters,
        previews="off",  # the suite shows no pictures while it runs: nothing to decode
    )


GenerateSet = Callable[[SetRequest, Path], None]
"""``generate_set(request, folder)`` writes a run folder for the request into ``folder``."""


def engine_set_generator(cancel: threading.Event | None = None) -> GenerateSet:
    """A :data:`GenerateSet` backed by one :class:`Engine` (the model loads once) and the run
    folder writer."""
    from ..engine.generator import Engine
    from ..engine.runfolder import write_run_folder

    engine = Engine()

    def generate_set(request: SetRequest, folder: Path) -> None:
        result = engine.generate(request, None, cancel)
        if result is None:
            raise SuiteCancelled("cancelled")
        write_run_folder(folder, request, result)

    return generate_set


class SuiteCancelled(Exception):
    """The suite stopped because it was cancelled; run it again to resume."""


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
    from ..engine.runfolder import write_json

    write_json(path, dict(config.identity(), format="stylealigned-paper-suite", version=1))


def _record_subjects(folder: Path, objects: Sequence[str]) -> None:
    """Write the paper's objects as the subjects in run.json.

    The run folder writer derives a subject by dropping ", <style>" from the prompt, which the
    paper's "<object> in <style>" prompts do not have; this makes ``stylealigned evaluate`` on
    the suite's folders compare each picture with its object, as the suite itself does.
    """
    from ..engine.runfolder import read_run, write_json

    run = read_run(folder)
    entries = [run["reference"]] + sorted(run.get("panels") or [], key=lambda p: p.get("index", 0))
    if len(entries) != len(objects):
        raise EvaluationError(f"{folder}: {len(entries)} pictures written for {len(objects)} objects")
    if [e.get("subject") for e in entries] != list(objects):
        for entry, subject in zip(entries, objects, strict=True):
            entry["subject"] = subject
        write_json(folder / "run.json", run)


def _chosen_sets(paper_sets: Sequence[PaperSet] | None,
                 sets: Sequence[int] | None) -> tuple[dict[int, PaperSet], list[int]]:
    """The paper's sets by id, and the ids asked for (None: all); unknown ids fail."""
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
    return by_id, wanted


def _generate_missing(out: Path, requests: dict[tuple[int, str], SetRequest],
                      subjects: dict[tuple[int, str], list[str]], generate_set: GenerateSet | None,
                      progress: Progress | None, cancel: threading.Event | None) -> None:
    """Generate each requested set whose folder has no ``run.json`` yet (``requests`` in the
    order sets outside, variants inside: an interrupted suite leaves comparable sets behind)."""
    report = progress or (lambda phase, done, total, message: None)
    total = len(requests)
    generate = generate_set
    report("generate", 0, total, "generating")
    for done, ((set_id, variant), request) in enumerate(requests.items(), start=1):
        folder = out / variant / f"set-{set_id:03d}"
        if not (folder / "run.json").is_file():
            if cancel is not None and cancel.is_set():
                raise SuiteCancelled(f"cancelled; run the same command again to resume ({out})")
            if generate is None:
                generate = engine_set_generator(cancel)
            if folder.exists():  # a set interrupted half-way: start it again
                shutil.rmtree(folder)
            generate(request, folder)
            if not (folder / "run.json").is_file():
                raise EvaluationError(f"{folder}: the generator wrote no run.json")
            _record_subjects(folder, subjects[(set_id, variant)])
        report("generate", done, total, f"{variant} set {set_id}")


def run_paper_suite(model_source: str, out_dir: str | Path, sets: Sequence[int] | None = None,
                    steps: int = 50, ablations: bool = False, size: int | None = None,
                    guidance: float = 5.0, device: str = "auto", dtype: str = "auto",
                    micro_batch: int | None = None,
                    sources: MetricSources = DEFAULT_METRIC_SOURCES,
                    generate_set: GenerateSet | None = None,
                    progress: Progress | None = None,
                    cancel: threading.Event | None = None,
                    paper_sets: Sequence[PaperSet] | None = None,
                    characters: bool = False) -> dict[str, Any]:
    """Generate the paper's sets with and without sharing (and the ablations; with
    ``characters`` the character set with and without character sharing), then score them.

    Layout: ``out_dir/<variant>/set-NNN/`` run folders, ``suite.json``, and the reports
    (``metrics.json``, ``metrics.md`` with the paper's figures, ``metrics.png``). A set whose
    folder already has ``run.json`` is not generated again, so an interrupted suite resumes.
    ``generate_set`` defaults to the real engine; ``sets`` are 1-based ids (None: all).
    """
    out = Path(out_dir).expanduser()
    by_id, wanted = _chosen_sets(paper_sets, sets)
    variants = ("stylealigned", "baseline") + (ABLATIONS if ablations else ())
    config = SuiteConfig(model_source, steps, size or native_side(model_source), guidance,
                         variants)
    families = [(variants, [by_id[i] for i in wanted])]
    if characters:  # the app's character set, after the paper's
        families.append((tuple(CHARACTER_VARIANTS), load_character_sets()))
    settings = VARIANTS | CHARACTER_VARIANTS
    requests = {
        (s.id, variant): paper_request(s, model_source, settings[variant],
                                       steps, config.size, guidance, device, dtype, micro_batch)
        for names, sets_of in families for s in sets_of for variant in names
    }  # built first: bad steps/size fail before anything is written; sets outside, variants inside
    chosen = {variant: sets_of for names, sets_of in families for variant in names}
    subjects = {(s.id, variant): s.subjects() for variant, sets_of in chosen.items() for s in sets_of}
    load_metric_models(sources)  # a missing metric model fails before hours of generation
    out.mkdir(parents=True, exist_ok=True)
    _check_suite_file(out, config)
    # our engine (and its pipeline) goes with this call, before the metric models run
    _generate_missing(out, requests, subjects, generate_set, progress, cancel)

    groups = [
        Group(variant, out / variant, tuple(
            read_run_folder(out / variant / f"set-{s.id:03d}", s.subjects()) for s in sets_of))
        for variant, sets_of in chosen.items()
    ]
    result = score_groups(groups, sources, progress)
    for group in result["groups"]:
        group["variant"] = group["label"]
    result["paper"] = {v: PAPER_FIGURES[v] for v in variants}
    result["suite"] = dict(config.identity(), variants=list(chosen), sets=wanted)
    result["outputs"] = write_reports(result, out)
    return result
