"""What the sub-commands share: the user-error type, argument types, the settings flags.

Bad input gets a one-line error and exit code 2, never a traceback: a command raises
:class:`UsageError` and :func:`stylealigned_desktop.cli.main` prints it.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import fields
from pathlib import Path

from ..engine.request import MEMORY_MODES, Lora, check_device
from ..engine.settings import CHARACTER_LAYERS, StyleAlignedSettings

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
    "character_dropout": "chance a panel skips each anchor token of its characters (0..1; lower: more alike, stiffer)",
    "character_layers": "where panels see their characters' anchors: up (up-block layers) or all",
    "character_shift": "log-weight added to the anchors' tokens",
    "anchors_per_character": "anchor pictures per character (1..8)",
}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def device(text: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps."""
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


DEVICE_HELP = "auto, cpu, cuda, cuda:N (the N-th GPU) or mps"


def int_list(text: str) -> list[int]:
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
        elif f.name == "character_layers":
            group.add_argument(flag, dest=f.name, choices=CHARACTER_LAYERS, default=None, help=SETTING_HELP[f.name])
        elif f.type in ("int", int):
            group.add_argument(flag, dest=f.name, type=int, default=None, metavar="N", help=SETTING_HELP[f.name])
        else:
            group.add_argument(flag, dest=f.name, type=float, default=None, metavar="X", help=SETTING_HELP[f.name])


NATIVE_SIZE_HELP = "default: the model's native size (SDXL 1024, SD 1.5 and SD 2 base 512, SD 2.1-768 768)"


def lora_argument(text: str) -> Lora:
    """``FILE[:WEIGHT]`` of ``--lora``; the file is checked (exists, ``.safetensors``, no pickle)
    and the weight (within ±10, ``limits.check_lora_weight``, as a dropped picture's) before
    any model loads, the base it was made for once the model is loaded."""
    from ..engine import limits
    from ..engine.lora import LoraError, check_lora_file

    try:
        lora = Lora.parse(text)
        limits.check_lora_weight(lora.weight)
        check_lora_file(lora)
    except (ValueError, LoraError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return lora


def add_model_extras_arguments(parser: argparse.ArgumentParser) -> None:
    """``--memory``, ``--lora`` and ``--vae``: where the models sit, and what is added to them."""
    group = parser.add_argument_group("memory mode, LoRAs and VAE")
    group.add_argument("--memory", choices=MEMORY_MODES, default="auto",
                       help="where the models sit: fast (all on the GPU), balanced (each model on the GPU only "
                            "while it runs), low (layer by layer, VAE in tiles), auto (the fastest that fits; "
                            "default). The pictures are the same in every mode")
    group.add_argument("--lora", action="append", default=[], type=lora_argument, metavar="FILE[:WEIGHT]",
                       help="an SDXL LoRA (.safetensors, kohya or diffusers format) and its weight (default 1, "
                            "0 off, negative inverts it); repeat for several")
    group.add_argument("--vae", metavar="SOURCE", default=None,
                       help="a VAE instead of the model's: hub id, folder or .safetensors file "
                            "(madebyollin/sdxl-vae-fp16-fix decodes in float16)")


def model_extras_from_args(args) -> dict:
    """The ``SetRequest`` fields of ``--memory``, ``--lora`` and ``--vae``."""
    return {"memory": args.memory, "loras": tuple(args.lora), "vae": args.vae}


def settings_from_args(args, reference_picture: bool) -> StyleAlignedSettings:
    overrides = {f.name: getattr(args, f.name) for f in fields(StyleAlignedSettings) if getattr(args, f.name) is not None}
    if reference_picture:
        return StyleAlignedSettings.for_reference_image(**overrides)
    return StyleAlignedSettings(**overrides)


def check_writable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to the output folder {folder}: {error.strerror or error}") from None


def check_output_file(out: Path) -> None:
    """An output file's folder is writable and the name is free for a file (before any work)."""
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give the name of a file to write")
    check_writable(out.parent)


def check_model_source(source: str) -> None:
    """A model source the engine cannot read is a usage error (no model is loaded here)."""
    from ..engine.models import ModelSourceError, classify_source, known_base

    try:
        if classify_source(source) in ("folder", "single_file"):  # a hub model's config may not be here yet
            known_base(source)
    except ModelSourceError as error:
        raise UsageError(str(error)) from None
