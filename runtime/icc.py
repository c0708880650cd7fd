"""ICC v2 display profiles of the matrix/TRC kind, built from primaries, a white point and a tone curve.

Used for HEIC and AVIF files that describe their colour with an nclx box (H.273 code points) instead
of an embedded profile: their pixels are in e.g. Display P3, and the output should say so. The
primaries' XYZ are adapted to the D50 connection space with the Bradford transform, the white point
tag is D50, and the curve is sampled as a 1024-entry `curv` on each channel.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache

D65 = (0.3127, 0.3290)
D50_XYZ = (0.9642, 1.0, 0.8249)
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
BT2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))


def _xyz(x: float, y: float) -> tuple[float, float, float]:
    return (x / y, 1.0, (1 - x - y) / y)


def _solve(matrix, vector):
    (a, b, c), (d, e, f), (g, h, i) = matrix
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    inverse = (
        ((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
        ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
        ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det),
    )
    return [sum(inverse[r][k] * vector[k] for k in range(3)) for r in range(3)]


def _multiply(a, b):
    return [[sum(a[r][k] * b[k][c] for k in range(3)) for c in range(3)] for r in range(3)]


def _adaptation(source_white):
    cone_source = [sum(_BRADFORD[r][k] * source_white[k] for k in range(3)) for r in range(3)]
    cone_target = [sum(_BRADFORD[r][k] * D50_XYZ[k] for k in range(3)) for r in range(3)]
    scale = [[cone_target[r] / cone_source[r] if r == c else 0.0 for c in range(3)] for r in range(3)]
    inverse = [_solve(_BRADFORD, [1.0 if r == c else 0.0 for r in range(3)]) for c in range(3)]
    inverse = [[inverse[c][r] for c in range(3)] for r in range(3)]
    return _multiply(inverse, _multiply(scale, _BRADFORD))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def srgb_curve(v: float) -> float:
    """The sRGB decoding curve (IEC 61966-2-1): encoded value to linear light."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def bt709_curve(v: float) -> float:
    """The inverse of BT.709's transfer function: encoded value to linear light."""
    return v / 4.5 if v < 0.081 else ((v + 0.099) / 1.099) ** (1 / 0.45)


def _curve(decode: Callable[[float], float]) -> bytes:
    points = [round(decode(i / 1023) * 65535) for i in range(1024)]
    return b"curv" + bytes(4) + struct.pack(">I", len(points)) + struct.pack(f">{len(points)}H", *points)


def _text(tag: bytes, text: str) -> bytes:
    if tag == b"desc":
        ascii_text = text.encode("ascii") + b"\x00"
        return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(12) + bytes(67)
    return b"text" + bytes(4) + text.encode("ascii") + b"\x00"


def matrix_profile(
    primaries=DISPLAY_P3_PRIMARIES, white=D65, description: str = "Display P3", curve: Callable = srgb_curve
) -> bytes:
    """Return an ICC v2 RGB display profile with these primaries and white, and this tone curve."""
    white_xyz = _xyz(*white)
    columns = [_xyz(*p) for p in primaries]
    matrix = [[columns[c][r] for c in range(3)] for r in range(3)]
    scale = _solve(matrix, white_xyz)
    to_xyz = [[matrix[r][c] * scale[c] for c in range(3)] for r in range(3)]
    adapted = _multiply(_adaptation(white_xyz), to_xyz)
    trc = _curve(curve)
    tags = [
        (b"desc", _text(b"desc", description)),
        (b"cprt", _text(b"cprt", "No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag([adapted[r][0] for r in range(3)])),
        (b"gXYZ", _xyz_tag([adapted[r][1] for r in range(3)])),
        (b"bXYZ", _xyz_tag([adapted[r][2] for r in range(3)])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [], b""
    shared: dict[bytes, int] = {}
    for signature, payload in tags:
        if payload not in shared:
            while (offset + len(data)) % 4:
                data += b"\x00"
            shared[payload] = offset + len(data)
            data += payload
        table.append(struct.pack(">4sII", signature, shared[payload], len(payload)))
    body = struct.pack(">I", len(tags)) + b"".join(table) + data
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + bytes(4)
        + bytes(4)
        + bytes(4)
        + bytes(8)
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50_XYZ)
        + b"lcms"
        + bytes(44)
    )
    assert len(header) == 128
    return header + body


# ITU-T H.273 code points of an nclx colour box (HEIC, AVIF) that an ICC matrix/TRC profile can express.
_NCLX_PRIMARIES = {
    1: (SRGB_PRIMARIES, "BT.709"),
    9: (BT2020_PRIMARIES, "BT.2020"),
    12: (DISPLAY_P3_PRIMARIES, "P3-D65"),
}
_NCLX_TRANSFERS = {13: (srgb_curve, "sRGB"), 1: (bt709_curve, "BT.709"), 6: (bt709_curve, "BT.709")}
_NCLX_TRANSFERS |= {14: _NCLX_TRANSFERS[1], 15: _NCLX_TRANSFERS[1]}


@lru_cache(maxsize=16)
def nclx_profile(primaries: int, transfer: int) -> bytes | None:
    """Return an ICC profile for an nclx colour description, or None for sRGB, unspecified or HDR (PQ, HLG)."""
    if primaries in (1, 2) and transfer in (1, 2, 6, 13, 14, 15):
        return None  # sRGB, or near enough that an untagged file is read the same way
    space, curve = _NCLX_PRIMARIES.get(primaries), _NCLX_TRANSFERS.get(13 if transfer == 2 else transfer)
    if space is None or curve is None:
        return None
    return matrix_profile(space[0], D65, f"{space[1]} primaries, {curve[1]} transfer (from nclx)", curve[0])
