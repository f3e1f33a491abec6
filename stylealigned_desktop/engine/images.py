"""Reading pictures as artists have them: any common format, alpha, 16-bit, EXIF-rotated, any size.

Everything a user drops in (a reference picture, a control picture) goes through
:func:`load_picture`, which returns a plain 8-bit RGB image the way the picture looks in an image
viewer, or raises :class:`PictureError` with a message naming the file and what is wrong with it.
No torch here: the GUI and the session layer may use this module.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

MAX_PICTURE_PIXELS = 100_000_000
"""Pictures above this many pixels are refused (decompression bombs, or just too big to be useful)."""

SUPPORTED_FORMATS = ("PNG", "JPEG", "WebP", "TIFF", "BMP")
"""The formats we promise; anything else Pillow reads (GIF, ...) also works."""

PathLike = str | os.PathLike

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
# Modes whose pixels carry transparency to flatten onto white.
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class PictureError(ValueError):
    """A picture cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class PictureInfo:
    """What :func:`probe_picture` learns from a picture's header.

    ``width``/``height`` are as displayed, i.e. after the EXIF orientation is applied.
    """

    path: str
    width: int
    height: int
    format: str
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _check_file(path: Path) -> None:
    if not path.exists():
        raise PictureError(f"{path}: no such file")
    if not path.is_file():
        raise PictureError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise PictureError(f"{path}: the file is empty")


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only, nothing decoded yet) and refuse pictures above ``max_pixels``."""
    _check_file(path)
    try:
        # Pillow warns from ~89 MP on; we apply our own limit right below instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise PictureError(
            f"{path}: the picture is too large to open safely ({exc}); "
            f"the limit is {max_pixels:,} pixels"
        ) from None
    except UnidentifiedImageError:
        raise PictureError(
            f"{path}: not a picture that can be read (supported: {', '.join(SUPPORTED_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PictureError(f"{path}: the file is damaged and cannot be read ({exc})") from None
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise PictureError(f"{path}: the picture has no pixels ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise PictureError(
            f"{path}: the picture is {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,} (a decompression bomb, or simply too large): reduce it first"
        )
    return image


def probe_picture(path: PathLike, max_pixels: int = MAX_PICTURE_PIXELS) -> PictureInfo:
    """Check a picture from its header alone (fast, for the GUI): size, format, mode.

    Raises :class:`PictureError` for a missing, empty, non-image or too large file. A picture
    whose pixel data is damaged (a truncated file) passes here and fails in :func:`load_picture`.
    """
    path = Path(path)
    image = _open(path, max_pixels)
    try:
        width, height = image.size
        try:
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        except Exception:  # a broken EXIF block: the picture itself may be fine
            orientation = 1
        if orientation in _SWAPS_AXES:
            width, height = height, width
        return PictureInfo(str(path), width, height, image.format or "unknown", image.mode)
    finally:
        image.close()


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    """Scale 16-bit grey to 8-bit over the full range (Pillow's convert would clip at 255)."""
    values = np.asarray(image).astype(np.float64)
    return Image.fromarray(np.round(values / 257.0).astype(np.uint8), mode="L")


def _wide_to_8(image: Image.Image) -> Image.Image:
    """32-bit integer ("I") or float ("F") grey to 8-bit.

    Floats in [0, 1] are scaled by 255; integers within 0..65535 that exceed 255 are read as
    16-bit; anything else (HDR floats, odd integer ranges) is min-max normalised.
    """
    values = np.asarray(image).astype(np.float64)
    if not np.all(np.isfinite(values)):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif image.mode == "I" and low >= 0 and high <= 255:
        scaled = values
    elif image.mode == "I" and low >= 0 and high <= 65535:
        scaled = values / 257.0
    elif high > low:
        scaled = (values - low) / (high - low) * 255.0
    else:
        scaled = np.zeros_like(values)
    return Image.fromarray(np.round(np.clip(scaled, 0, 255)).astype(np.uint8), mode="L")


def _on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: transparency flattened on white, high bit depths scaled."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_8(image).convert("RGB")
    if mode in ("I", "F"):
        return _wide_to_8(image).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        # palette or colour-key transparency (PNG tRNS, GIF) too
        return _on_white(image)
    if mode == "RGB":
        return image.copy()
    if mode == "P":
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"colour mode {mode} is not supported ({exc})") from None


# Modes littleCMS converts, and the mode of their sRGB result (alpha is carried over).
_ICC_OUTPUT_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}


def to_srgb(image: Image.Image) -> Image.Image:
    """A picture with an embedded ICC profile (Display P3, Adobe RGB, a CMYK press profile...)
    converted to sRGB with ``PIL.ImageCms``, what the model was trained on and what viewers
    show; an untagged picture is taken as sRGB and returned as is. A profile that littleCMS
    cannot use (damaged, or not matching the pixels' colour mode) is ignored."""
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in _ICC_OUTPUT_MODES:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                         outputMode=_ICC_OUTPUT_MODES[image.mode])
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.info("ignoring an unusable ICC profile (%s); taking the picture as sRGB", exc)
        return image


def load_picture(path: PathLike, max_pixels: int = MAX_PICTURE_PIXELS) -> Image.Image:
    """Read a picture file as 8-bit RGB, the way it looks in an image viewer.

    PNG, JPEG, WebP, TIFF, BMP (and whatever else Pillow reads); RGBA, LA and palette
    transparency are composited on white; greyscale and palette become RGB; 16-bit pictures are
    scaled to 8-bit over their full range; the EXIF orientation is applied; an embedded ICC
    profile is converted to sRGB (:func:`to_srgb`). Multi-frame files
    give their first frame. Raises :class:`PictureError` (naming the file) for a missing, empty,
    damaged, truncated or non-image file, or a picture above ``max_pixels``.
    """
    path = Path(path)
    image = _open(path, max_pixels)
    with image:
        try:
            image.load()
        except Image.DecompressionBombError as exc:  # frames larger than the header said
            raise PictureError(f"{path}: the picture is too large to open safely ({exc})") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            raise PictureError(
                f"{path}: the file is damaged or truncated and cannot be decoded ({exc})"
            ) from None
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception:  # unreadable EXIF: keep the pixels as stored rather than fail
            oriented = image
        try:
            return to_rgb(to_srgb(oriented))
        except ValueError as exc:
            raise PictureError(f"{path}: {exc}") from None


def fit_picture(image: Image.Image, width: int, height: int) -> Image.Image:
    """Centre-crop ``image`` to the aspect of ``width`` x ``height``, then resize (Lanczos).

    The crop box is fractional, so no aspect error is introduced by rounding; the result is RGB.
    """
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    src_w, src_h = image.size
    if src_w * height > src_h * width:  # wider than the output: crop the sides
        crop_w, crop_h = src_h * width / height, float(src_h)
    else:  # taller (or equal): crop top and bottom
        crop_w, crop_h = float(src_w), src_w * height / width
    left = (src_w - crop_w) / 2.0
    top = (src_h - crop_h) / 2.0
    box = (left, top, left + crop_w, top + crop_h)
    if image.mode != "RGB":
        image = to_rgb(image)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


def picture_hash(picture: PathLike | Image.Image) -> str:
    """A content hash (hex SHA-256) of the decoded RGB pixels and the size.

    The same picture re-saved in another lossless format, or with other metadata, hashes the
    same; any pixel change gives another hash. For caches keyed by what a picture looks like.
    """
    image = to_rgb(picture) if isinstance(picture, Image.Image) else load_picture(picture)
    digest = hashlib.sha256()
    digest.update(f"RGB {image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
