"""``stylealigned generate``: a style-aligned set from the command line into a run folder."""

from __future__ import annotations

import argparse
import re
import sys
import threading
from pathlib import Path

from ..engine.models import native_side
from ..engine.preview_choice import PREVIEW_LABELS
from ..engine.request import (
    DTYPES,
    PREVIEW_KINDS,
    SCHEDULERS,
    GeneratedReference,
    Panel,
    PanelControl,
    ReferencePicture,
    Sampling,
    SetRequest,
)
from ..prompts_file import PromptsFileError, parse_size, read_prompts_file
from .characters import add_character_arguments, characters_from_args
from .common import (
    DEFAULT_MODEL,
    DEVICE_HELP,
    NATIVE_SIZE_HELP,
    UsageError,
    add_model_extras_arguments,
    add_settings_arguments,
    check_model_source,
    check_writable,
    device,
    int_list,
    model_extras_from_args,
    positive_int,
    settings_from_args,
)
from .preview_files import PREVIEW_FOLDER, PreviewFiles

_WEIGHT = re.compile(r"\d+(\.\d*)?|\.\d+")


def split_weight(text: str, picture: bool) -> tuple[str, float]:
    """``TEXT[:WEIGHT]`` -> (TEXT, WEIGHT), weight 1 when none is given (spec section 11).

    The weight is what follows the last colon when it is a plain number (``2``, ``0.5``). A
    picture path that exists as given is never split (``C:\\moods\\a.png``, names with colons);
    in a prompt, a colon right after a digit is text (``16:9``, ``12:30``): write ``TEXT :2``.
    What follows the last colon that reads as a number but is no weight (``nan``, ``inf``,
    ``-1``, ``1e3``) is a :class:`UsageError` naming the rule, never silently part of the text.
    """
    head, colon, tail = text.rpartition(":")
    if not colon or not head or not _looks_like_number(tail):
        return text, 1.0
    if picture and Path(text).expanduser().is_file():
        return text, 1.0
    if not picture and head[-1].isdigit():
        return text, 1.0
    if not _WEIGHT.fullmatch(tail.strip()):
        raise UsageError(f"{text}: the weight after the last colon must be a plain number >= 0 "
                         f"(TEXT[:WEIGHT], WEIGHT >= 0, e.g. :0.5 or :2), got {tail.strip()!r}")
    return (head if picture else head.rstrip()), float(tail)


def _looks_like_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _AddReference(argparse.Action):
    """``--reference-prompt`` / ``--reference-image``: each adds a reference, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        references = list(getattr(namespace, self.dest) or [])
        references.append((self.const, values))
        setattr(namespace, self.dest, references)


def _size_list(text: str) -> list[tuple[int, int] | None]:
    try:
        return [None if part.strip().lower() in ("set", "-") else parse_size(part) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error} (use 'set' for the set's size)") from None


def add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate a style-aligned set",
        description="Generate a set of pictures sharing one style. The reference comes first; "
                    "panel i (1-based) uses seed N+i unless --panel-seeds says otherwise.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="hub id, local diffusers folder, single .safetensors file, or 'tiny' (default: %(default)s)")
    _add_style_arguments(p)
    _add_control_arguments(p)
    _add_panel_arguments(p)
    add_character_arguments(p)
    _add_run_arguments(p)
    p.set_defaults(func=cmd_generate)


def _add_style_arguments(p) -> None:
    """The style source: generated references and pictures, each with its weight."""
    style = p.add_argument_group(
        "style source: one or more references, blended by weight (repeat the flags; order kept)")
    style.add_argument("--reference-prompt", metavar="TEXT[:WEIGHT]", dest="references", action=_AddReference,
                       const="prompt", help="a generated reference (its prompt); :WEIGHT its share (default 1)")
    style.add_argument("--reference-image", metavar="PATH[:WEIGHT]", dest="references", action=_AddReference,
                       const="image", help="a picture whose style the set takes (DDIM-inverted; cached per "
                                           "picture and settings); :WEIGHT its share (default 1, 0: unused)")
    style.add_argument("--reference-caption", action="append", default=[], metavar="TEXT",
                       help="what the reference picture shows (may be empty); once for every picture, "
                            "or once per --reference-image in order")
    style.add_argument("--inversion-guidance", type=float, default=2.0, metavar="G", help="default %(default)s")
    style.add_argument("--inversion-offset", type=int, default=None, metavar="K",
                       help="start the reference K steps into its trajectory (default 5 per 50 steps)")


def _add_control_arguments(p) -> None:
    """ControlNet for every panel, and where the ControlNets and the depth estimator come from."""
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


def _add_panel_arguments(p) -> None:
    """The panels (prompts, seeds, sizes) and the sampling settings they share."""
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a panel prompt (repeat per panel)")
    p.add_argument("--prompts-file", metavar="FILE", help="one panel per line (blank and # lines ignored)")
    p.add_argument("--style", default="", metavar="TEXT", help='appended as ", TEXT" to the reference and every panel prompt')
    p.add_argument("--negative-prompt", default=None, metavar="TEXT")
    p.add_argument("--seed", type=int, default=0, help="reference seed N; panel i uses N+i (default 0)")
    p.add_argument("--panel-seeds", type=int_list, metavar="A,B,C", help="explicit seed per panel")
    p.add_argument("--panel-sizes", type=_size_list, metavar="WxH,set,WxH",
                   help="each panel's own size (multiples of 64; 'set' for --width x --height), e.g. "
                        "1344x768,set,832x1216 or a panorama 4096x1024; a prompts file's size= does the "
                        "same per line")
    p.add_argument("--window-stride", type=positive_int, default=8, metavar="N",
                   help="a panorama's MultiDiffusion windows start N latent pixels apart (default 8; "
                        "larger is faster, smaller blends better)")
    p.add_argument("--panorama-above", type=float, default=2.0, metavar="F",
                   help="a panel at least F times the model's native width or height is drawn as "
                        "MultiDiffusion windows of the native size (default 2)")
    p.add_argument("--steps", type=positive_int, default=50)
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance (default 5.0; 10.0 with --reference-image)")
    p.add_argument("--width", type=int, default=None, help=NATIVE_SIZE_HELP)
    p.add_argument("--height", type=int, default=None, help=NATIVE_SIZE_HELP)
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    add_settings_arguments(p)
    p.add_argument("--micro-batch", type=positive_int, default=None, metavar="N",
                   help="panels per UNet batch (default: all on CPU; on a GPU chosen by the memory model)")
    add_model_extras_arguments(p)


def _add_run_arguments(p) -> None:
    """Which panels to make, where and how: device, output folder, progress, a server."""
    p.add_argument("--only", type=int_list, metavar="3,7", help="re-roll only these panels (1-based) into --out")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--previews", choices=PREVIEW_KINDS, default="off",
                   help="live previews as Settings -> Previews makes them, each picture's newest written to "
                        "DIR/previews/ while the set runs (removed at the end): auto (the tiny autoencoder "
                        "where it is downloaded and a GPU runs the set, else the factors); "
                        + "; ".join(f"{kind}: {label}" for kind, label in PREVIEW_LABELS.items()
                                    if kind not in ("auto", "off"))
                        + "; off (the default: none decoded)")
    server = p.add_argument_group("server (make the pictures on another machine, docs/server.md)")
    server.add_argument("--server", metavar="URL", help="a StyleAligned server, e.g. http://127.0.0.1:8765")
    server.add_argument("--token-file", metavar="FILE",
                        help="the server's token (default: this computer's server token, in the user config folder)")


def _with_style(text: str, style: str) -> str:
    return f"{text}, {style}" if style else text


def build_generate_request(args):
    """The SetRequest a ``generate`` command line describes (no model is loaded here)."""
    check_model_source(args.model)
    lines = _prompts_file_lines(args)
    prompts = list(args.prompt) + [line.prompt for line in lines]
    _check_panels_and_sources(args, prompts)
    picture_mode = any(kind == "image" for kind, _ in args.references)
    sizes = _panel_sizes(args, lines, len(prompts))
    seeds = _panel_seeds(args, lines, len(prompts))
    only = _only_panels(args, len(prompts))
    try:
        controls = [_control_for(line, args) for line in [None] * len(args.prompt) + lines]
        settings = settings_from_args(args, reference_picture=picture_mode)
        characters = characters_from_args(args, settings.anchors_per_character)
        style = _references(args)
        sampling = Sampling(
            steps=args.steps,
            guidance=(10.0 if picture_mode else 5.0) if args.guidance is None else args.guidance,
            width=native_side(args.model) if args.width is None else args.width,
            height=native_side(args.model) if args.height is None else args.height,
            scheduler=args.scheduler,
            negative_prompt=args.negative_prompt,
            window_stride=args.window_stride,
            panorama_above=args.panorama_above,
        )
        return SetRequest(
            model=args.model,
            style=style,
            panels=tuple(Panel(_with_style(p, args.style), s, c, size)
                         for p, s, c, size in zip(prompts, seeds, controls, sizes)),
            sampling=sampling,
            settings=settings,
            micro_batch=args.micro_batch,
            device=args.device,
            dtype=args.dtype,
            only=only,
            controlnet_canny=args.controlnet_canny,
            controlnet_depth=args.controlnet_depth,
            depth_model=args.depth_model,
            previews=args.previews,
            characters=characters,
            **model_extras_from_args(args),
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _prompts_file_lines(args) -> list:
    """The panels of ``--prompts-file`` (none without one)."""
    if not args.prompts_file:
        return []
    try:
        return read_prompts_file(args.prompts_file)
    except PromptsFileError as error:
        raise UsageError(str(error)) from None


def _check_panels_and_sources(args, prompts: list[str]) -> None:
    """A set needs panels and a style source; a command-line control needs its picture."""
    if not prompts:
        raise UsageError("no panel prompts: give --prompt (repeatable) or --prompts-file")
    if not args.references:
        raise UsageError("no style source: give --reference-prompt or --reference-image (each may repeat)")
    if (args.control is None) != (args.control_image is None):
        raise UsageError("--control and --control-image go together")


def _panel_sizes(args, lines, count: int) -> list[tuple[int, int] | None]:
    """Each panel's own size (None: the set's): ``--panel-sizes``, else the prompts file's."""
    if args.panel_sizes is None:
        return [None] * len(args.prompt) + [line.size for line in lines]
    if len(args.panel_sizes) != count:
        raise UsageError(f"--panel-sizes has {len(args.panel_sizes)} sizes for {count} panels")
    return list(args.panel_sizes)


def _panel_seeds(args, lines, count: int) -> list[int]:
    """Each panel's seed: ``--panel-seeds``, else the prompts file's, else ``--seed`` + i."""
    if args.panel_seeds is not None:
        if len(args.panel_seeds) != count:
            raise UsageError(f"--panel-seeds has {len(args.panel_seeds)} seeds for {count} panels")
        return list(args.panel_seeds)
    seeds = [args.seed + i for i in range(1, count + 1)]
    file_seeds = [None] * len(args.prompt) + [line.seed for line in lines]
    return [fs if fs is not None else s for s, fs in zip(seeds, file_seeds)]


def _only_panels(args, count: int) -> tuple[int, ...] | None:
    """``--only``'s 1-based panel numbers as 0-based indices (None: every panel)."""
    if not args.only:
        return None
    bad = [i for i in args.only if not 1 <= i <= count]
    if bad:
        raise UsageError(f"--only: no panel {bad[0]} (the set has {count} panels, numbered from 1)")
    return tuple(i - 1 for i in args.only)


def _references(args) -> tuple:
    """The references of the command line, in order: generated ones seeded ``--seed``, pictures
    with their captions; each with its ``:WEIGHT``."""
    images = [value for kind, value in args.references if kind == "image"]
    captions = args.reference_caption or [""]
    if len(captions) not in (1, len(images)):
        raise UsageError(f"--reference-caption given {len(captions)} times for {len(images)} pictures: "
                         "give it once (for every picture) or once per picture")
    captions = captions * len(images) if len(captions) == 1 else captions
    references = []
    for kind, value in args.references:
        text, weight = split_weight(value, picture=kind == "image")
        if kind == "prompt":
            references.append(GeneratedReference(_with_style(text, args.style), args.seed, weight))
            continue
        path = Path(text).expanduser()
        if not path.is_file():
            raise UsageError(f"{text}: no such picture")
        references.append(ReferencePicture(str(path), captions.pop(0), args.inversion_guidance,
                                           args.inversion_offset, weight))
    return tuple(references)


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
        from ..engine import events as ev

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
    from ..engine.request_files import check_request_files

    request = build_generate_request(args)
    try:  # the files, as the numbers above: before torch is imported or a model is built
        check_request_files(request)
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = Path(args.out).expanduser()
    _check_run_folder(out, rerolling=request.only is not None)
    from ..engine.runfolder import write_run_folder

    progress = _TerminalProgress(args.quiet)
    if request.previews != "off":
        progress = PreviewFiles(out / PREVIEW_FOLDER, progress)
    if args.server:
        result = _generate_on_server(args, request, progress)
    else:
        from ..engine.generator import Engine

        try:
            result = Engine().generate(request, progress, threading.Event())
        except (RuntimeError, ValueError, OSError) as error:
            if not _is_user_error(error):
                raise
            raise UsageError(str(error)) from None
    write_run_folder(out, request, result, style_text=args.style)
    if isinstance(progress, PreviewFiles):
        progress.remove()
    _write_panel_notes(out, args)
    if not args.quiet:
        done, refs = len(result.panels), len(result.references)
        print(f"wrote {'the reference' if refs == 1 else f'{refs} references'} and {done} panel(s) to {out}",
              file=sys.stderr)
    return 0


def _generate_on_server(args, request, progress):
    """The set made by the server of ``--server`` (its client needs no Ray, no torch)."""
    from ..server.auth import default_token_path, read_token
    from ..server.client import ServerEngine, ServerError

    if args.token_file is None and not default_token_path().is_file():
        raise UsageError(f"no token for {args.server}: give --token-file (the server prints its token "
                         f"on its first start)")
    try:
        token = read_token(args.token_file or default_token_path())
    except ValueError as error:
        raise UsageError(f"--token-file: {error}") from None
    server = ServerEngine(args.server, token)
    try:
        return server.generate(request, progress, threading.Event())
    except ServerError as error:
        message = str(error)  # connection messages name the server already
        raise UsageError(message if server.url in message else f"server {server.url}: {message}") from None
    finally:
        server.close()


def _check_run_folder(out: Path, rerolling: bool) -> None:
    """``generate --out``: writable, and a run.json already there is one of ours (its files all
    inside the folder), read before any work; a re-roll needs one."""
    from ..engine.runfolder import RUN_FILE, read_run

    check_writable(out)
    if (out / RUN_FILE).exists() or (out / RUN_FILE).is_symlink():
        try:
            read_run(out)
        except ValueError as error:
            raise UsageError(f"{error}; choose another --out folder") from None
    elif rerolling:
        raise UsageError(f"--only re-rolls panels of an existing run, but {out} has no run.json")


def _is_user_error(error: BaseException) -> bool:
    """Errors about the user's input or environment (bad picture, model, size, memory)."""
    from ..engine.generator import GenerationError

    return isinstance(error, (ValueError, GenerationError, FileNotFoundError, PermissionError))


def _write_panel_notes(out: Path, args) -> None:
    """The prompts file's panel notes (dialogue=, duration= ...) beside run.json, for
    ``stylealigned export`` (none when it has none; a re-roll keeps the folder's)."""
    if args.only and not args.prompts_file:
        return
    from ..export.board import write_run_notes
    from ..session.notes import PanelNotes

    lines = read_prompts_file(args.prompts_file) if args.prompts_file else []
    write_run_notes(out, [PanelNotes()] * len(args.prompt) + [line.notes for line in lines])
