"""``stylealigned models``: model utilities (make the tiny model, check a model source)."""

from __future__ import annotations

from pathlib import Path

from .common import UsageError, check_writable


def add_models_parser(subparsers) -> None:
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
    from ..engine.tiny import save_tiny_pipeline

    target = Path(args.dir).expanduser()
    check_writable(target)
    save_tiny_pipeline(target)
    print(f"saved the tiny model to {target}")
    return 0


def cmd_models_check(args) -> int:
    from ..engine.models import ModelSourceError, classify_source, load_pipeline

    try:
        kind = classify_source(args.source)
        print(f"{args.source}: {kind.replace('_', ' ')}")
        if args.load:
            pipe = load_pipeline(args.source)
            print(f"loaded {type(pipe).__name__} on {pipe.unet.device} ({pipe.unet.dtype})")
    except ModelSourceError as error:
        raise UsageError(str(error)) from None
    return 0
