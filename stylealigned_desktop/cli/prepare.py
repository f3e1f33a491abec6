"""``stylealigned invert`` and ``stylealigned preprocess``: inputs prepared ahead of a run
(a reference picture's DDIM trajectory, a panel's control map)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..engine.limits import MAX_GUIDANCE, check_number, check_prompt, check_size, check_steps
from ..engine.models import native_side
from ..engine.request import DTYPES, SCHEDULERS
from .common import (
    DEFAULT_MODEL,
    DEVICE_HELP,
    NATIVE_SIZE_HELP,
    UsageError,
    add_model_extras_arguments,
    check_model_source,
    check_output_file,
    device,
    positive_int,
)


def add_invert_parser(subparsers) -> None:
    p = subparsers.add_parser("invert", help="DDIM-invert a reference picture and save its trajectory",
                              description="Compute and save the DDIM trajectory of a picture (spec section 7), "
                                          "e.g. to prepare references for batch work.")
    p.add_argument("picture")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--caption", default="")
    p.add_argument("--steps", type=positive_int, default=50)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--width", type=int, default=None, help=NATIVE_SIZE_HELP)
    p.add_argument("--height", type=int, default=None, help=NATIVE_SIZE_HELP)
    p.add_argument("--scheduler", choices=SCHEDULERS, default="ddim")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    add_model_extras_arguments(p)  # the picture is encoded with the run's VAE, inverted with its LoRAs
    p.set_defaults(func=cmd_invert)


def cmd_invert(args) -> int:
    out = Path(args.out).expanduser()
    if out.suffix != ".safetensors":
        raise UsageError(f"{out}: the trajectory is saved as .safetensors")
    native = native_side(args.model)  # only where a size is not given (0 is given, and refused)
    args.width = native if args.width is None else args.width
    args.height = native if args.height is None else args.height
    try:
        check_size(args.width, args.height)
        check_steps(args.steps)
        check_number(args.guidance, "guidance", 0.0, MAX_GUIDANCE)
        check_prompt(args.caption, "caption")
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_model_source(args.model)
    check_output_file(out)
    from tqdm import tqdm

    from ..engine.generator import make_scheduler
    from ..engine.images import fit_picture, load_picture, picture_hash
    from ..engine.inversion import TrajectoryKey, encode_picture, invert, save_trajectory
    from ..engine.memory import Workload, choose_mode, device_total_gb
    from ..engine.models import load_pipeline, model_identity, resolve_device

    memory = args.memory
    if memory == "auto":
        memory, _reason = choose_mode(device_total_gb(resolve_device(args.device)), Workload(args.width, args.height))
    loras = tuple(args.lora)
    try:
        picture = fit_picture(load_picture(args.picture), args.width, args.height)
        pipe = load_pipeline(args.model, args.device, args.dtype, vae=args.vae, loras=loras, memory=memory)
    except ValueError as error:
        raise UsageError(str(error)) from None
    scheduler = make_scheduler(pipe.scheduler.config, args.scheduler)
    scheduler.set_timesteps(args.steps)
    levels = tuple(int(t) for t in scheduler.timesteps)  # the inversion steps between them (spec 7.3)
    bar = tqdm(total=args.steps, desc="inverting", unit="step", file=sys.stderr)
    trajectory = invert(pipe, encode_picture(pipe, picture), args.caption, args.steps, args.guidance,
                        args.width, args.height, scheduler=args.scheduler, timesteps=levels,
                        on_step=lambda done, total: bar.update(done - bar.n))
    bar.close()
    key = TrajectoryKey(picture_hash(picture), args.caption, model_identity(args.model, args.vae, loras),
                        args.width, args.height, args.scheduler, args.steps, float(args.guidance), timesteps=levels)
    save_trajectory(out, trajectory, key)
    print(f"saved the trajectory ({args.steps + 1} latents) to {out}")
    return 0


def add_preprocess_parser(subparsers) -> None:
    p = subparsers.add_parser("preprocess", help="make the canny or depth control map of a picture")
    p.add_argument("picture")
    p.add_argument("--mode", choices=("canny", "depth", "map"), required=True)
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--canny-low", type=int, default=100)
    p.add_argument("--canny-high", type=int, default=200)
    p.add_argument("--depth-model", default=None, metavar="SOURCE",
                   help="hub id or folder of a transformers depth model (DPT, Depth Anything, ZoeDepth), "
                        "or 'tiny' (default Intel/dpt-hybrid-midas)")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_preprocess)


def cmd_preprocess(args) -> int:
    out = Path(args.out).expanduser()
    from ..engine.control import ControlSettings, preprocess

    try:
        extra = {"depth_model": args.depth_model} if args.depth_model else {}
        settings = ControlSettings(width=args.width, height=args.height, canny_low=args.canny_low,
                                   canny_high=args.canny_high, device=args.device, **extra)
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_output_file(out)
    try:
        control_map = preprocess(args.picture, args.mode, settings)
        control_map.save(out)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"{out}: cannot write ({error.strerror or error})") from None
    print(f"saved the {args.mode} map to {out}")
    return 0
