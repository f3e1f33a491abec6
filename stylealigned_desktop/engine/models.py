"""Model sources: a hub id, a local diffusers folder, a single .safetensors file, or a built-in
tiny model (``tiny``, ``tiny-sd15``, ``tiny-sd2``, ``tiny-sd2v``).

Also device and dtype selection. Pickle checkpoints (.ckpt, .pt, .pth, .bin, .pkl) can run code
when loaded and are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from .infotext import file_hash
from .tiny import TINY_MODELS

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TINY = "tiny"


def is_tiny(source: str | None) -> bool:
    """Whether a model source names one of the built-in tiny models."""
    return (source or "").strip() in TINY_MODELS


class ModelSourceError(ValueError):
    """A model source that cannot be used, with a message for the user."""


def classify_source(source: str) -> str:
    """``tiny``, ``folder``, ``single_file`` or ``hub``; raises ModelSourceError otherwise."""
    if not source or not source.strip():
        raise ModelSourceError("no model given: use a hub id, a local diffusers folder, a .safetensors file or 'tiny'")
    source = source.strip()
    if source in TINY_MODELS:
        return "tiny"
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelSourceError(
            f"{source}: pickle checkpoints ({', '.join(PICKLE_SUFFIXES)}) can run code when loaded and are "
            "refused; use a .safetensors file or a diffusers folder"
        )
    if path.is_symlink() and not path.exists():
        raise ModelSourceError(f"{source}: a link that leads nowhere (its target is missing, or links loop)")
    if path.exists() and not path.is_dir() and not path.is_file():
        raise ModelSourceError(f"{source}: not a regular file or folder (a pipe, socket or device); "
                               "give a .safetensors file or a diffusers folder")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelSourceError(f"{source}: not a diffusers model folder (it has no model_index.json)")
        return "folder"
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelSourceError(f"{source}: not a model file (expected a .safetensors checkpoint)")
        return "single_file"
    if HUB_ID.match(source) and path.suffix.lower() != ".safetensors":
        return "hub"
    if path.suffix.lower() == ".safetensors" or source.startswith((".", "/", "~")) or os.sep in source:
        raise ModelSourceError(f"{source}: no such file or folder")
    raise ModelSourceError(
        f"{source}: unknown model (not a local folder or file, and not a hub id like 'stabilityai/stable-diffusion-xl-base-1.0')"
    )


def looks_like_path(source: str) -> bool:
    """Whether a model source is written as a path (rather than an ``owner/name`` hub id)."""
    return (
        source.startswith((".", "/", "~", "\\"))
        or (len(source) > 1 and source[1] == ":")  # a Windows drive
        or source.count("/") > 1
        or "\\" in source
    )


def hub_or_folder(source: str, what: str, error: type[Exception] = ModelSourceError) -> str:
    """A local model folder's resolved path, or the hub id as given; ``error`` for neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise error(f"{what} {source!r} is a file; give a model folder (with config.json) or a hub id")
    if looks_like_path(source):
        raise error(f"{what} folder not found: {source}")
    if not HUB_ID.match(source):
        raise error(f"{what} {source!r} is neither an existing folder nor a Hugging Face hub id "
                    "(hub ids look like 'owner/name')")
    return source


def no_gpu_reason(device: str = "auto") -> str | None:
    """memory.NO_GPU_REASON when ``device`` runs on this computer's processor (what Auto picks there
    and why, for the hint beside the memory setting); None when it is a GPU."""
    from .memory import NO_GPU_REASON, device_total_gb

    return NO_GPU_REASON if device_total_gb(resolve_device(device)) is None else None


def resolve_device(device: str = "auto"):
    """``auto``: CUDA, then Apple MPS, then the CPU; ``cuda``/``cuda:N``/``mps`` checked to exist."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSourceError(f"device {device!r} was asked for, but no CUDA GPU is available")
    if device.startswith("cuda:") and device[5:].isdigit() and int(device[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ModelSourceError(f"device {device!r} was asked for, but this computer has {count} CUDA "
                               f"GPU(s): cuda:0 to cuda:{count - 1}")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelSourceError("device 'mps' was asked for, but Apple MPS is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ModelSourceError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}") from None


def resolve_dtype(dtype: str, device):
    """``auto``: float16 on CUDA and MPS, float32 on CPU."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]


def dtype_kwargs(dtype) -> dict:
    """The dtype argument of diffusers' loaders: ``dtype`` since it replaced ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _hub_error(source: str, error: Exception) -> ModelSourceError:
    from .hub import download_command, has_only_pickle_weights, pickle_note

    if has_only_pickle_weights(source):
        return ModelSourceError(pickle_note(source).strip())
    return ModelSourceError(
        f"{source}: could not load from the Hugging Face hub or its local cache ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else ''}). Download it once while online "
        f"(`{download_command(source)}`, or the app's model dialog), or point to a local diffusers folder"
    )


def check_vae_source(source: str) -> None:
    """What can be said of a VAE source without loading it (the command line, a dropped
    picture): a pickle is refused, a file must be ``.safetensors``, a folder a diffusers VAE
    folder (with config.json). ModelSourceError naming it."""
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelSourceError(f"VAE {source}: pickle files can run code when loaded and are refused; "
                               "use a .safetensors file or a diffusers folder")
    if path.is_file() and path.suffix.lower() != ".safetensors" or path.exists() and not path.is_file() \
            and not path.is_dir():
        raise ModelSourceError(f"VAE {source}: expected a .safetensors file or a diffusers folder")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelSourceError(f"VAE {source}: not a diffusers VAE folder (it has no config.json)")


def load_vae(source: str, dtype):
    """An SDXL VAE from a hub id, a local diffusers folder or a single ``.safetensors`` file."""
    from diffusers import AutoencoderKL

    path = Path(source).expanduser()
    check_vae_source(source)
    try:
        if path.is_file():
            vae = AutoencoderKL.from_single_file(str(path), **dtype_kwargs(dtype))
        else:
            location = hub_or_folder(source, "VAE")
            local = Path(location).is_dir()
            vae = AutoencoderKL.from_pretrained(location, use_safetensors=True, local_files_only=local,
                                                **dtype_kwargs(dtype))
    except ModelSourceError:
        raise
    except Exception as error:
        if HUB_ID.match(source) and not Path(source).expanduser().exists():
            raise _hub_error(source, error) from error
        raise ModelSourceError(f"VAE {source}: could not load it ({type(error).__name__}: {error})") from error
    return vae.eval().requires_grad_(False)


def check_vae_base(source: str, vae, pipe) -> None:
    """Refuse a VAE made for another base than the pipeline's, before any step: its latent
    scaling factor (SDXL's 0.13025, SD 1.x / 2.x's 0.18215; their architectures are the same)
    says which base it was trained with. A single file carries no config (diffusers fills in one),
    so only a folder's or hub VAE's own config is compared."""
    from .bases import BASES, base_of

    if Path(source).expanduser().is_file():
        return
    base, factor = base_of(pipe), float(vae.config.scaling_factor)
    if abs(factor - base.vae_scaling_factor) < 1e-6:
        return
    made_for = [b.name for b in BASES if abs(factor - b.vae_scaling_factor) < 1e-6]
    if made_for:
        raise ModelSourceError(f"VAE {Path(source).name or source} is made for {' or '.join(made_for)} (latent scale "
                               f"{factor:g}); this model is {base.name} ({base.vae_scaling_factor:g}). Use a VAE made "
                               f"for {base.name}, or the model's own")


def freeze(pipe) -> None:
    """Inference only: no weight requires gradients (also keeps matmul paths the same before and
    after LoRAs come and go: diffusers freezes the base weights when it loads a LoRA)."""
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval().requires_grad_(False)


def load_pipeline(source: str, device: str = "auto", dtype: str = "auto",
                  progress: Callable[[float, str], None] | None = None, *,
                  vae: str | None = None, loras=(), memory: str = "fast"):
    """Load a pipeline (SDXL, SD 1.x or SD 2.x, told from the model) from any model source, on
    the resolved device and dtype.

    ``vae`` replaces the model's VAE, ``loras`` (``request.Lora``) are loaded as adapters, and
    ``memory`` (fast, balanced, low) places the models (``engine/memory.py``).
    """
    from .lora import apply_loras
    from .memory import place_pipeline, set_vae_tiling

    report = progress or (lambda fraction, message: None)
    kind = classify_source(source)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    pipe = _base_pipeline(source, kind, torch_dtype)
    if vae is not None:
        report(0.7, f"loading the VAE {vae}")
        replacement = load_vae(vae, torch_dtype)
        check_vae_base(vae, replacement, pipe)
        pipe.register_modules(vae=replacement)
    freeze(pipe)
    if loras:
        report(0.75, "loading LoRAs")
        apply_loras(pipe, tuple(loras))
    report(0.8, f"placing the model on {torch_device.type} ({memory} memory mode)")
    place_pipeline(pipe, memory, torch_device)
    set_vae_tiling(pipe.vae, memory == "low")
    pipe.set_progress_bar_config(disable=True)
    report(1.0, "model ready")
    return pipe


def _unet_config_of(source: str, kind: str) -> dict | None:
    """The UNet config of a tiny model, a diffusers folder or a cached (or, online, downloaded)
    hub model, read without loading any weight; None when it cannot be read."""
    import json

    if kind == "tiny":
        from .tiny import tiny_unet_config

        return tiny_unet_config(source.strip())
    if kind == "folder":
        path = Path(source).expanduser() / "unet" / "config.json"
    elif kind == "hub":
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "config.json", subfolder="unet"))
        except Exception:  # not cached and offline, no such repository, no network
            return None
    else:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _checkpoint_keys(path: str) -> list[str]:
    """The tensor names of a single ``.safetensors`` checkpoint (its header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(Path(path).expanduser()), framework="numpy") as handle:
            return list(handle.keys())
    except Exception:  # safetensors raises its own error types for damaged files
        return []


def base_of_source(source: str):
    """The base (``bases.Base``) of a model source, told from the model without loading its
    weights: a UNet config (a tiny model, a folder, a hub model's) gives its family and text
    width; a single file's tensor names give its family. None when it cannot be told now (a hub
    model not downloaded while offline, a source that is no model); the engine tells it again
    once the model is loaded."""
    import dataclasses

    from .bases import family_of_checkpoint, family_of_unet, first_value

    try:
        kind = classify_source(source)
    except ModelSourceError:
        return None
    if kind == "single_file":
        return family_of_checkpoint(_checkpoint_keys(source))
    config = _unet_config_of(source, kind)
    if config is None:
        return None
    # every base's VAE scales by 8 (the engine reads pipe.vae_scale_factor once loaded)
    return dataclasses.replace(family_of_unet(config), text_width=int(first_value(config["cross_attention_dim"])),
                               native_size=int(first_value(config.get("sample_size", 64))) * 8)


def native_base(source: str | None):
    """:func:`base_of_source`, with its native size, or SDXL when it cannot be told before
    loading (or no model is given): what the size menus follow."""
    from .bases import SDXL

    base = base_of_source(source) if source else None
    return base if base is not None else SDXL


def native_side(source: str | None) -> int:
    """The side, in pixels, a model was trained at (:func:`native_base`'s native size: SDXL
    1024, SD 1.5 and SD 2 base 512, SD 2.1-768 768, the tiny models 128), told from the model
    without loading it; SDXL's 1024 when it cannot be told before loading (or no model is given)."""
    return native_base(source).native_size


def known_base(source: str):
    """:func:`base_of_source`, or ModelSourceError saying why it cannot be told (a local model
    is refused so before anything loads)."""
    base = base_of_source(source)
    if base is None:
        why = {"folder": "its unet/config.json is missing or not valid JSON",
               "single_file": "it is no safetensors checkpoint of SDXL, SD 1.x or SD 2.x (its header "
                              "cannot be read, or its tensor names are none of theirs)"}
        raise ModelSourceError(f"{source}: cannot tell which base model this is (SDXL, SD 1.x or SD 2.x): "
                               + why.get(classify_source(source), "its UNet config cannot be read"))
    return base


def pipeline_class(source: str):
    """The diffusers pipeline class of a model source, by its base (told from the model):
    ``StableDiffusionXLPipeline`` for SDXL, ``StableDiffusionPipeline`` for SD 1.x / 2.x."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if known_base(source).added_conditioning else StableDiffusionPipeline


def _base_pipeline(source: str, kind: str, torch_dtype):
    """The pipeline of a model source of ``kind`` (see :func:`classify_source`) in
    ``torch_dtype``, as the source has it (its own VAE, no LoRAs, not placed yet); its class
    follows its base. Raises :class:`ModelSourceError` saying why a source cannot be loaded."""
    import torch

    if kind == "tiny":
        from .tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(source.strip())
        if torch_dtype != torch.float32:
            pipe.to(dtype=torch_dtype)
        return pipe
    try:
        if kind == "hub" and base_of_source(source) is None:
            raise OSError("its configuration is not in the local cache")
        cls = pipeline_class(source)
        if kind == "single_file":
            return cls.from_single_file(source, **dtype_kwargs(torch_dtype), **_no_safety_checker(cls))
        return _from_pretrained(cls, source, kind, torch_dtype)
    except ModelSourceError:
        raise
    except Exception as error:
        if kind == "hub":
            raise _hub_error(source, error) from error
        from .hub import pickle_note

        raise ModelSourceError(f"{source}: could not load this model ({type(error).__name__}: "
                               f"{error}).{pickle_note(source)}") from error


def _no_safety_checker(cls) -> dict:
    """SD 1.x / 2.x repositories may name a safety checker: the engine decodes its own pictures
    and never calls it, so it is not loaded."""
    from diffusers import StableDiffusionPipeline

    return {"safety_checker": None, "requires_safety_checker": False} if cls is StableDiffusionPipeline else {}


def _from_pretrained(cls, source: str, kind: str, torch_dtype):
    """A diffusers folder or hub model, safetensors weights only; in float16 a hub model's
    ``fp16`` variant files when it has them, else its full-precision files cast."""
    import torch

    kwargs = dict(dtype_kwargs(torch_dtype), **_no_safety_checker(cls))
    kwargs["use_safetensors"] = True  # never unpickle .bin weights
    if kind == "folder":
        kwargs["local_files_only"] = True
    if torch_dtype == torch.float16 and kind == "hub":
        kwargs["variant"] = "fp16"
    try:
        return cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        if "variant" not in kwargs:
            raise
        kwargs.pop("variant")  # the repository has no fp16 variant files
        try:
            return cls.from_pretrained(source, **kwargs)
        except Exception:
            raise error from None


def model_identity(source: str, vae: str | None = None, loras=()) -> str:
    """A string that changes when the model's weights change (for caches): the base model, and
    the VAE and LoRAs (with their weights) when a run uses them."""
    identity = _base_identity(source)
    if vae is not None:
        identity += f"|vae:{vae_identity(vae)}"
    if loras:
        from .lora import lora_identity

        identity += "|loras:" + ",".join(lora_identity(lora) for lora in loras)
    return identity


def vae_identity(source: str) -> str:
    """A string that changes when a VAE's weights change: a file's or a folder's content (its
    weights and config, each by SHA-256, as LoRAs are identified), so a VAE retrained into the
    same file is another VAE and a copy elsewhere the same one; a hub id as it is."""
    path = Path(source).expanduser()
    if not path.exists():
        return f"hub:{source}"
    if path.is_file():
        return f"sha256:{file_hash(path) or 'unreadable'}"
    files = sorted(p for p in path.iterdir() if p.suffix == ".safetensors" or p.name == "config.json")
    return "folder:" + ",".join(f"{p.name}={file_hash(p) or 'unreadable'}" for p in files)


def _base_identity(source: str) -> str:
    """The base model's identity. A hub model is named with the commit of its cached snapshot,
    so a changed repository is a new identity."""
    kind = classify_source(source)
    if kind == "tiny":
        from .tiny import TINY_SEED

        name = source.strip()
        return f"{name}-v1-seed{TINY_SEED}"
    if kind == "hub":
        from .hub import snapshot_revision

        revision = snapshot_revision(source)
        return f"hub:{source}@{revision}" if revision else f"hub:{source}"
    path = Path(source).expanduser().resolve()
    if kind == "single_file":
        stat = path.stat()
        return f"file:{path}:{stat.st_size}:{int(stat.st_mtime)}"
    weights = sorted((path / "unet").glob("*.safetensors")) or sorted((path / "unet").glob("*"))
    stamp = ":".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights[:4])
    return f"folder:{path}:{stamp}"
