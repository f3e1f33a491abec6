"""How well a set shares one style: DINO set consistency, CLIP text alignment, Inception Score.

The paper's protocol (spec section 10):

- **Set consistency**: DINO ViT-B/8 (``facebook/dino-vitb8``) CLS embeddings of the last hidden
  state; mean cosine over all unordered pairs of images within a set; mean and standard deviation
  over sets.
- **Text alignment**: CLIP (default ``openai/clip-vit-large-patch14``) raw cosine between each
  image and a text naming only its object ("A guitar"); mean over images. torchmetrics'
  ``CLIPScore`` convention, ``max(100 * cosine, 0)``, is reported next to it, labelled.
- **Inception Score**: torchvision's Inception v3 class probabilities,
  ``IS = exp(E_x[KL(p(y|x) || p(y))])`` over splits; mean and standard deviation over splits.

The metric functions work on arrays (numpy), the model wrappers turn PIL images into embeddings
or probabilities with each model's own preprocessing. Models load from a hub id or a local folder
(Inception: a local state-dict file or torchvision's published weights), once per
``(kind, source, device)``, and are reused.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..engine.hub import (
    DEFAULT_CLIP,
    DEFAULT_DINO,
    download_command,
    has_only_pickle_weights,
    pickle_note,
)
from ..engine.models import looks_like_path

DEFAULT_INCEPTION = "torchvision"
"""Inception v3 with torchvision's published ImageNet weights (downloaded once when online)."""

DEFAULT_IS_SPLITS = 10
MIN_IMAGES_PER_SPLIT = 10
"""Fewer splits are used when there are fewer than this many images per split."""

BATCH_SIZE = 16

KINDS = ("dino", "clip", "inception")


class MetricModelError(RuntimeError):
    """A metric model could not be loaded; the message says how to get it."""


# ---------------------------------------------------------------------------------------------
# Metrics on arrays
# ---------------------------------------------------------------------------------------------


class ConsistencyResult(NamedTuple):
    mean: float
    """Mean over sets of each set's mean pairwise cosine."""
    std: float
    """Population standard deviation over sets (0 for one set)."""
    per_set: list[float]


class TextAlignmentResult(NamedTuple):
    mean: float
    """Mean raw cosine between each image and its text (the paper's figure)."""
    std: float
    per_image: list[float]
    clip_score_100: float
    """torchmetrics ``CLIPScore`` convention: mean over images of ``max(100 * cosine, 0)``."""


class InceptionScoreResult(NamedTuple):
    mean: float
    std: float
    """Population standard deviation over splits (0 for one split)."""
    splits: int
    """How many splits were actually used."""


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an embedding is all zeros: its cosine similarity is undefined")
    return embeddings / norms


def mean_pairwise_cosine(embeddings: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Mean cosine similarity over all unordered pairs of rows (4 rows: 6 pairs)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"expected a 2-D array (images x features), got shape {emb.shape}")
    n = emb.shape[0]
    if n < 2:
        raise ValueError(f"set consistency needs at least 2 images in a set, got {n}")
    unit = _unit_rows(emb)
    similarity = unit @ unit.T
    upper = np.triu_indices(n, k=1)
    return float(similarity[upper].mean())


def set_consistency(embeddings_per_set: Iterable[np.ndarray]) -> ConsistencyResult:
    """DINO set consistency: mean pairwise cosine within each set, then mean and std over sets."""
    per_set = [mean_pairwise_cosine(e) for e in embeddings_per_set]
    if not per_set:
        raise ValueError("set consistency needs at least one set")
    values = np.asarray(per_set)
    return ConsistencyResult(float(values.mean()), float(values.std()), per_set)


def text_alignment(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> TextAlignmentResult:
    """CLIP text alignment: cosine of image row i with text row i, mean over images.

    ``clip_score_100`` is torchmetrics' convention (``max(100 * cos, 0)`` per image, then the
    mean), which papers often report instead; it is not the paper's 0.287-style figure.
    """
    images = np.asarray(image_embeddings, dtype=np.float64)
    texts = np.asarray(text_embeddings, dtype=np.float64)
    if images.ndim != 2 or images.shape != texts.shape:
        raise ValueError(
            f"image and text embeddings must be 2-D with the same shape, got {images.shape} "
            f"and {texts.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("text alignment needs at least one image")
    cosines = np.sum(_unit_rows(images) * _unit_rows(texts), axis=1)
    return TextAlignmentResult(
        float(cosines.mean()),
        float(cosines.std()),
        [float(c) for c in cosines],
        float(np.maximum(100.0 * cosines, 0.0).mean()),
    )


def effective_splits(n_images: int, splits: int = DEFAULT_IS_SPLITS) -> int:
    """The usual ``splits``, fewer when a split would hold fewer than MIN_IMAGES_PER_SPLIT images."""
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    return max(1, min(splits, n_images // MIN_IMAGES_PER_SPLIT))


def inception_score(probs: np.ndarray, splits: int = DEFAULT_IS_SPLITS) -> InceptionScoreResult:
    """IS = exp(E_x[KL(p(y|x) || p(y))]) per split (p(y) is the split's marginal); mean, std.

    ``probs`` holds one row of class probabilities per image. The images are cut into
    :func:`effective_splits` consecutive splits of (nearly) equal size, all images used.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected a 2-D array (images x classes) with rows, got shape {p.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("each row of probs must be a probability distribution (>= 0, sums to 1)")
    used = effective_splits(p.shape[0], splits)
    scores = []
    for part in np.array_split(p, used):
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log 0 = 0: classes with zero probability contribute nothing to the KL.
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(math.exp(float(terms.sum(axis=1).mean())))
    values = np.asarray(scores)
    return InceptionScoreResult(float(values.mean()), float(values.std()), used)


# ---------------------------------------------------------------------------------------------
# Model sources and the cache
# ---------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> cuda, then mps, then cpu; anything else is checked and passed through."""
    from ..engine.models import ModelSourceError
    from ..engine.models import resolve_device as torch_device

    try:
        return str(torch_device(device))
    except ModelSourceError as exc:
        raise ValueError(str(exc)) from None


def _offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hf_source(kind: str, source: str) -> str:
    """A local folder (checked) or a hub id (returned as is)."""
    from ..engine.models import hub_or_folder

    return hub_or_folder(source, f"{kind} model", MetricModelError)


def _hf_missing_message(kind: str, source: str, error: Exception) -> str:
    if has_only_pickle_weights(source):
        return f"the {kind} model{pickle_note(source)}"
    if Path(source).is_dir():
        return f"cannot load the {kind} model from the folder {source}: {error}"
    return (
        f"the {kind} model {source!r} is not available locally and could not be downloaded "
        f"({str(error).splitlines()[0] if str(error) else type(error).__name__}). "
        f"Get it while online with `{download_command(source)}` or the app's model dialog, "
        "or point to a local folder holding it."
    )


def hf_model_available(source: str) -> bool:
    """Whether a DINO/CLIP source can be loaded without a download (a folder or a cached hub id)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    if looks_like_path(source):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(source, "config.json")
    except Exception:  # an invalid repo id is simply not available
        return False
    return isinstance(found, str)


_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def _cached(kind: str, source: str, device: str, build: Callable[[str, str], Any]) -> Any:
    device = resolve_device(device)
    path = Path(source).expanduser()
    # A folder is the same model however it is spelled (relative, ~, trailing slash).
    key = (kind, str(path.resolve()) if path.exists() else source, device)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = build(source, device)
            _CACHE[key] = model
        return model


def clear_model_cache() -> None:
    """Forget every loaded metric model (frees their memory once nothing else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _batches(items: Sequence, size: int = BATCH_SIZE) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rgb(images: Sequence) -> list:
    return [image.convert("RGB") for image in images]


def _as_tensor(output) -> Any:
    # transformers 5 returns a model output (projection in pooler_output); 4.x a plain tensor.
    return output if not hasattr(output, "pooler_output") else output.pooler_output


# ---------------------------------------------------------------------------------------------
# Model wrappers
# ---------------------------------------------------------------------------------------------


@dataclass
class DinoEmbedder:
    """DINO ViT (transformers ``ViTModel``): CLS token of the last hidden state per image."""

    model: Any
    processor: Any
    device: str
    source: str

    @classmethod
    def load(cls, source: str = DEFAULT_DINO, device: str = "cpu") -> DinoEmbedder:
        from transformers import AutoImageProcessor, ViTModel

        resolved = _hf_source("DINO", source)
        try:
            processor = AutoImageProcessor.from_pretrained(resolved)
            # Only the CLS token of last_hidden_state is used: the pooler is not needed.
            model = ViTModel.from_pretrained(resolved, add_pooling_layer=False, use_safetensors=True)
        except OSError as error:
            raise MetricModelError(_hf_missing_message("DINO", resolved, error)) from error
        model.to(device).eval()
        return cls(model, processor, device, resolved)

    def embed(self, images: Sequence) -> np.ndarray:
        """(N, hidden) float64 CLS embeddings of PIL images."""
        import torch

        rows = []
        for batch in _batches(_rgb(images)):
            inputs = self.processor(images=list(batch), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
            with torch.inference_mode():
                hidden = self.model(pixel_values=pixels).last_hidden_state
            rows.append(hidden[:, 0].float().cpu().numpy())
        return np.concatenate(rows).astype(np.float64)


@dataclass
class ClipEmbedder:
    """CLIP (transformers ``CLIPModel`` + its processor): projected image and text embeddings."""

    model: Any
    processor: Any
    device: str
    source: str

    @classmethod
    def load(cls, source: str = DEFAULT_CLIP, device: str = "cpu") -> ClipEmbedder:
        from transformers import AutoProcessor, CLIPModel

        resolved = _hf_source("CLIP", source)
        try:
            processor = AutoProcessor.from_pretrained(resolved)
            model = CLIPModel.from_pretrained(resolved, use_safetensors=True)
        except OSError as error:
            raise MetricModelError(_hf_missing_message("CLIP", resolved, error)) from error
        model.to(device).eval()
        return cls(model, processor, device, resolved)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """(N, projection) float64 image embeddings (not normalised)."""
        import torch

        rows = []
        for batch in _batches(_rgb(images)):
            inputs = self.processor(images=list(batch), return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
            with torch.inference_mode():
                features = _as_tensor(self.model.get_image_features(pixel_values=pixels))
            rows.append(features.float().cpu().numpy())
        return np.concatenate(rows).astype(np.float64)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, projection) float64 text embeddings (not normalised; long texts truncated)."""
        import torch

        rows = []
        for batch in _batches(list(texts)):
            inputs = self.processor(text=list(batch), return_tensors="pt", padding=True,
                                    truncation=True)
            inputs = {k: v.to(self.device) for k, v in inputs.items()
                      if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                features = _as_tensor(self.model.get_text_features(**inputs))
            rows.append(features.float().cpu().numpy())
        return np.concatenate(rows).astype(np.float64)


def _load_inception_state_dict(source: str) -> dict:
    """A state dict from a local .safetensors/.pth file, or torchvision's published weights."""
    if source == DEFAULT_INCEPTION:
        import torch
        from torchvision.models import Inception_V3_Weights

        weights = Inception_V3_Weights.IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        how = (
            f"download {weights.url} while online and pass its path as the Inception source "
            "(--inception PATH), or run once online to let torchvision cache it"
        )
        if not cached.is_file() and _offline():
            raise MetricModelError(f"Inception v3 weights are not cached ({cached}) and the app is "
                                   f"offline: {how}")
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except Exception as error:  # network errors come in many types (URLError, HTTPError...)
            raise MetricModelError(f"cannot get Inception v3 weights ({error}): {how}") from error

    path = Path(source).expanduser()
    if not path.is_file():
        raise MetricModelError(
            f"Inception weights file not found: {source} (give a .safetensors or .pth state dict "
            f"of torchvision's inception_v3, or {DEFAULT_INCEPTION!r} for the published weights)"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if suffix in (".pth", ".pt", ".bin"):
            import torch

            state = torch.load(str(path), map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise MetricModelError(f"{path} does not hold a state dict")
            return state
    except MetricModelError:
        raise
    except Exception as error:
        raise MetricModelError(f"cannot read Inception weights from {path}: {error}") from error
    raise MetricModelError(
        f"Inception weights must be a .safetensors or .pth file, got {path.name}"
    )


@dataclass
class InceptionClassifier:
    """torchvision's Inception v3: ImageNet class probabilities (softmax of the logits)."""

    model: Any
    transform: Any
    device: str
    source: str

    @classmethod
    def load(cls, source: str = DEFAULT_INCEPTION, device: str = "cpu",
             transform_input: bool = True) -> InceptionClassifier:
        """``source``: a .safetensors/.pth state dict of torchvision's ``inception_v3`` or
        ``"torchvision"``. ``transform_input`` True as torchvision sets it for its published
        (Google) weights. Other Inception ports (pytorch-fid / torch-fidelity files) load only
        when their keys match torchvision's layout (the class count is read from ``fc``); their
        FID-specific pooling is not reproduced, so scores can differ slightly from those tools'.
        """
        from torchvision.models import Inception_V3_Weights, inception_v3

        state = _load_inception_state_dict(source)
        has_aux = any(key.startswith("AuxLogits.") for key in state)
        fc = state.get("fc.weight")
        num_classes = int(fc.shape[0]) if fc is not None else 1000
        model = inception_v3(weights=None, aux_logits=has_aux, init_weights=False,
                             transform_input=transform_input, num_classes=num_classes)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise MetricModelError(
                f"{source} is not a state dict of torchvision's inception_v3: {first}"
            ) from error
        model.to(device).eval()
        # The same preprocessing as torchvision's published weights: resize 342, crop 299, ImageNet
        # mean/std (transform_input then maps it to the Google weights' [-1, 1] convention).
        transform = Inception_V3_Weights.IMAGENET1K_V1.transforms()
        return cls(model, transform, device, source)

    def probabilities(self, images: Sequence) -> np.ndarray:
        """(N, classes) float64 class probabilities of PIL images."""
        import torch

        rows = []
        for batch in _batches(_rgb(images)):
            pixels = torch.stack([self.transform(image) for image in batch]).to(self.device)
            with torch.inference_mode():
                logits = self.model(pixels)
            rows.append(torch.softmax(logits.float().cpu().double(), dim=1).numpy())
        return np.concatenate(rows)


def load_dino(source: str = DEFAULT_DINO, device: str = "auto") -> DinoEmbedder:
    """The DINO embedder for ``source`` (hub id or folder), loaded once per source and device."""
    return _cached("dino", source, device, DinoEmbedder.load)


def load_clip(source: str = DEFAULT_CLIP, device: str = "auto") -> ClipEmbedder:
    """The CLIP embedder for ``source`` (hub id or folder), loaded once per source and device."""
    return _cached("clip", source, device, ClipEmbedder.load)


def load_inception(source: str = DEFAULT_INCEPTION, device: str = "auto") -> InceptionClassifier:
    """Inception v3 from a local state-dict file or ``"torchvision"``, loaded once per device."""
    return _cached("inception", source, device, InceptionClassifier.load)


def dino_unavailable_reason(source: str = DEFAULT_DINO) -> str | None:
    """None when the DINO model loads without a download; else what to do to get it.

    Meant for the GUI, which scores finished runs only with a model already on disk.
    """
    if hf_model_available(source):
        return None
    if looks_like_path(source) or Path(source).expanduser().exists():
        return f"the DINO model folder {source} is missing or has no config.json"
    return (
        f"set consistency needs the DINO model {source!r}: download it once with "
        f"`{download_command(source)}` or from the app's model dialog, "
        "or choose a local folder holding it"
    )


def images_set_consistency(images: Sequence, source: str = DEFAULT_DINO,
                           device: str = "auto") -> float:
    """One set's DINO consistency (mean pairwise cosine) from its PIL images.

    Raises :class:`MetricModelError` when the model cannot be loaded; check
    :func:`hf_model_available` first to avoid a download attempt.
    """
    return mean_pairwise_cosine(load_dino(source, device).embed(images))
