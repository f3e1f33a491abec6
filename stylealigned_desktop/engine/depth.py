"""Depth estimation for depth control maps (spec section 8): a depth estimator from a hub id, a
local folder or ``tiny``, loaded once per (source, device), and relative depth normalised as
the authors do."""

from __future__ import annotations

import inspect
import pickle
import threading
from typing import Any

import numpy as np
from PIL import Image

from .control_sources import TINY, TINY_SEED, ControlError, not_available_message, resolve_source
from .hub import DEFAULT_DEPTH_MODEL
from .images import to_rgb
from .models import resolve_device

_depth_lock = threading.Lock()
_depth_estimators: dict[tuple[str, str], tuple[Any, Any]] = {}


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

            location = resolve_source(source, "depth model")
            try:
                processor = AutoImageProcessor.from_pretrained(location)
                model = AutoModelForDepthEstimation.from_pretrained(location, use_safetensors=True)
            except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
                raise ControlError(not_available_message(source, "depth model", exc)) from None
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
