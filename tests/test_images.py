"""Reading pictures as artists have them: every format and defect, with pictures made here."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from stylealigned_desktop.engine.images import (
    MAX_PICTURE_PIXELS,
    PictureError,
    fit_picture,
    load_picture,
    picture_hash,
    probe_picture,
)

from .icc_profiles import display_p3_profile, p3_to_srgb_by_hand

QUADRANT_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 230, 50)]


def quadrants(width: int = 64, height: int = 48) -> Image.Image:
    """Four flat colours (top-left, top-right, bottom-left, bottom-right): orientation shows."""
    pixels = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    pixels[:h2, :w2], pixels[:h2, w2:] = QUADRANT_COLOURS[0], QUADRANT_COLOURS[1]
    pixels[h2:, :w2], pixels[h2:, w2:] = QUADRANT_COLOURS[2], QUADRANT_COLOURS[3]
    return Image.fromarray(pixels)


def quadrant_centres(image: Image.Image) -> list[tuple[int, ...]]:
    w, h = image.size
    points = [
        (w // 4, h // 4),
        (3 * w // 4, h // 4),
        (w // 4, 3 * h // 4),
        (3 * w // 4, 3 * h // 4),
    ]
    return [image.getpixel(p) for p in points]


def png_with_declared_size(path, width: int, height: int) -> None:
    """A PNG whose header declares ``width`` x ``height`` with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("suffix", "options", "tolerance"),
    [
        (".png", {}, 0),
        (".bmp", {}, 0),
        (".tif", {}, 0),
        (".tif", {"compression": "tiff_lzw"}, 0),
        (".webp", {"lossless": True}, 0),
        (".webp", {"quality": 90}, 12),
        (".jpg", {"quality": 95}, 12),
    ],
)
def test_every_format_reads_as_rgb_with_its_colours(tmp_path, suffix, options, tolerance):
    path = tmp_path / f"picture{suffix}"
    quadrants().save(path, **options)
    image = load_picture(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    for got, expected in zip(quadrant_centres(image), QUADRANT_COLOURS):
        assert np.abs(np.subtract(got, expected)).max() <= tolerance, (suffix, got, expected)


def test_rgba_is_composited_on_white(tmp_path):
    alpha = np.array([[0, 64, 128, 255]], np.uint8).repeat(4, axis=0)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 20, 100, alpha
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    got = np.asarray(load_picture(path)).astype(int)
    a = alpha.astype(float)[..., None] / 255.0
    expected = np.array([200, 20, 100]) * a + 255.0 * (1.0 - a)
    assert np.abs(got - expected).max() <= 1
    assert tuple(got[0, 0]) == (255, 255, 255)  # fully transparent -> white, not black
    assert tuple(got[0, 3]) == (200, 20, 100)


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0], [0, 255], [100, 255]]], np.uint8), "LA").save(path)
    got = np.asarray(load_picture(path))
    assert got.shape == (1, 3, 3)
    assert [tuple(p) for p in got[0]] == [(255, 255, 255), (0, 0, 0), (100, 100, 100)]


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    palette_image = Image.new("P", (3, 1))
    palette_image.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10] + [0] * (256 * 3 - 9))
    palette_image.putdata([0, 1, 2])
    palette_image.info["transparency"] = 0
    path = tmp_path / "palette-transparent.png"
    palette_image.save(path, transparency=0)
    got = [tuple(p) for p in np.asarray(load_picture(path))[0]]
    assert got == [(255, 255, 255), (250, 10, 10), (10, 250, 10)]


def test_palette_and_greyscale_and_bilevel_become_rgb(tmp_path):
    palette_image = quadrants().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette_image.save(tmp_path / "palette.png")
    got = load_picture(tmp_path / "palette.png")
    assert got.mode == "RGB"
    for got_colour, expected in zip(quadrant_centres(got), QUADRANT_COLOURS):
        assert np.abs(np.subtract(got_colour, expected)).max() <= 8

    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    Image.fromarray(ramp, "L").save(tmp_path / "grey.png")
    grey = np.asarray(load_picture(tmp_path / "grey.png"))
    assert grey.shape == (8, 64, 3)
    for channel in range(3):
        np.testing.assert_array_equal(grey[..., channel], ramp)

    Image.fromarray(ramp > 128).save(tmp_path / "bilevel.png")
    bilevel = np.asarray(load_picture(tmp_path / "bilevel.png"))
    np.testing.assert_array_equal(bilevel[..., 0], np.where(ramp > 128, 255, 0))


@pytest.mark.parametrize(("suffix", "dtype"), [(".png", "<u2"), (".tif", "<u2"), (".tif", ">u2")])
def test_sixteen_bit_grey_uses_the_full_range(tmp_path, suffix, dtype):
    values = np.linspace(0, 65535, 64).round().astype(dtype).reshape(1, 64).repeat(4, axis=0)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    got = np.asarray(load_picture(path))
    expected = np.round(values.astype(float) / 257.0)
    assert np.abs(got[..., 0] - expected).max() <= 1
    assert got.min() == 0 and got.max() == 255
    # mid-grey stays mid-grey (Pillow's plain convert would clip everything above 255 to white)
    assert abs(int(got[0, 32, 0]) - 129) <= 2


def test_forty_eight_bit_rgb_tiff_keeps_its_colours(tmp_path):
    """An uncompressed 16-bit-per-channel RGB TIFF written by hand (Pillow cannot save one)."""
    width, height = 4, 3
    data = (np.arange(width * height * 3).reshape(height, width, 3) * 1800).astype("<u2")
    entry_count = 10
    bits_offset = 8 + 2 + entry_count * 12 + 4
    strip_offset = bits_offset + 6

    def short(tag, value):
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    def long(tag, value, kind=4, count=1):
        return struct.pack("<HHII", tag, kind, count, value)

    entries = [
        short(256, width),
        short(257, height),
        long(258, bits_offset, kind=3, count=3),  # BitsPerSample 16,16,16
        short(259, 1),  # no compression
        short(262, 2),  # RGB
        long(273, strip_offset),
        short(277, 3),
        short(278, height),
        long(279, data.nbytes),
        short(284, 1),
    ]
    assert len(entries) == entry_count
    path = tmp_path / "rgb48.tif"
    path.write_bytes(
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", entry_count)
        + b"".join(entries)
        + struct.pack("<I", 0)
        + struct.pack("<HHH", 16, 16, 16)
        + data.tobytes()
    )
    got = np.asarray(load_picture(path)).astype(int)
    assert got.shape == (height, width, 3)
    assert np.abs(got - data.astype(float) / 257.0).max() <= 1


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, turns):
    stored = quadrants(64, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated-{orientation}.jpg"
    stored.save(path, quality=95, exif=exif)
    got = load_picture(path)
    # np.rot90 turns counter-clockwise: orientation 6 needs a clockwise turn to display
    expected = Image.fromarray(np.rot90(np.asarray(stored), k=turns))
    assert got.size == expected.size
    for got_colour, want in zip(quadrant_centres(got), quadrant_centres(expected)):
        assert np.abs(np.subtract(got_colour, want)).max() <= 12
    info = probe_picture(path)
    assert (info.width, info.height) == got.size and info.format == "JPEG"


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path, quality=95)
    got = load_picture(path)
    assert got.mode == "RGB"
    assert min(got.getpixel((8, 8))) >= 245  # no ink is white


P3_COLOURS = [(200, 100, 50), (30, 180, 90), (90, 60, 220), (128, 128, 128)]


def _p3_picture(mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (len(P3_COLOURS), 2))
    for x, colour in enumerate(P3_COLOURS):
        for y in range(2):
            image.putpixel((x, y), colour + ((160,) if mode == "RGBA" else ()))
    return image


@pytest.mark.parametrize("suffix", [".png", ".tiff", ".webp"])
def test_a_display_p3_picture_is_converted_to_srgb(tmp_path, suffix):
    """The same numbers mean more saturated colours in Display P3: read as sRGB they would be
    dull. Expected values: decode, P3 -> XYZ -> sRGB matrices, encode (computed here)."""
    profile = display_p3_profile()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip() == "Display P3"
    path = tmp_path / f"p3{suffix}"
    _p3_picture().save(path, icc_profile=profile, **({"lossless": True} if suffix == ".webp" else {}))
    got = np.asarray(load_picture(path)).astype(float)
    for x, colour in enumerate(P3_COLOURS):
        expected = p3_to_srgb_by_hand(colour)
        assert np.abs(got[0, x] - expected).max() <= 1.5, (colour, got[0, x], expected)
    assert np.abs(got[0, 0] - P3_COLOURS[0]).max() >= 10  # not read as if it were sRGB


def test_a_p3_picture_with_alpha_is_converted_then_composited(tmp_path):
    path = tmp_path / "p3-alpha.png"
    _p3_picture("RGBA").save(path, icc_profile=display_p3_profile())
    got = np.asarray(load_picture(path)).astype(float)
    alpha = 160 / 255
    expected = p3_to_srgb_by_hand(P3_COLOURS[0]) * alpha + 255 * (1 - alpha)
    assert np.abs(got[0, 0] - expected).max() <= 2


def test_an_untagged_or_srgb_tagged_picture_keeps_its_numbers(tmp_path):
    untagged = tmp_path / "plain.png"
    _p3_picture().save(untagged)
    tagged = tmp_path / "srgb.png"
    _p3_picture().save(tagged, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    np.testing.assert_array_equal(np.asarray(load_picture(untagged)), np.asarray(_p3_picture()))
    assert np.abs(np.asarray(load_picture(tagged)).astype(int) - np.asarray(_p3_picture())).max() <= 1


def test_a_damaged_profile_is_ignored(tmp_path):
    path = tmp_path / "bad-profile.png"
    _p3_picture().save(path, icc_profile=b"not a profile at all")
    np.testing.assert_array_equal(np.asarray(load_picture(path)), np.asarray(_p3_picture()))


def test_any_size_and_aspect(tmp_path):
    for size in [(1, 1), (3, 700), (900, 2)]:
        path = tmp_path / f"odd-{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (10, 20, 30)).save(path)
        image = load_picture(path)
        assert image.size == size
        fitted = fit_picture(image, 64, 40)
        assert fitted.size == (64, 40) and fitted.getpixel((32, 20)) == (10, 20, 30)


# ------------------------------------------------------------------------------------- fitting


def test_fit_crops_the_centre_of_a_wide_picture():
    bands = np.zeros((100, 300, 3), np.uint8)
    bands[:, :100], bands[:, 100:200], bands[:, 200:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    fitted = np.asarray(fit_picture(Image.fromarray(bands), 64, 64)).astype(int)
    assert fitted.shape == (64, 64, 3)
    # the square centre crop is exactly the green band (Lanczos may blend a trace of the
    # neighbours into the outermost columns)
    assert np.abs(fitted[:, 2:-2] - np.array([0, 255, 0])).max() <= 2
    assert fitted[..., 1].min() >= 235 and fitted[..., [0, 2]].max() <= 20


def test_fit_crops_the_centre_of_a_tall_picture():
    bands = np.zeros((300, 100, 3), np.uint8)
    bands[:100], bands[100:200], bands[200:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    fitted = np.asarray(fit_picture(Image.fromarray(bands), 96, 48)).astype(int)
    assert fitted.shape == (48, 96, 3)
    # a 2:1 crop of a 100 px wide picture is 50 px tall around y=150: inside the green band
    assert np.abs(fitted[2:-2] - np.array([0, 255, 0])).max() <= 2
    assert fitted[..., 1].min() >= 235 and fitted[..., [0, 2]].max() <= 20


def test_fit_without_crop_is_a_lanczos_resize():
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))
    expected = picture.resize((48, 32), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(np.asarray(fit_picture(picture, 48, 32)), np.asarray(expected))
    assert fit_picture(picture.convert("RGBA"), 48, 32).mode == "RGB"


# -------------------------------------------------------------------------------------- errors


def assert_picture_error(path, *words, **kwargs):
    with pytest.raises(PictureError) as caught:
        load_picture(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message.lower(), message
    assert isinstance(caught.value, ValueError)
    return message


def test_missing_file_and_folder(tmp_path):
    assert_picture_error(tmp_path / "nowhere.png", "no such file")
    assert_picture_error(tmp_path, "not a file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_picture_error(path, "empty")
    with pytest.raises(PictureError, match="empty"):
        probe_picture(path)


def test_text_file_is_not_a_picture(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("a train at dawn, watercolour\n" * 20, encoding="utf-8")
    assert_picture_error(path, "not a picture", "png")
    with pytest.raises(PictureError, match="not a picture"):
        probe_picture(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files_give_a_clear_error(tmp_path, suffix, keep):
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    whole = tmp_path / f"whole{suffix}"
    noise.save(whole)
    data = whole.read_bytes()
    path = tmp_path / f"cut-{keep}{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    assert_picture_error(path)
    load_picture(whole)  # the same file uncut is fine: the error is the cut


def test_cut_inside_the_header(tmp_path):
    whole = tmp_path / "whole.png"
    quadrants().save(whole)
    path = tmp_path / "header-only.png"
    path.write_bytes(whole.read_bytes()[:20])
    assert_picture_error(path)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (20_000, 20_000),  # 400 MP: Pillow's own bomb error, turned into ours
        (11_000, 10_000),  # 110 MP: above our limit, below Pillow's error threshold
    ],
)
def test_decompression_bomb_is_refused_before_decoding(tmp_path, width, height):
    path = tmp_path / f"bomb-{width}.png"
    png_with_declared_size(path, width, height)
    assert path.stat().st_size < 200  # nothing like 100 MP is ever allocated
    assert width * height > MAX_PICTURE_PIXELS
    message = assert_picture_error(path, "too large")
    assert f"{MAX_PICTURE_PIXELS:,}" in message
    with pytest.raises(PictureError, match="too large"):
        probe_picture(path)


def test_pixel_limit_is_adjustable(tmp_path):
    path = tmp_path / "small.png"
    quadrants(64, 48).save(path)
    assert_picture_error(path, "3,072 pixels", max_pixels=3000)
    assert load_picture(path, max_pixels=3072).size == (64, 48)


# ---------------------------------------------------------------------------- probe and hashing


def test_probe_reads_the_header(tmp_path):
    path = tmp_path / "probe.webp"
    quadrants(80, 30).save(path, lossless=True)
    info = probe_picture(path)
    assert (info.width, info.height, info.format, info.pixels) == (80, 30, "WEBP", 2400)
    assert info.path == str(path)


def test_picture_hash_follows_the_pixels(tmp_path):
    picture = quadrants()
    picture.save(tmp_path / "a.png")
    picture.save(tmp_path / "a.bmp")
    picture.save(tmp_path / "a.tif", compression="tiff_lzw")
    digest = picture_hash(tmp_path / "a.png")
    assert len(digest) == 64
    assert picture_hash(tmp_path / "a.bmp") == digest  # other container, same pixels
    assert picture_hash(tmp_path / "a.tif") == digest
    assert picture_hash(picture) == digest
    assert picture_hash(picture.convert("RGBA")) == digest  # opaque alpha changes nothing

    changed = picture.copy()
    changed.putpixel((0, 0), (221, 30, 30))
    assert picture_hash(changed) != digest
    # same bytes in another shape are another picture
    reshaped = Image.frombytes("RGB", (48, 64), picture.tobytes())
    assert picture_hash(reshaped) != digest


def test_picture_hash_of_a_rotated_file_is_that_of_what_is_shown(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    quadrants().save(path, exif=exif)
    shown = load_picture(path)
    assert picture_hash(path) == picture_hash(shown)
    with pytest.raises(PictureError):
        picture_hash(tmp_path / "missing.jpg")
