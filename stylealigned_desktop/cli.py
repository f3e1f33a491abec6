"""The command line: ``stylealigned generate|evaluate|models|invert|preprocess ...``.

Bad input gets a one-line error and exit code 2, never a traceback. Heavy imports (torch,
diffusers) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
from dataclasses import fields
from pathlib import Path

from . import __version__
from .engine.limits import MAX_GUIDANCE, check_number, check_prompt, check_size, check_steps
from .engine.request import (
    DEVICES,
    DTYPES,
    SCHEDULERS,
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from .engine.settings import StyleAlignedSettings
from .prompts_file import PromptsFileError, read_prompts_file

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line (not the whole usage), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    style = p.add_argument_group("style source (one of)")
    source = style.add_mutually_exclusive_group()
    source.add_argument("--reference-prompt", metavar="TEXT", help="prompt of the generated reference")
    source.add_argument("--reference-image", metavar="PATH",
                        help="a picture whose style the set takes (DDIM-inverted; cached per picture and settings)")
    style.add_argument("--reference-caption", default="", metavar="TEXT",
                       help="what the reference picture shows (may be empty)")
    style.add_argument("--inversion-guidance", type=float, default=2.0, metavar="G", help="default %(default)s")
    style.add_argument("--inversion-offset", type=int, default=None, metavar="K",
                       help="start the reference K steps into its trajectory (default 5 per 50 steps)")
    control = p.add_argument_group("ControlNet (per panel in the prompts file, or for every panel here)")
    control.add_argument("--control", choices=("canny", "depth", "map"), help="control mode for every panel")
    control.add_argument("--control-image", metavar="PATH", help="control picture for every panel")
    control.add_argument("--control-scale", type=float, default=0.8, metavar="S", help="default %(default)s")
    control.add_argument("--control-start", type=float, default=0.0, metavar="F")
    control.add_argument("--control-end", type=float, default=1.0, metavar="F")
    control.add_argument("--canny-low", type=int, default=100)
    control.add_argument("--canny-high", type=int, default=200)
    control.add_argument("--map-kind", choices=("depth", "canny"), default="depth",
                         help="which ControlNet a ready-made map feeds (default depth)")
    control.add_argument("--controlnet-canny", metavar="SOURCE", help="canny ControlNet: hub id or folder")
    control.add_argument("--controlnet-depth", metavar="SOURCE", help="depth ControlNet: hub id or folder")
    control.add_argument("--depth-model", metavar="SOURCE", help="depth estimator: hub id or folder")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a panel prompt (repeat per panel)")
    p.add_argument("--prompts-file", metavar="FILE", help="one panel per line (blank and # lines ignored)")
    p.add_argument("--style", default="", metavar="TEXT", help='appended as ", TEXT" to the reference and every panel prompt')
    p.add_argument("--negative-prompt", default=None, metavar="TEXT")
    p.add_argument("--seed", type=int, default=0, help="reference seed N; panel i uses N+i (default 0)")
    p.add_argument("--panel-seeds", type=_int_list, metavar="A,B,C", help="explicit seed per panel")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance (default 5.0; 10.0 with --reference-image)")
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
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to the output folder {folder}: {error.strerror or error}") from None


def _check_output_file(out: Path) -> None:
    """An output file's folder is writable and the name is free for a file (before any work)."""
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give the name of a file to write")
    _check_writable(out.parent)


def _check_run_folder(out: Path, rerolling: bool) -> None:
    """``generate --out``: writable, and a run.json already there is one of ours (its files all
    inside the folder), read before any work; a re-roll needs one."""
    from .engine.runfolder import RUN_FILE, read_run

    _check_writable(out)
    if (out / RUN_FILE).exists() or (out / RUN_FILE).is_symlink():
        try:
            read_run(out)
        except ValueError as error:
            raise UsageError(f"{error}; choose another --out folder") from None
    elif rerolling:
        raise UsageError(f"--only re-rolls panels of an existing run, but {out} has no run.json")


def _with_style(text: str, style: str) -> str:
    return f"{text}, {style}" if style else text


def build_generate_request(args):
    """The SetRequest a ``generate`` command line describes (no model is loaded here)."""
    from .engine.models import ModelSourceError, classify_source

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
    if args.reference_prompt is None and args.reference_image is None:
        raise UsageError("no style source: give --reference-prompt or --reference-image")
    if (args.control is None) != (args.control_image is None):
        raise UsageError("--control and --control-image go together")
    picture_mode = args.reference_image is not None
    if picture_mode and not Path(args.reference_image).expanduser().is_file():
        raise UsageError(f"{args.reference_image}: no such picture")
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
        controls = [_control_for(line, args) for line in [None] * len(args.prompt) + lines]
        settings = settings_from_args(args, reference_picture=picture_mode)
        if picture_mode:
            style = ReferencePicture(str(Path(args.reference_image).expanduser()), args.reference_caption,
                                     args.inversion_guidance, args.inversion_offset)
        else:
            style = GeneratedReference(_with_style(args.reference_prompt, args.style), args.seed)
        sampling = Sampling(
            steps=args.steps,
            guidance=(10.0 if picture_mode else 5.0) if args.guidance is None else args.guidance,
            width=args.width,
            height=args.height,
            scheduler=args.scheduler,
            negative_prompt=args.negative_prompt,
        )
        return SetRequest(
            model=args.model,
            style=style,
            panels=tuple(Panel(_with_style(p, args.style), s, c) for p, s, c in zip(prompts, seeds, controls)),
            sampling=sampling,
            settings=settings,
            micro_batch=args.micro_batch,
            device=args.device,
            dtype=args.dtype,
            only=only,
            controlnet_canny=args.controlnet_canny,
            controlnet_depth=args.controlnet_depth,
            depth_model=args.depth_model,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _control_for(line, args) -> PanelControl | None:
    """A panel's control: its own from the prompts file, else the command line's, else none."""
    command_line = PanelControl(
        image=str(Path(args.control_image).expanduser()) if args.control_image else "",
        mode=args.control or "canny", scale=args.control_scale,
        guidance_start=args.control_start, guidance_end=args.control_end,
        canny_low=args.canny_low, canny_high=args.canny_high, map_kind=args.map_kind,
    )
    if line is not None and line.control_mode:
        return PanelControl(image=line.control_image, mode=line.control_mode, **line.control_values(command_line))
    return command_line if args.control else None


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
    _check_run_folder(out, rerolling=request.only is not None)
    from .engine.generator import Engine
    from .engine.runfolder import write_run_folder

    progress = _TerminalProgress(args.quiet)
    try:
        result = Engine().generate(request, progress, threading.Event())
    except (RuntimeError, ValueError, OSError) as error:
        if not _is_user_error(error):
            raise
        raise UsageError(str(error)) from None
    write_run_folder(out, request, result, style_text=args.style)
    if not args.quiet:
        done = len(result.panels)
        print(f"wrote the reference and {done} panel(s) to {out}", file=sys.stderr)
    return 0


def _is_user_error(error: BaseException) -> bool:
    """Errors about the user's input or environment (bad picture, model, size, memory)."""
    from .engine.generator import GenerationError

    return isinstance(error, (ValueError, GenerationError, FileNotFoundError, PermissionError))


def _add_invert_parser(subparsers) -> None:
    p = subparsers.add_parser("invert", help="DDIM-invert a reference picture and save its trajectory",
                              description="Compute and save the DDIM trajectory of a picture (spec section 7), "
                                          "e.g. to prepare references for batch work.")
    p.add_argument("picture")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--caption", default="")
    p.add_argument("--steps", type=_positive_int, default=50)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.set_defaults(func=cmd_invert)


def cmd_invert(args) -> int:
    from .engine.models import ModelSourceError, classify_source

    out = Path(args.out).expanduser()
    if out.suffix != ".safetensors":
        raise UsageError(f"{out}: the trajectory is saved as .safetensors")
    try:
        check_size(args.width, args.height)
        check_steps(args.steps)
        check_number(args.guidance, "guidance", 0.0, MAX_GUIDANCE)
        check_prompt(args.caption, "caption")
        classify_source(args.model)
    except (ValueError, ModelSourceError) as error:
        raise UsageError(str(error)) from None
    _check_output_file(out)
    from tqdm import tqdm

    from .engine.generator import make_scheduler
    from .engine.images import fit_picture, load_picture, picture_hash
    from .engine.inversion import TrajectoryKey, encode_picture, invert, save_trajectory
    from .engine.models import load_pipeline, model_identity

    try:
        picture = fit_picture(load_picture(args.picture), args.width, args.height)
        pipe = load_pipeline(args.model, args.device, args.dtype)
    except ValueError as error:
        raise UsageError(str(error)) from None
    scheduler = make_scheduler(pipe.scheduler.config, args.scheduler)
    scheduler.set_timesteps(args.steps)
    bar = tqdm(total=args.steps, desc="inverting", unit="step", file=sys.stderr)
    trajectory = invert(pipe, encode_picture(pipe, picture), args.caption, args.steps, args.guidance,
                        args.width, args.height, scheduler=args.scheduler,
                        timesteps=[int(t) for t in scheduler.timesteps],
                        on_step=lambda done, total: bar.update(done - bar.n))
    bar.close()
    key = TrajectoryKey(picture_hash(picture), args.caption, model_identity(args.model), args.width, args.height,
                        args.scheduler, args.steps, float(args.guidance))
    save_trajectory(out, trajectory, key)
    print(f"saved the trajectory ({args.steps + 1} latents) to {out}")
    return 0


def _add_preprocess_parser(subparsers) -> None:
    p = subparsers.add_parser("preprocess", help="make the canny or depth control map of a picture")
    p.add_argument("picture")
    p.add_argument("--mode", choices=("canny", "depth", "map"), required=True)
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--canny-low", type=int, default=100)
    p.add_argument("--canny-high", type=int, default=200)
    p.add_argument("--depth-model", default=None, metavar="SOURCE",
                   help="hub id or folder of a DPT depth model, or 'tiny' (default Intel/dpt-hybrid-midas)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=cmd_preprocess)


def cmd_preprocess(args) -> int:
    out = Path(args.out).expanduser()
    from .engine.control import ControlSettings, preprocess

    try:
        extra = {"depth_model": args.depth_model} if args.depth_model else {}
        settings = ControlSettings(width=args.width, height=args.height, canny_low=args.canny_low,
                                   canny_high=args.canny_high, device=args.device, **extra)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _check_output_file(out)
    try:
        control_map = preprocess(args.picture, args.mode, settings)
        control_map.save(out)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"{out}: cannot write ({error.strerror or error})") from None
    print(f"saved the {args.mode} map to {out}")
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
    parser = OneLineParser(
        prog="stylealigned", description="Generate and measure sets of pictures that share one style (StyleAligned on SDXL).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_generate_parser(subparsers)
    from .engine.evaluation import add_evaluate_parser

    add_evaluate_parser(subparsers)
    _add_invert_parser(subparsers)
    _add_preprocess_parser(subparsers)
    _add_models_parser(subparsers)
    return parser


def _print_paths_as_given() -> None:
    """Paths the OS gave as bytes that are not UTF-8 arrive as surrogate escapes: print them
    back as the same bytes (on a UTF-8 terminal), never fail on them."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape" if encoding == "utf8" else "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _print_paths_as_given()
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
