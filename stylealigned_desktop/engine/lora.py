"""LoRAs: checked against the model's base before any step, loaded with diffusers, weighted.

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

from .bases import BASE_BY_TEXT_WIDTH, Base, base_of
from .infotext import file_hash
from .request import Lora

log = logging.getLogger(__name__)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
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


def _is_second_adapter_notice(warning: warnings.WarningMessage) -> bool:
    # PEFT warns at every LoRA loaded beside another that the model now has several adapters
    # ("make sure to know what you are doing"): mixing LoRAs is what the artist asked for.
    return str(warning.message).startswith("Already found a `peft_config` attribute")


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
                if _is_second_adapter_notice(warning):
                    continue
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
    """The tensor shapes of a ``.safetensors`` file, read from its header (never unpickled);
    LoraError, naming the file as ``name`` (default: its file name), if it cannot be read."""
    from safetensors import safe_open

    name = name or path.name
    try:
        with safe_open(str(path), framework="numpy") as handle:  # the header only; no torch needed
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.info("%s: safetensors could not read the header: %s", path, reason)
        raise LoraError(f"{name} is not a LoRA file: it cannot be read as .safetensors "
                        "(it may be damaged, incomplete, or another kind of file)") from None
    if not shapes:
        raise LoraError(f"{name} holds no weights: it is not a LoRA")
    return shapes


# What a .safetensors file is when it is not a LoRA of the model's base, told by its tensor names.
_LORA_WEIGHT = re.compile(r"lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up|lora_linear_layer")
_LYCORIS_WEIGHT = re.compile(r"hada_w\d|lokr_w\d")
_TRANSFORMER_LORA = ("transformer.", "lora_transformer_", "lora_unet_double_blocks", "lora_unet_single_blocks",
                     "diffusion_model.double_blocks", "diffusion_model.single_blocks", "base_model.model.")
_NOT_LORAS = (
    (re.compile(r"^(model\.diffusion_model|conditioner\.embedders|first_stage_model|cond_stage_model)\."),
     "a whole model (a checkpoint)"),
    (re.compile(r"^(encoder|decoder|quant_conv|post_quant_conv)\."), "a VAE: choose it as the VAE instead"),
    (re.compile(r"^(clip_l|clip_g|emb_params|string_to_param)"), "a textual-inversion embedding"),
    (re.compile(r"^(down_blocks|up_blocks|mid_block|conv_in)\."), "a whole UNet"),
)


def _text_width_of(shapes: dict[str, list[int]]) -> int | None:
    """The text-embedding width the LoRA was trained for (None when it holds no cross-attention key)."""
    widths = sorted({shape[1] for key, shape in shapes.items()
                     if _CROSS_ATTENTION_DOWN.search(key) and len(shape) >= 2})
    return widths[0] if widths else None


def _refuse_another_kind_of_file(name: str, shapes: dict[str, list[int]], base: Base | None) -> None:
    keys = list(shapes)
    if any(_LYCORIS_WEIGHT.search(key) for key in keys):
        raise LoraError(f"{name} is a LyCORIS file (LoHa or LoKr), not a LoRA: only LoRAs can be loaded")
    if not any(_LORA_WEIGHT.search(key) for key in keys):
        kind = next((kind for pattern, kind in _NOT_LORAS if any(pattern.search(key) for key in keys)), None)
        raise LoraError(f"{name} is not a LoRA: it is {kind}" if kind
                        else f"{name} is not a LoRA: none of its weights is a LoRA's")
    if any(key.startswith(_TRANSFORMER_LORA) for key in keys):
        ours = base.name if base is not None else "SDXL or SD 1.x / 2.x"
        raise LoraError(f"{name} is not a LoRA for {ours}: it was made for a transformer model (Flux or "
                        f"SD 3). Use a LoRA trained for {ours}")
    if base is None or any(_CROSS_ATTENTION_DOWN.search(key) for key in keys):
        return  # its text width tells its base (_refuse_another_base)
    # kohya names SDXL's two text encoders te1 and te2; a single "te" is SD 1.x or 2.x
    if base.added_conditioning and any(key.startswith("lora_te_") for key in keys):
        raise LoraError(f"{name} is a LoRA for SD 1.x or 2.x (one text encoder); this model is {base.name}. "
                        f"Use a LoRA trained for {base.name}")
    if not base.added_conditioning and any(key.startswith(("lora_te1_", "lora_te2_")) for key in keys):
        raise LoraError(f"{name} is a LoRA for SDXL (two text encoders); this model is {base.name}. "
                        f"Use a LoRA trained for {base.name}")


def _refuse_another_base(name: str, shapes: dict[str, list[int]], base: Base) -> None:
    """A LoRA trained for another text width than the base's (a tiny model's own width
    included: its LoRAs are the tiny ones)."""
    width = _text_width_of(shapes)
    if width is None or width == base.text_width:
        return
    made_for = BASE_BY_TEXT_WIDTH[width].name if width in BASE_BY_TEXT_WIDTH else None
    if made_for is None or made_for == base.name:
        made_for = f"a model whose text is {width} wide"
        ours = f"{base.name} (its text is {base.text_width} wide)"
    else:
        ours = base.name
    raise LoraError(f"{name} is a LoRA for {made_for}; this model is {ours}. Use a LoRA trained for {base.name}")


def check_lora_file(lora: Lora, base: Base | None = None) -> Path:
    """Refuse a LoRA file that is missing, a pickle, not ``.safetensors``, not a LoRA, or made
    for another base model, reading only its header (no model needed: the app checks a LoRA
    when it is added, the command line before loading anything). ``base``: the model's
    (:func:`engine.bases.base_of` of a loaded one, or ``models.base_of_source``); None when no
    model is at hand: then only what the file is is checked, and the engine checks the base
    once the model is loaded, before any step."""
    path = Path(lora.path).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise LoraError(f"{path.name}: pickle files can run code when loaded and are refused; "
                        "use the .safetensors version of this LoRA")
    if path.suffix.lower() != ".safetensors":
        raise LoraError(f"{path.name} is not a LoRA file: LoRAs are .safetensors files")
    if not path.is_file():
        raise LoraError(f"LoRA file not found: {lora.path}")
    shapes = read_lora_shapes(path)
    _refuse_another_kind_of_file(path.name, shapes, base)
    if base is not None:
        _refuse_another_base(path.name, shapes, base)
    return path


def check_lora(lora: Lora, pipe) -> None:
    """Refuse a LoRA that is missing, a pickle, not a LoRA, or made for another base model than
    the pipeline's (before any step)."""
    check_lora_file(lora, base_of(pipe))


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
                            f"(is it a LoRA for {base_of(pipe).name}?)")
    pipe.set_adapters(list(wanted), adapter_weights=list(wanted.values()))
