"""A picture's parameters in AUTOMATIC1111's text form ("infotext"), what Civitai, Forge, image
browsers and other SD tools read from a PNG's ``parameters`` chunk.

The form, as A1111 writes it (``modules/processing.py`` ``create_infotext``, the built-in Lora
extension)::

    prompt <lora:ink-wash:0.7> <lora:paper:-0.3>
    Negative prompt: ...
    Steps: 50, Sampler: DDIM, CFG scale: 5, Seed: 2, Size: 1024x1024, Model: ..., VAE hash: 735e4c3a44,
    VAE: sdxl_vae.safetensors, Lora hashes: "ink-wash: 0123456789ab, paper: ba9876543210", StyleAligned: {...}

LoRAs are ``<lora:NAME:WEIGHT>`` tags after the prompt (NAME: the file name without its
extension) and a ``Lora hashes`` field with each file's short hash (kohya's "addnet" hash: the
SHA-256 of the file after its safetensors header, 12 digits; Civitai's AutoV3); the VAE is its
file or folder name (a hub id as it is) with the SHA-256 of a single VAE file (10 digits).
Our own JSON chunk stays the source of truth for the app's restore; this text is for others.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .characters import expand_character_names

SAMPLER_NAMES = {"ddim": "DDIM", "euler": "Euler", "dpmpp-2m": "DPM++ 2M"}
"""Our scheduler names as A1111 writes them."""
LORA_HASH_DIGITS = 12
"""A1111's short LoRA hash (``network.NetworkOnDisk.shorthash``)."""
VAE_HASH_DIGITS = 10
"""A1111's short VAE hash (``sd_vae.get_loaded_vae_hash``)."""
_READ_BLOCK = 1024 * 1024
_NOT_IN_A_TAG = re.compile(r"[:<>,\r\n]")  # A1111 splits a tag's arguments at ':', hashes at ','


def quote(value: Any) -> str:
    """A1111's own quoting of a value in its "key: value, ..." line (modules/infotext_utils.quote)."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def lora_tag_name(file: str) -> str:
    """The name a LoRA goes by in ``<lora:NAME:WEIGHT>`` and ``Lora hashes``: its file name
    without the extension, without the characters that would split A1111's fields."""
    return _NOT_IN_A_TAG.sub("", Path(file).stem).strip() or "lora"


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, version: tuple[int, ...], skip_safetensors_header: bool) -> str:
    del version  # part of the cache key only: a changed file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if skip_safetensors_header:
            header = int.from_bytes(handle.read(8), "little")
            handle.seek(8 + header)
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path: str | Path, skip_safetensors_header: bool = False) -> str | None:
    """The SHA-256 of a file (of its tensors only, after the safetensors header, with
    ``skip_safetensors_header``: kohya's and A1111's LoRA hash), or None if it cannot be read.
    Remembered per file version (LoRAs and VAEs are hundreds of MB): its size, modification and
    change times and inode, so a file rewritten in place or replaced, even with its old size and
    modification time put back (a copy that keeps times), is hashed again."""
    try:
        resolved = Path(path).expanduser().resolve()
        stat = resolved.stat()
        if not resolved.is_file():
            return None
        version = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        return _file_hash(str(resolved), version, skip_safetensors_header)
    except OSError:
        return None


def with_file_hashes(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` (``SetRequest.picture_parameters``) with each LoRA's ``hash`` and, for a
    single-file VAE, ``vae_hash``, as A1111 computes them (full length; the text shortens them)."""
    loras = []
    for entry in parameters.get("loras") or []:
        digest = file_hash(entry.get("path") or "", skip_safetensors_header=True)
        loras.append(dict(entry, hash=digest) if digest else dict(entry))
    result = dict(parameters, loras=loras)
    vae = parameters.get("vae")
    if vae and Path(vae).expanduser().is_file() and (digest := file_hash(vae)):
        result["vae_hash"] = digest
    return result


def _vae_name(vae: str) -> str:
    """A1111 names the VAE by its file name; a folder by its name; a hub id stays whole."""
    path = Path(vae).expanduser()
    return path.name if path.exists() else vae


def expanded_prompt(parameters: dict[str, Any]) -> str:
    """The prompt as the text encoders read it: each ``[Name]`` of the picture's characters
    replaced by its description (spec section 13), which other tools cannot do themselves."""
    prompt = str(parameters.get("prompt") or "")
    characters = [SimpleNamespace(name=c["name"], description=c["description"], words=tuple(c.get("words") or ()))
                  for c in parameters.get("characters") or ()]
    return expand_character_names(prompt, characters) if characters else prompt


def a1111_parameters(parameters: dict[str, Any]) -> str:
    """The picture's parameters in A1111's text form (see the module's note; ``Size`` is width x
    height; the StyleAligned settings as quoted JSON)."""
    loras = parameters.get("loras") or []
    tags = [f"<lora:{lora_tag_name(lora['file'])}:{lora['weight']:g}>" for lora in loras]
    lines = [" ".join([expanded_prompt(parameters), *tags]).strip()]
    if parameters.get("negative_prompt"):
        lines.append(f"Negative prompt: {parameters['negative_prompt']}")
    lora_hashes = ", ".join(f"{lora_tag_name(lora['file'])}: {lora['hash'][:LORA_HASH_DIGITS]}"
                            for lora in loras if lora.get("hash"))
    vae = parameters.get("vae")
    fields = {
        "Steps": parameters.get("steps"),
        "Sampler": SAMPLER_NAMES.get(parameters.get("scheduler"), parameters.get("scheduler")),
        "CFG scale": None if parameters.get("guidance") is None else f"{parameters['guidance']:g}",
        "Seed": parameters.get("seed"),
        "Size": f"{parameters['width']}x{parameters['height']}" if "width" in parameters else None,
        "Model": parameters.get("model"),
        "VAE hash": (parameters.get("vae_hash") or "")[:VAE_HASH_DIGITS] or None,
        "VAE": _vae_name(vae) if vae else None,
        "Lora hashes": lora_hashes or None,
        "StyleAligned": None if parameters.get("stylealigned") is None
        else json.dumps(parameters["stylealigned"], sort_keys=True, separators=(",", ":")),
    }
    lines.append(", ".join(f"{key}: {quote(value)}" for key, value in fields.items() if value is not None))
    return "\n".join(lines)
