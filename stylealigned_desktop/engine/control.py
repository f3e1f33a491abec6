"""Control maps and ControlNets for per-panel conditioning (spec section 8).

* :func:`preprocess` turns a user's picture into the map a ControlNet reads: ``canny`` edges
  (controlnet-aux's Canny detector), ``depth`` (a DPT monocular depth estimator, min-max
  normalised) or ``map`` (the picture already is a control map). The GUI shows it before
  generating; the CLI can save it.
* :func:`load_controlnet` loads an SDXL ControlNet from a hub id, a local diffusers folder or
  ``tiny``; :class:`ControlNetCache` keeps each one loaded once per engine, and
  :func:`check_controlnet_matches` refuses a ControlNet made for another base model (an SD 1.5
  ControlNet on SDXL) before any denoising starts.

The maps live here; the ControlNets in ``controlnets.py``, the depth estimators in ``depth.py``
and what they share (:class:`ControlError`, model sources) in ``control_sources.py``. This
module names them all (``__all__``), so callers import controls from one place.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .control_sources import ControlError
from .controlnets import ControlNetCache, check_controlnet_matches, load_controlnet, tiny_controlnet
from .depth import (
    build_tiny_depth_estimator,
    estimate_depth,
    load_depth_estimator,
    unload_depth_estimators,
)
from .hub import DEFAULT_CONTROLNETS, DEFAULT_DEPTH_MODEL
from .images import PathLike, PictureError, fit_picture, load_picture, to_rgb
from .limits import check_control, check_size
from .models import resolve_device
from .request import CONTROL_MODES, PanelControl


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
