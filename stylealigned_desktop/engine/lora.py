"""SDXL LoRAs: checked against the model before any step, loaded with diffusers, weighted.

Any number of ``.safetensors`` LoRAs (kohya or diffusers format) are loaded with the
pipeline's ``load_lora_weights`` (PEFT adapters) and mixed with ``set_adapters``. They change
the UNet's (and text encoders') linear layers only; the shared self-attention processors wrap
the attention call and keep working. Changing weights reuses the loaded adapters; removing
every LoRA unloads them, which restores the model exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import warnings
from pathlib import Path

from .infotext import file_hash
from .request import Lora

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
BASE_BY_TEXT_WIDTH = {768: "SD 1.5", 1024: "SD 2.x", 2048: "SDXL"}
# Keys of the cross-attention key/value projections' down (A) matrices: their input width is
# the text-embedding width the LoRA was trained for (kohya: lora_unet_..._attn2_to_k.lora_down).
_CROSS_ATTENTION_DOWN = re.compile(r"attn2[._](to_k|to_v)[._](lora_down|lora_A|lora\.down|lora[._]down)")


class LoraError(ValueError):
    """A LoRA that cannot be used, with a message for the user."""


_DIFFUSERS_LORA_LOGGERS = ("diffusers.loaders.lora_base", "diffusers.loaders.peft", "diffusers.loaders.lora_pipeline")


def _drop_no_text_encoder_keys(record: logging.LogRecord) -> bool:
    # Most SDXL style LoRAs train the UNet only; diffusers warns about each text encoder they
    # leave alone, twice per LoRA, which is noise to an artist.
    return not record.getMessage().startswith("No LoRA keys associated to")


@contextlib.contextmanager
def _quiet_unet_only_notices():
    loggers = [logging.getLogger(name) for name in _DIFFUSERS_LORA_LOGGERS]
    for logger in loggers:
        logger.addFilter(_drop_no_text_encoder_keys)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_drop_no_text_encoder_keys)


_LIBRARY_LOGGERS = ("diffusers", "peft")


@contextlib.contextmanager
def _held_loader_messages():
    """Hold what diffusers and PEFT log or warn while a LoRA loads. A load that fails drops
    them: the LoraError's one line says what happened (diffusers logs the whole state-dict
    error, PEFT warns about its keys, before the exception that we turn into our line). A load
    that succeeds passes them on as they would have gone."""
    held: list[logging.LogRecord] = []

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    hold = _Hold()
    saved = []
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [hold], False
    failed = True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        failed = False
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        if not failed:
            for record in held:
                logger, handlers, propagate = next(s for s in saved if record.name.split(".")[0] == s[0].name)
                for handler in handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)
                if propagate and logger.parent is not None:
                    logger.parent.callHandlers(record)
            for warning in caught:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def lora_identity(lora: Lora) -> str:
    """A string that changes when the file's content or the weight changes (for caches and
    records); the same LoRA in another folder (a server's copy) has the same identity."""
    path = Path(lora.path).expanduser()
    content = file_hash(path) or f"{path.resolve()}:missing"  # the SHA-256 of the whole file
    return f"{content}@{lora.weight:g}"


def adapter_name(lora: Lora) -> str:
    """A PEFT adapter name per file (not per weight: a new weight reuses the loaded adapter)."""
    path = Path(lora.path).expanduser().resolve()
    stat = path.stat()
    digest = hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)[:32]
    return f"lora_{stem}_{digest}"


def read_lora_shapes(path: Path, name: str | None = None) -> dict[str, list[int]]:
    """The tensor shapes of a ``.safetensors`` LoRA, read from its header (never unpickled);
    LoraError, naming the file as ``name`` (default: its file name), if it is not one."""
    from safetensors import safe_open

    name = name or path.name
    try:
        with safe_open(str(path), framework="numpy") as handle:  # the header only; no torch needed
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LoraError(f"{name}: not a readable .safetensors LoRA ({reason})") from error
    if not shapes:
        raise LoraError(f"{name}: the file holds no weights")
    return shapes


def check_lora_file(lora: Lora) -> Path:
    """Refuse a LoRA file that is missing, a pickle or not ``.safetensors`` (no model needed:
    the command line checks this before loading anything)."""
    path = Path(lora.path).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise LoraError(f"{path.name}: pickle files can run code when loaded and are refused; "
                        "use the .safetensors version of this LoRA")
    if not path.is_file():
        raise LoraError(f"LoRA file not found: {lora.path}")
    if path.suffix.lower() != ".safetensors":
        raise LoraError(f"{path.name}: not a LoRA file (expected .safetensors)")
    return path


def _text_widths(shapes: dict[str, list[int]]) -> set[int]:
    """The text-embedding widths a LoRA's cross-attention layers were trained for."""
    return {shape[1] for key, shape in shapes.items() if _CROSS_ATTENTION_DOWN.search(key) and len(shape) >= 2}


def check_lora_header(lora: Lora) -> Path:
    """:func:`check_lora_file`, then its header (no model needed): a readable ``.safetensors``
    LoRA that was not made for SD 1.5 or 2.x (the app's models are SDXL)."""
    path = check_lora_file(lora)
    other = sorted(w for w in _text_widths(read_lora_shapes(path))
                   if BASE_BY_TEXT_WIDTH.get(w, "SDXL") != "SDXL")
    if other:
        raise LoraError(f"{path.name} is a LoRA for {BASE_BY_TEXT_WIDTH[other[0]]}; the app's models are "
                        "SDXL. Use a LoRA trained for SDXL")
    return path


def check_lora(lora: Lora, pipe) -> None:
    """Refuse a LoRA that is missing, a pickle, or made for another base model (before any step)."""
    path = check_lora_file(lora)
    shapes = read_lora_shapes(path)
    widths = _text_widths(shapes)
    expected = pipe.unet.config.cross_attention_dim
    expected = expected[0] if isinstance(expected, (list, tuple)) else expected
    wrong = sorted(w for w in widths if w != expected)
    if wrong:
        made_for = BASE_BY_TEXT_WIDTH.get(wrong[0], f"a model with text width {wrong[0]}")
        ours = BASE_BY_TEXT_WIDTH.get(expected, f"a model with text width {expected}")
        raise LoraError(f"{path.name} is a LoRA for {made_for}; this model is {ours}. "
                        f"Use a LoRA trained for {ours}")


def loaded_adapters(pipe) -> set[str]:
    """Names of the LoRA adapters loaded in any component of the pipeline."""
    if not hasattr(pipe, "get_list_adapters"):
        return set()
    return {name for names in pipe.get_list_adapters().values() for name in names}


def apply_loras(pipe, loras: tuple[Lora, ...]) -> None:
    """Make the pipeline carry exactly these LoRAs with these weights.

    Loaded adapters that are still wanted are reused (a weight change costs nothing); with no
    LoRA wanted every adapter is unloaded, which restores the original layers. Place the
    pipeline (memory mode) after this: loading needs the weights in memory, not offloaded.
    """
    for lora in loras:
        check_lora(lora, pipe)
    wanted: dict[str, float] = {}
    for lora in loras:
        name = adapter_name(lora)
        wanted[name] = wanted.get(name, 0.0) + lora.weight  # the same file twice adds up
    loaded = loaded_adapters(pipe)
    if not wanted:
        if loaded:
            pipe.unload_lora_weights()
        return
    stale = sorted(loaded - set(wanted))
    if stale:
        pipe.delete_adapters(stale)
    for lora in loras:
        name = adapter_name(lora)
        if name in loaded_adapters(pipe):
            continue
        try:
            with _quiet_unet_only_notices(), _held_loader_messages():
                pipe.load_lora_weights(str(Path(lora.path).expanduser()), adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as error:
            raise LoraError(f"{Path(lora.path).name}: could not load this LoRA into the model "
                            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from error
        if name not in loaded_adapters(pipe):
            raise LoraError(f"{Path(lora.path).name}: no layer of this model matches the LoRA "
                            "(is it an SDXL LoRA?)")
    pipe.set_adapters(list(wanted), adapter_weights=list(wanted.values()))
