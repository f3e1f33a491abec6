"""Control maps and ControlNets for per-panel conditioning (spec section 8).

* :func:`preprocess` turns a user's picture into the map a ControlNet reads: ``canny`` edges
  (controlnet-aux's Canny detector), ``depth`` (a DPT monocular depth estimator, min-max
  normalised) or ``map`` (the picture already is a control map). The GUI shows it before
  generating; the CLI can save it.
* :func:`load_controlnet` loads an SDXL ControlNet from a hub id, a local diffusers folder or
  ``tiny``; :class:`ControlNetCache` keeps each one loaded once per engine, and
  :func:`check_controlnet_matches` refuses a ControlNet made for another base model (an SD 1.5
  ControlNet on SDXL) before any denoising starts.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pickle
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .hub import (
    DEFAULT_CONTROLNETS,
    DEFAULT_DEPTH_MODEL,
    download_command,
    has_only_pickle_weights,
    pickle_note,
)
from .images import PathLike, PictureError, fit_picture, load_picture, to_rgb
from .limits import check_control, check_size
from .models import hub_or_folder, resolve_device
from .request import CONTROL_MODES, PanelControl

if TYPE_CHECKING:  # pragma: no cover
    import torch

TINY = "tiny"
TINY_SEED = 0


class ControlError(ValueError):
    """A control cannot be used (bad settings, a missing or mismatched model)."""


@dataclass(frozen=True)
class ControlSettings:
    """How :func:`preprocess` makes a map: the output (panel) size and each mode's knobs.

    ``depth_model`` is a hub id, a local folder with a DPT model and its image processor, or
    ``tiny`` (random weights, for tests). ``device`` is where the depth estimator runs
    (``auto`` picks CUDA, then MPS, then the CPU).
    """

    width: int = 1024
    height: int = 1024
    canny_low: int = 100
    canny_high: int = 200
    depth_model: str = DEFAULT_DEPTH_MODEL
    device: str = "auto"

    def __post_init__(self) -> None:
        try:
            check_size(self.width, self.height, minimum=1, multiple=1)
            check_control(1.0, 0.0, 1.0, self.canny_low, self.canny_high)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        if not self.depth_model:
            raise ControlError("the depth model source is empty")

    @classmethod
    def for_panel(
        cls, control: PanelControl, width: int, height: int, **overrides: Any
    ) -> ControlSettings:
        """The settings for one panel's control at the set's output size."""
        return cls(
            width=width,
            height=height,
            canny_low=control.canny_low,
            canny_high=control.canny_high,
            **overrides,
        )


# --------------------------------------------------------------------------------------------
# Preprocessing


def preprocess(
    picture: PathLike | Image.Image, mode: str, settings: ControlSettings | None = None
) -> Image.Image:
    """The control map of ``picture`` for ``mode`` (``canny``, ``depth`` or ``map``).

    ``picture`` is a file (read with :func:`~.images.load_picture`: any format, EXIF rotation,
    alpha on white) or an image. It is centre-cropped to the output aspect and resized to the
    panel size first, so the map lines up with the generated image. The result is an 8-bit RGB
    image of exactly ``settings.width`` x ``settings.height``. Raises
    :class:`~.images.PictureError` for an unreadable picture and :class:`ControlError` for an
    unknown mode or a depth model that cannot be loaded.
    """
    settings = settings or ControlSettings()
    if mode not in CONTROL_MODES:
        raise ControlError(f"control mode must be one of {', '.join(CONTROL_MODES)}, got {mode!r}")
    image = load_picture(picture) if not isinstance(picture, Image.Image) else to_rgb(picture)
    fitted = fit_picture(image, settings.width, settings.height)
    if mode == "canny":
        return canny_map(fitted, settings.canny_low, settings.canny_high)
    if mode == "depth":
        depth = estimate_depth(fitted, settings.depth_model, settings.device)
        return depth_to_image(depth)
    return fitted


def _canny_detector_class():
    """controlnet-aux's ``CannyDetector`` without running ``controlnet_aux/__init__``.

    That ``__init__`` imports every detector (timm, mediapipe, ...): seconds of start-up,
    warnings, and an import error whenever one optional dependency is broken. The canny module
    only needs ``controlnet_aux.util``, so it is loaded from the installed package under a
    private package name. If controlnet_aux was already imported, that copy is used.
    """
    if "controlnet_aux" in sys.modules:
        from controlnet_aux.canny import CannyDetector

        return CannyDetector
    private = "_stylealigned_controlnet_aux"
    if private not in sys.modules:
        spec = importlib.util.find_spec("controlnet_aux")
        if spec is None or not spec.submodule_search_locations:
            raise ControlError(
                "the canny detector needs the controlnet-aux package: pip install controlnet-aux"
            )
        package = types.ModuleType(private)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[private] = package
    return importlib.import_module(f"{private}.canny").CannyDetector


def canny_map(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    """Canny edges of ``image`` at its own size: white edges on black, 3 channels.

    The detector resizes to multiples of 64; the picture is edge-padded to such a size (so it
    is never resampled and no edge appears at the padding) and the map cropped back.
    """
    if not 0 <= low <= high:
        raise ControlError(
            f"canny thresholds must satisfy 0 <= low <= high, got low={low}, high={high}"
        )
    pixels = np.asarray(to_rgb(image))
    height, width = pixels.shape[:2]
    padded_h, padded_w = -(-height // 64) * 64, -(-width // 64) * 64
    padded = np.pad(pixels, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="edge")
    side = min(padded_h, padded_w)
    detected = _canny_detector_class()()(
        padded,
        low_threshold=low,
        high_threshold=high,
        detect_resolution=side,
        image_resolution=side,
        output_type="np",
    )
    if detected.shape[:2] != (padded_h, padded_w):  # would mean controlnet-aux changed its resizing
        raise ControlError(
            f"unexpected canny map size {detected.shape[:2]} for {padded_h}x{padded_w}"
        )
    return Image.fromarray(np.ascontiguousarray(detected[:height, :width]), mode="RGB")


def depth_to_image(depth: np.ndarray) -> Image.Image:
    """A [0, 1] depth array (H, W) as an 8-bit RGB image, replicated to 3 channels."""
    grey = np.round(np.clip(depth, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.stack([grey] * 3, axis=-1)), mode="RGB")


# --------------------------------------------------------------------------------------------
# Depth estimation

_depth_lock = threading.Lock()
_depth_estimators: dict[tuple[str, str], tuple[Any, Any]] = {}


def _resolve_source(source: str, what: str) -> str:
    """A local folder's path, or the hub id as given; clear errors for neither."""
    return hub_or_folder(source, what, ControlError)


def _not_available_message(source: str, what: str, exc: BaseException) -> str:
    if has_only_pickle_weights(source):
        return f"{what}{pickle_note(source)}"
    if isinstance(exc, pickle.UnpicklingError):
        return (f"{what} {source!r}: its weights are a pickle file that would run code when "
                "loaded; it was refused (use a model with .safetensors weights)")
    if Path(source).expanduser().is_dir():
        return f"{what} folder {source!r} cannot be loaded: {exc}"
    return (
        f"{what} {source!r} could not be loaded ({exc}). It is not in the local Hugging Face "
        "cache and could not be downloaded (offline, or no network). Download it once while "
        f"online (`{download_command(source)}`, the app's model dialog, or run once with network access), "
        "or give the path of a local folder holding the model."
    )


def build_tiny_depth_estimator():
    """A random-weight DPT depth estimator and its processor, 32 px input, built offline.

    Its maps are meaningless; it exists so the depth path runs end to end without a download.
    """
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    config = DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        backbone_out_indices=[0, 1],
        neck_hidden_sizes=[16, 32],
        reassemble_factors=[4, 2],
        fusion_hidden_size=16,
        is_hybrid=False,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        model = DPTForDepthEstimation(config)
    finally:
        torch.random.set_rng_state(state)
    return model.eval(), DPTImageProcessor(size={"height": 32, "width": 32})


def load_depth_estimator(
    source: str = DEFAULT_DEPTH_MODEL, device: str = "auto"
) -> tuple[Any, Any]:
    """``(model, image processor)`` of a depth estimator from a hub id, a local folder or ``tiny``.

    Through transformers' Auto classes, so DPT (MiDaS), Depth Anything (V2) and ZoeDepth all
    load; only safetensors weights are loaded.
    Loaded once per (source, device) and kept for the process (see :func:`unload_depth_estimators`).
    """
    device = str(resolve_device(device))
    key = (source, device)
    with _depth_lock:
        if key in _depth_estimators:
            return _depth_estimators[key]
        if source == TINY:
            model, processor = build_tiny_depth_estimator()
        else:
            # The Auto classes: DPT, Depth Anything (V2), ZoeDepth... whatever the config names
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation

            location = _resolve_source(source, "depth model")
            try:
                processor = AutoImageProcessor.from_pretrained(location)
                model = AutoModelForDepthEstimation.from_pretrained(location, use_safetensors=True)
            except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
                raise ControlError(_not_available_message(source, "depth model", exc)) from None
        model = model.to(device).eval()
        _depth_estimators[key] = (model, processor)
        return _depth_estimators[key]


def unload_depth_estimators() -> None:
    """Forget the loaded depth estimators (frees their memory once nothing else holds them)."""
    with _depth_lock:
        _depth_estimators.clear()


def estimate_depth(
    image: Image.Image, source: str = DEFAULT_DEPTH_MODEL, device: str = "auto"
) -> np.ndarray:
    """Relative depth of ``image`` at its own size, min-max normalised to [0, 1] (float32, H x W).

    As the authors do: the estimator's output is resized bicubically to the picture size, then
    normalised so that near is bright (MiDaS/DPT and relative Depth Anything predict inverse
    depth; metric estimators are flipped). A perfectly flat prediction gives all zeros.
    """
    import torch

    model, processor = load_depth_estimator(source, device)
    inputs = processor(images=to_rgb(image), return_tensors="pt")
    parameter = next(model.parameters())
    pixel_values = inputs["pixel_values"].to(device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values)
    outputs.predicted_depth = outputs.predicted_depth.float()
    size = (image.height, image.width)
    post_process = getattr(processor, "post_process_depth_estimation", None)
    if post_process is not None:  # bicubic like the authors; ZoeDepth also removes its padding
        extra = {"source_sizes": [size]} if "source_sizes" in inspect.signature(post_process).parameters else {}
        depth = post_process(outputs, target_sizes=[size], **extra)[0]["predicted_depth"].reshape(size)
    else:
        depth = torch.nn.functional.interpolate(
            outputs.predicted_depth.unsqueeze(1), size=size, mode="bicubic", align_corners=False,
        )[0, 0]
    if not torch.isfinite(depth).all():
        raise ControlError(f"the depth model {source!r} produced invalid values (NaN or infinity)")
    low, high = depth.min(), depth.max()
    if high <= low:
        return np.zeros(size, dtype=np.float32)
    depth = (depth - low) / (high - low)
    if predicts_metric_depth(model.config):
        depth = 1.0 - depth  # metres grow with distance; depth ControlNets want near bright
    return depth.cpu().numpy().astype(np.float32)


def predicts_metric_depth(config) -> bool:
    """Whether an estimator outputs distance (far is large: ZoeDepth, Depth Pro, the metric
    Depth Anything checkpoints) rather than MiDaS-style relative inverse depth (near is large)."""
    return (getattr(config, "depth_estimation_type", None) == "metric"
            or getattr(config, "model_type", "") in ("zoedepth", "depth_pro"))


# --------------------------------------------------------------------------------------------
# ControlNets


def _as_dtype(dtype: torch.dtype | str | None):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        value = getattr(torch, str(dtype))
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise ControlError(f"unknown dtype {dtype!r}")
    return value


def tiny_controlnet(unet):
    """A ControlNet for the tiny model, built from its UNet (``ControlNetModel.from_unet``).

    The weights come from the tiny UNet as first built (``tiny.build_tiny_unet``), not from
    ``unet`` itself, which may be offloaded (weights on ``meta``) or carry LoRA layers; ``unet``
    gives the dtype and device. A trained ControlNet starts from zero convolutions, which would
    make this one a no-op; here they get random weights (fixed seed) so a control map visibly
    changes what the tiny model draws, which is what tests need.
    """
    import torch
    from diffusers import ControlNetModel

    from .tiny import build_tiny_unet

    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        controlnet = ControlNetModel.from_unet(
            build_tiny_unet(), conditioning_embedding_out_channels=(8, 8, 16, 16)
        )
        zero_initialised = [
            *controlnet.controlnet_down_blocks,
            controlnet.controlnet_mid_block,
            controlnet.controlnet_cond_embedding.conv_out,
        ]
        for conv in zero_initialised:
            conv.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    device = next(unet.parameters()).device
    if device.type == "meta":  # sequentially offloaded: the engine places the ControlNet itself
        device = torch.device("cpu")
    if controlnet.dtype != unet.dtype:  # avoid diffusers' warning on a no-op cast
        controlnet = controlnet.to(dtype=unet.dtype)
    return controlnet.to(device).eval().requires_grad_(False)


def load_controlnet(
    source: str, dtype: torch.dtype | str | None = None, device: str = "cpu", unet=None
):
    """An SDXL ``ControlNetModel`` from a hub id, a local diffusers folder, or ``tiny``.

    ``tiny`` needs ``unet`` (the tiny UNet it is built from). No caching here: an engine keeps
    its ControlNets in a :class:`ControlNetCache`. Raises :class:`ControlError` with download
    instructions when the model is not available offline.
    """
    dtype = _as_dtype(dtype)
    if source == TINY:
        if unet is None:
            raise ControlError("the tiny ControlNet is built from the tiny UNet: pass unet=")
        controlnet = tiny_controlnet(unet)
        if dtype is not None and dtype != controlnet.dtype:  # avoid diffusers' warning on a no-op cast
            controlnet = controlnet.to(dtype=dtype)
        return controlnet.to(device=device)
    import torch
    from diffusers import ControlNetModel

    from .models import dtype_kwargs

    location = _resolve_source(source, "ControlNet")
    attempts = [{"variant": "fp16"}, {}] if dtype == torch.float16 else [{}]
    error: BaseException | None = None
    for extra in attempts:
        try:
            controlnet = ControlNetModel.from_pretrained(location, use_safetensors=True, **dtype_kwargs(dtype),
                                                         **extra)
            break
        except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
            error = exc  # first a missing fp16 variant (then retried), or the real error
    else:
        raise ControlError(_not_available_message(source, "ControlNet", error)) from None
    return controlnet.to(device).eval().requires_grad_(False)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def check_controlnet_matches(controlnet, unet, source: str = "the ControlNet") -> None:
    """Raise :class:`ControlError` if ``controlnet`` cannot drive ``unet``.

    Its residuals are added to the UNet's skip connections, and it reads the same text and
    SDXL size conditioning, so the block widths, the block count, the text width and the added
    (text_time) conditioning must all agree. An SD 1.5 ControlNet on SDXL fails here with a
    message saying so, before any denoising starts.
    """
    c, u = controlnet.config, unet.config
    checks = [
        (
            "cross_attention_dim",
            "text-embedding width",
            _as_tuple(c.cross_attention_dim),
            _as_tuple(u.cross_attention_dim),
        ),
        (
            "addition_embed_type",
            "added conditioning",
            c.get("addition_embed_type"),
            u.get("addition_embed_type"),
        ),
        (
            "projection_class_embeddings_input_dim",
            "size/pooled-text conditioning width",
            c.get("projection_class_embeddings_input_dim"),
            u.get("projection_class_embeddings_input_dim"),
        ),
        (
            "addition_time_embed_dim",
            "time-id embedding width",
            c.get("addition_time_embed_dim"),
            u.get("addition_time_embed_dim"),
        ),
        (
            "block_out_channels",
            "block widths",
            tuple(c.block_out_channels),
            tuple(u.block_out_channels),
        ),
        (
            "layers_per_block",
            "layers per block",
            _as_tuple(c.layers_per_block),
            _as_tuple(u.layers_per_block),
        ),
        ("in_channels", "latent channels", c.in_channels, u.in_channels),
    ]
    mismatches = [
        f"{label} {ours} vs the model's {theirs}"
        for _key, label, ours, theirs in checks
        if ours != theirs
    ]
    if not mismatches:
        return
    sd15_like = (
        c.get("addition_embed_type") != "text_time" and u.get("addition_embed_type") == "text_time"
    )
    hint = (
        "it looks like an SD 1.5 ControlNet; this base model is SDXL, so use an SDXL ControlNet such as "
        f"{DEFAULT_CONTROLNETS['canny']} or {DEFAULT_CONTROLNETS['depth']}"
        if sd15_like
        else "use a ControlNet trained for this base model"
    )
    raise ControlError(f"{source} does not match the base model ({'; '.join(mismatches)}): {hint}")


class ControlNetCache:
    """The ControlNets of one engine: each (source, dtype, device) loaded and checked once."""

    def __init__(self) -> None:
        self._models: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, source: str, unet, dtype: torch.dtype | str | None = None, device: str = "cpu"):
        """The ControlNet for ``source``, loaded on first use and checked against ``unet``."""
        dtype = _as_dtype(dtype)
        # tiny depends on the UNet it is built from; hub/folder models do not
        key = (source, str(dtype), str(device), id(unet) if source == TINY else None)
        with self._lock:
            if key not in self._models:
                controlnet = load_controlnet(source, dtype=dtype, device=device, unet=unet)
                check_controlnet_matches(controlnet, unet, source=f"ControlNet {source!r}")
                self._models[key] = controlnet
            else:
                check_controlnet_matches(self._models[key], unet, source=f"ControlNet {source!r}")
            return self._models[key]

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)


__all__ = [
    "DEFAULT_CONTROLNETS",
    "DEFAULT_DEPTH_MODEL",
    "ControlError",
    "ControlNetCache",
    "ControlSettings",
    "PictureError",
    "build_tiny_depth_estimator",
    "canny_map",
    "check_controlnet_matches",
    "depth_to_image",
    "estimate_depth",
    "load_controlnet",
    "load_depth_estimator",
    "preprocess",
    "resolve_device",
    "tiny_controlnet",
    "unload_depth_estimators",
]
