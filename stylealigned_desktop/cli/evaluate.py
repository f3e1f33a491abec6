"""``stylealigned evaluate``: score run folders side by side, or run the paper's benchmark."""

from __future__ import annotations

import sys

from ..evaluation import metrics
from .common import DEVICE_HELP, UsageError, device


def add_evaluate_parser(subparsers) -> None:
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
    parser.add_argument("--characters", action="store_true",
                        help="with --suite: also the small character set, with and without character "
                             "sharing (reports character identity; docs/characters.md)")
    parser.add_argument("--dino", default=metrics.DEFAULT_DINO,
                        help="DINO model: hub id or folder, 'none' to skip (default %(default)s)")
    parser.add_argument("--clip", default=metrics.DEFAULT_CLIP,
                        help="CLIP model: hub id or folder, 'none' to skip (default %(default)s)")
    parser.add_argument("--inception", default=metrics.DEFAULT_INCEPTION,
                        help="Inception v3 weights: .safetensors/.pth state dict, 'torchvision' "
                             "for the published weights, 'none' to skip (default %(default)s)")
    parser.add_argument("--device", default="auto", type=device,
                        help=f"where the models run: {DEVICE_HELP} (default %(default)s)")
    parser.set_defaults(func=cmd_evaluate)


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
    from ..engine.generator import GenerationError
    from ..evaluation.scoring import EvaluationError

    return (EvaluationError, metrics.MetricModelError, GenerationError, ValueError, OSError)


def _run(args, progress: _TqdmProgress) -> dict:
    from ..evaluation.paper_suite import parse_set_range, run_paper_suite
    from ..evaluation.scoring import EvaluationError, MetricSources, evaluate_folders

    sources = MetricSources(dino=_source(args.dino), clip=_source(args.clip),
                            inception=_source(args.inception), device=args.device)
    metrics.resolve_device(args.device)
    if args.suite:
        if args.folders:
            raise EvaluationError("--suite paper takes no DIR (use --out for its folder)")
        if not args.model or not args.out:
            raise EvaluationError("--suite paper needs --model SOURCE and --out DIR")
        return run_paper_suite(args.model, args.out, parse_set_range(args.sets),
                               steps=args.steps, ablations=args.ablations, size=args.size,
                               device=args.device, sources=sources, progress=progress,
                               characters=args.characters)
    if not args.folders:
        raise EvaluationError("give run folders to evaluate, or --suite paper")
    return evaluate_folders(args.folders, args.out, sources, progress)


def cmd_evaluate(args) -> int:
    """User errors become one line (exit 2); an interrupted suite says it resumes (exit 130)."""
    from ..evaluation.paper_suite import SuiteCancelled
    from ..evaluation.report import markdown_table

    progress = _TqdmProgress()
    try:
        report = _run(args, progress)
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
        raise UsageError(message) from None
    progress.close()
    print(markdown_table(report), end="")
    for path in report["outputs"].values():
        print(f"wrote {path}")
    return 0
