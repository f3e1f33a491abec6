"""Hub models in the Hugging Face cache: the snapshot, whether it is complete, its revision.

``snapshot_download`` records the branch's commit (``refs/main``) before it fetches the files,
and a file appears in the snapshot folder only once it is fully downloaded. So a cancelled or
failed download leaves a snapshot with some files (often the small ``model_index.json`` or
``config.json`` first) and not others: a snapshot is taken as present only when every component
it names has its configuration and all its safetensors weights (every shard of a sharded index).
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"
DEFAULT_CONTROLNETS = {
    "canny": "diffusers/controlnet-canny-sdxl-1.0",
    "depth": "diffusers/controlnet-depth-sdxl-1.0",
}
"""The ControlNet each preprocessing mode feeds by default. ``map`` has none: a ready-made
map can be an edge map or a depth map, so its ControlNet must be named."""
DEFAULT_DINO = "facebook/dino-vitb8"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_TINY_DECODER = "madebyollin/taesdxl"
"""The tiny autoencoder (TAESDXL) that decodes SDXL previews at full size."""
TINY_DECODERS = {"sdxl": DEFAULT_TINY_DECODER, "sd1": "madebyollin/taesd", "sd2": "madebyollin/taesd"}
"""The tiny autoencoder of each base family (``bases.Base.family``): TAESD for SD 1.x and 2.x."""
OPTIONAL_MODELS = (
    ("ControlNet for edge maps (canny)", DEFAULT_CONTROLNETS["canny"]),
    ("ControlNet for depth maps", DEFAULT_CONTROLNETS["depth"]),
    ("Depth estimator (depth maps from pictures)", DEFAULT_DEPTH_MODEL),
    ("DINO (consistency scores)", DEFAULT_DINO),
    ("CLIP (text alignment in evaluations)", DEFAULT_CLIP),
    ("Tiny autoencoder (full-size live previews)", DEFAULT_TINY_DECODER),
    ("Tiny autoencoder for SD 1.x / 2.x previews", TINY_DECODERS["sd1"]),
)
"""The hub models besides SDXL that the app may need, with what each is for. This module
imports nothing heavy, so the GUI reads these defaults without loading numpy or torch."""

# A diffusers pipeline names its components in model_index.json; a single model (a ControlNet,
# a transformers depth estimator, DINO, CLIP) has config.json at the top of its repository.
_INDEX_FILES = ("model_index.json", "config.json")
_MODEL_CONFIGS = ("config.json",)


def download_command(repo_id: str) -> str:
    """The command that fetches a hub model into the cache (huggingface_hub's current CLI)."""
    return f"hf download {repo_id}"


def cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of the repository's main branch, complete or not; None if
    nothing of it is cached. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    for name in _INDEX_FILES:
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # an invalid repo id, an unreadable cache
            return None
        if isinstance(found, str):
            return Path(found).parent
    return None


def _missing_weights(folder: Path) -> list[str]:
    """What a model folder (with config.json) lacks of its safetensors weights."""
    missing = []
    for index in sorted(folder.glob("*.safetensors.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            missing.append(f"{folder.name}/{index.name} (unreadable)")
            continue
        missing += [f"{folder.name}/{shard}" for shard in sorted(shards) if not (folder / shard).is_file()]
    if not any(folder.glob("*.safetensors")):
        missing.append(f"{folder.name}/*.safetensors")
    return missing


OPTIONAL_COMPONENTS = ("safety_checker", "feature_extractor")
"""Components of SD 1.x / 2.x repositories the engine never loads (it decodes its own pictures)."""


def missing_parts(snapshot: Path) -> list[str]:
    """The parts a snapshot folder lacks (empty: complete). See the module docstring."""
    snapshot = Path(snapshot)
    index = snapshot / "model_index.json"
    if index.is_file():
        try:
            components = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ["model_index.json (unreadable)"]
        missing = []
        for name, value in sorted(components.items()):
            if name.startswith("_") or not isinstance(value, list) or None in value or name in OPTIONAL_COMPONENTS:
                continue  # metadata, or an optional component the pipeline leaves out
            folder = snapshot / name
            if not folder.is_dir() or not any(folder.iterdir()):
                missing.append(f"{name}/")
            elif any((folder / config).is_file() for config in _MODEL_CONFIGS):
                missing += _missing_weights(folder)
        return missing
    if (snapshot / "config.json").is_file():
        return [part.removeprefix(f"{snapshot.name}/") for part in _missing_weights(snapshot)]
    return ["model_index.json or config.json"]


def complete_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder if the whole model is there, else None."""
    snapshot = cached_snapshot(repo_id)
    return snapshot if snapshot is not None and not missing_parts(snapshot) else None


def snapshot_revision(repo_id: str) -> str | None:
    """The commit hash of the cached snapshot of the main branch (its folder's name), or None."""
    snapshot = cached_snapshot(repo_id)
    return snapshot.name if snapshot is not None else None


PICKLE_WEIGHTS = ("*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl")
PICKLES_REFUSED = ("only pickle weights (.bin, .ckpt, .pt), which can run code when loaded: they are "
                   "never loaded; use a version of the model with .safetensors weights")


def has_only_pickle_weights(source: str) -> bool:
    """Whether a model folder (or a hub id's cached snapshot) has pickle weights and no
    safetensors weights, at its top or in its component folders: what ``use_safetensors=True``
    refuses to load."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        folder = cached_snapshot(source)
        if folder is None:
            return False
    places = [folder] + [child for child in folder.iterdir() if child.is_dir()]
    pickles = any(any(place.glob(pattern)) for place in places for pattern in PICKLE_WEIGHTS)
    return pickles and not any(any(place.glob("*.safetensors")) for place in places)


def pickle_note(source: str) -> str:
    """A sentence for a loading error when the cause is pickle-only weights, else ''."""
    return f" {source} has {PICKLES_REFUSED}." if has_only_pickle_weights(source) else ""
