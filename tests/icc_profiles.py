"""ICC profiles written here from their definition (littleCMS, through PIL.ImageCms, reads them),
and the colour maths to check a conversion by hand. Pillow can create only sRGB, LAB and XYZ
profiles, so a Display P3 profile is assembled byte by byte (ICC v4 matrix/TRC display profile)."""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
SRGB_PRIMARIES = [(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)]
P3_PRIMARIES = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]  # Display P3: DCI-P3 primaries, D65
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # ICC parametric curve type 3


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(values) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15fixed16(v) for v in values)


def _text_tag(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return (b"mluc" + b"\0" * 4 + struct.pack(">II", 1, 12) + b"enUS"
            + struct.pack(">II", len(encoded), 28) + encoded)


def rgb_to_xyz(primaries, white=D65_XY) -> np.ndarray:
    """The RGB -> XYZ matrix of a colour space given by its primaries and white point (xy)."""
    def xyz(x, y):
        return np.array([x / y, 1.0, (1 - x - y) / y])

    matrix = np.stack([xyz(*p) for p in primaries], axis=1)
    return matrix * np.linalg.solve(matrix, xyz(*white))


def _bradford_to_d50(white=D65_XY) -> np.ndarray:
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    white_xyz = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    cone = (bradford @ np.array(D50)) / (bradford @ white_xyz)
    return np.linalg.inv(bradford) @ np.diag(cone) @ bradford


def matrix_profile(description: str, primaries, white=D65_XY) -> bytes:
    """An ICC v4 RGB display profile: colorants adapted to D50 (Bradford), the sRGB tone curve."""
    colorants = _bradford_to_d50(white) @ rgb_to_xyz(primaries, white)
    curve = b"para" + b"\0" * 4 + struct.pack(">HH", 3, 0) + b"".join(_s15fixed16(v) for v in SRGB_CURVE)
    tags = [(b"desc", _text_tag(description)), (b"cprt", _text_tag("No copyright, made by a test")),
            (b"wtpt", _xyz_tag(D50)), (b"rXYZ", _xyz_tag(colorants[:, 0])),
            (b"gXYZ", _xyz_tag(colorants[:, 1])), (b"bXYZ", _xyz_tag(colorants[:, 2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    header = (struct.pack(">I", offset + len(data)) + b"\0" * 4 + struct.pack(">I", 0x04300000)
              + b"mntrRGB XYZ " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24
              + struct.pack(">I", 0) + b"".join(_s15fixed16(v) for v in D50) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


def display_p3_profile() -> bytes:
    return matrix_profile("Display P3", P3_PRIMARIES)


def p3_to_srgb_by_hand(pixel) -> np.ndarray:
    """An 8-bit Display P3 pixel as 8-bit sRGB (before rounding): decode, P3 -> XYZ -> sRGB, clip, encode."""
    value = np.asarray(pixel, dtype=np.float64) / 255.0
    linear = np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)
    srgb_linear = np.clip(np.linalg.solve(rgb_to_xyz(SRGB_PRIMARIES), rgb_to_xyz(P3_PRIMARIES) @ linear), 0, 1)
    encoded = np.where(srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055)
    return encoded * 255.0
