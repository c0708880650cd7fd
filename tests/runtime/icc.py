"""ICC profiles for tests: a Display P3 profile built here (Debian ships none), and Debian's own profiles.

`matrix_profile` writes an ICC v2 display profile of the matrix/TRC kind: the primaries' XYZ adapted
to the D50 connection space with the Bradford transform, a D50 white point, and the sRGB tone curve
sampled as a 1024-entry `curv` on each channel.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

D65 = (0.3127, 0.3290)
D50_XYZ = (0.9642, 1.0, 0.8249)
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))

DEBIAN_PROFILES = Path("/usr/share/color/icc")


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


def _srgb_curve() -> bytes:
    def encode(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    points = [round(encode(i / 1023) * 65535) for i in range(1024)]
    return b"curv" + bytes(4) + struct.pack(">I", len(points)) + struct.pack(f">{len(points)}H", *points)


def _text(tag: bytes, text: str) -> bytes:
    if tag == b"desc":
        ascii_text = text.encode("ascii") + b"\x00"
        return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(12) + bytes(67)
    return b"text" + bytes(4) + text.encode("ascii") + b"\x00"


def matrix_profile(primaries=DISPLAY_P3_PRIMARIES, white=D65, description: str = "Display P3") -> bytes:
    """Return an ICC v2 RGB display profile with these primaries and white, and the sRGB curve."""
    white_xyz = _xyz(*white)
    columns = [_xyz(*p) for p in primaries]
    matrix = [[columns[c][r] for c in range(3)] for r in range(3)]
    scale = _solve(matrix, white_xyz)
    to_xyz = [[matrix[r][c] * scale[c] for c in range(3)] for r in range(3)]
    adapted = _multiply(_adaptation(white_xyz), to_xyz)
    curve = _srgb_curve()
    tags = [
        (b"desc", _text(b"desc", description)),
        (b"cprt", _text(b"cprt", "No copyright, use freely")),
        (b"wtpt", _xyz_tag(D50_XYZ)),
        (b"rXYZ", _xyz_tag([adapted[r][0] for r in range(3)])),
        (b"gXYZ", _xyz_tag([adapted[r][1] for r in range(3)])),
        (b"bXYZ", _xyz_tag([adapted[r][2] for r in range(3)])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
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


@cache
def display_p3() -> bytes:
    return matrix_profile()


@cache
def adobe_rgb_like() -> bytes:
    return matrix_profile(ADOBE_RGB_PRIMARIES, description="Adobe RGB (1998) primaries, sRGB curve")


def debian_profile(name: str) -> bytes:
    """Return a profile shipped by Debian's colord-data / icc-profiles-free (see scripts/system-deps.sh)."""
    for path in DEBIAN_PROFILES.rglob(name):
        return path.read_bytes()
    raise FileNotFoundError(f"{name} not under {DEBIAN_PROFILES}: run scripts/system-deps.sh")
