"""The command line: ``stylealigned generate|evaluate|models|invert|preprocess ...``.

Bad input gets a one-line error and exit code 2, never a traceback. Heavy imports (torch,
diffusers) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from dataclasses import fields
from pathlib import Path

from . import __version__
from .engine.request import DEVICES, DTYPES, SCHEDULERS
from .engine.settings import StyleAlignedSettings
from .prompts_file import PromptsFileError, read_prompts_file

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


SETTING_HELP = {
    "share_attention": "panels attend to the reference's tokens too (the heart of the method)",
    "adain_queries": "normalise panel queries to the reference's statistics",
    "adain_keys": "normalise panel keys to the reference's statistics",
    "adain_values": "normalise panel values to the reference's statistics",
    "share_group_norm": "pool GroupNorm statistics with the reference's (default: on for reference pictures)",
    "shared_score_shift": "log-weight added to the reference's tokens (ln 2 = 0.69 counts them twice)",
    "shared_score_scale": "multiplier on the reference keys panels see (below 1 softens the reference)",
    "full_attention_share": "ablation: every image attends to every other image, no AdaIN",
    "only_self_level": "fraction of self-attention layers left unshared (0..1)",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per StyleAlignedSettings field; unset flags keep the mode's default."""
    group = parser.add_argument_group("StyleAligned settings (defaults depend on the style source)")
    for f in fields(StyleAlignedSettings):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=SETTING_HELP[f.name])
        else:
            group.add_argument(flag, dest=f.name, type=float, default=None, metavar="X", help=SETTING_HELP[f.name])


def settings_from_args(args, reference_picture: bool) -> StyleAlignedSettings:
    overrides = {f.name: getattr(args, f.name) for f in fields(StyleAlignedSettings) if getattr(args, f.name) is not None}
    if reference_picture:
        return StyleAlignedSettings.for_reference_image(**overrides)
    return StyleAlignedSettings(**overrides)


def _add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate a style-aligned set",
        description="Generate a set of pictures sharing one style. The reference comes first; "
                    "panel i (1-based) uses seed N+i unless --panel-seeds says otherwise.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="hub id, local diffusers folder, single .safetensors file, or 'tiny' (default: %(default)s)")
    style = p.add_argument_group("style source")
    style.add_argument("--reference-prompt", metavar="TEXT", help="prompt of the generated reference")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a panel prompt (repeat per panel)")
    p.add_argument("--prompts-file", metavar="FILE", help="one panel per line (blank and # lines ignored)")
    p.add_argument("--style", default="", metavar="TEXT", help='appended as ", TEXT" to the reference and every panel prompt')
    p.add_argument("--negative-prompt", default=None, metavar="TEXT")
    p.add_argument("--seed", type=int, default=0, help="reference seed N; panel i uses N+i (default 0)")
    p.add_argument("--panel-seeds", type=_int_list, metavar="A,B,C", help="explicit seed per panel")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default 5.0)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    add_settings_arguments(p)
    p.add_argument("--micro-batch", type=_positive_int, default=None, metavar="N",
                   help="panels per UNet batch (default: all on CPU, from free memory on a GPU)")
    p.add_argument("--only", type=_int_list, metavar="3,7", help="re-roll only these panels (1-based) into --out")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to the output folder {folder}: {error.strerror or error}") from None


def _with_style(text: str, style: str) -> str:
    return f"{text}, {style}" if style else text


def build_generate_request(args):
    """The SetRequest a ``generate`` command line describes (no model is loaded here)."""
    from .engine.models import ModelSourceError, classify_source
    from .engine.request import GeneratedReference, Panel, Sampling, SetRequest

    try:
        classify_source(args.model)
    except ModelSourceError as error:
        raise UsageError(str(error)) from None
    lines = []
    if args.prompts_file:
        try:
            lines = read_prompts_file(args.prompts_file)
        except PromptsFileError as error:
            raise UsageError(str(error)) from None
    prompts = list(args.prompt) + [line.prompt for line in lines]
    if not prompts:
        raise UsageError("no panel prompts: give --prompt (repeatable) or --prompts-file")
    if any(line.control_mode for line in lines):
        raise UsageError("per-panel controls in the prompts file are not supported by this version yet")
    if args.reference_prompt is None:
        raise UsageError("no style source: give --reference-prompt")
    seeds = [args.seed + i for i in range(1, len(prompts) + 1)]
    file_seeds = [None] * len(args.prompt) + [line.seed for line in lines]
    seeds = [fs if fs is not None else s for s, fs in zip(seeds, file_seeds)]
    if args.panel_seeds is not None:
        if len(args.panel_seeds) != len(prompts):
            raise UsageError(f"--panel-seeds has {len(args.panel_seeds)} seeds for {len(prompts)} panels")
        seeds = list(args.panel_seeds)
    only = None
    if args.only:
        bad = [i for i in args.only if not 1 <= i <= len(prompts)]
        if bad:
            raise UsageError(f"--only: no panel {bad[0]} (the set has {len(prompts)} panels, numbered from 1)")
        only = tuple(i - 1 for i in args.only)
    try:
        settings = settings_from_args(args, reference_picture=False)
        sampling = Sampling(
            steps=args.steps,
            guidance=5.0 if args.guidance is None else args.guidance,
            width=args.width,
            height=args.height,
            scheduler=args.scheduler,
            negative_prompt=args.negative_prompt,
        )
        return SetRequest(
            model=args.model,
            style=GeneratedReference(_with_style(args.reference_prompt, args.style), args.seed),
            panels=tuple(Panel(_with_style(p, args.style), s) for p, s in zip(prompts, seeds)),
            sampling=sampling,
            settings=settings,
            micro_batch=args.micro_batch,
            device=args.device,
            dtype=args.dtype,
            only=only,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


class _TerminalProgress:
    """Event sink that draws a tqdm bar of denoising steps on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def __call__(self, event) -> None:
        from .engine import events as ev

        if self.quiet:
            return
        if isinstance(event, ev.Loading) and event.message:
            print(f"  {event.message}", file=sys.stderr)
        elif isinstance(event, ev.Notice):
            print(f"  note: {event.message}", file=sys.stderr)
        elif isinstance(event, ev.Step):
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=event.total, desc="denoising", unit="step", file=sys.stderr)
            self.bar.update(event.step - self.bar.n)
        elif isinstance(event, (ev.Finished, ev.Cancelled, ev.Failed)) and self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_generate(args) -> int:
    request = build_generate_request(args)
    out = Path(args.out).expanduser()
    _check_writable(out)
    if request.only is not None and not (out / "run.json").is_file():
        raise UsageError(f"--only re-rolls panels of an existing run, but {out} has no run.json")
    from .engine.generator import Engine, GenerationError
    from .engine.models import ModelSourceError
    from .engine.runfolder import write_run_folder

    progress = _TerminalProgress(args.quiet)
    try:
        result = Engine().generate(request, progress, threading.Event())
    except (ModelSourceError, GenerationError, ValueError) as error:
        raise UsageError(str(error)) from None
    write_run_folder(out, request, result, style_text=args.style)
    if not args.quiet:
        done = len(result.panels)
        print(f"wrote the reference and {done} panel(s) to {out}", file=sys.stderr)
    return 0


def _add_models_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="model utilities")
    sub = p.add_subparsers(dest="models_command", required=True)
    tiny = sub.add_parser("make-tiny", help="save the built-in tiny random-weight SDXL as a diffusers folder")
    tiny.add_argument("dir")
    tiny.set_defaults(func=cmd_models_make_tiny)
    check = sub.add_parser("check", help="say what kind of model source this is, and whether it loads")
    check.add_argument("source")
    check.add_argument("--load", action="store_true", help="also load it (slow for real models)")
    check.set_defaults(func=cmd_models_check)


def cmd_models_make_tiny(args) -> int:
    from .engine.tiny import save_tiny_pipeline

    target = Path(args.dir).expanduser()
    _check_writable(target)
    save_tiny_pipeline(target)
    print(f"saved the tiny model to {target}")
    return 0


def cmd_models_check(args) -> int:
    from .engine.models import ModelSourceError, classify_source, load_pipeline

    try:
        kind = classify_source(args.source)
        print(f"{args.source}: {kind.replace('_', ' ')}")
        if args.load:
            pipe = load_pipeline(args.source)
            print(f"loaded {type(pipe).__name__} on {pipe.unet.device} ({pipe.unet.dtype})")
    except ModelSourceError as error:
        raise UsageError(str(error)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylealigned", description="Generate and measure sets of pictures that share one style (StyleAligned on SDXL).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_generate_parser(subparsers)
    _add_models_parser(subparsers)
    # -- subcommands from other modules --
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as error:
        print(f"stylealigned: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stylealigned: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"stylealigned: unexpected error: {type(error).__name__}: {error} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
