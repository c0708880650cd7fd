"""Hostile and broken image files, generated here (no stored samples), with what Tileflow must do with each.

`CORPUS` maps a name to a `Specimen`: the file's bytes, the name it is uploaded under (never trusted:
formats are told by content), and the expected outcome:

- `refused`: a 4xx before any execution exists, the error containing `reason`;
- `failed`: accepted at upload (the header is fine), the run then fails with `reason`;
- `runs`: the run succeeds, and the result equals `reference(bytes)` computed by Pillow on the whole image.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageOps

from tests.runtime.pictures import photo_like


@dataclass(frozen=True)
class Specimen:
    data: bytes
    filename: str
    outcome: str  # "refused" | "failed" | "runs"
    reason: str = ""
    status: int = 400
    reference: Callable[[bytes], Image.Image] | None = None


def _save(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_chunk(png: bytes, chunk: bytes) -> bytes:
    """Insert `chunk` right after IHDR (8-byte signature, then 25 bytes of IHDR)."""
    return png[:33] + chunk + png[33:]


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width`x`height` RGB, with one tiny IDAT and IEND: a bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png_with_cut_image_data(png: bytes, fraction: float) -> bytes:
    """The PNG with its (single) IDAT chunk cut to `fraction` of its data, chunks and IEND intact."""
    start = png.index(b"IDAT") - 4
    length = int.from_bytes(png[start : start + 4], "big")
    data = png[start + 8 : start + 8 + length]
    return png[:start] + _chunk(b"IDAT", data[: int(length * fraction)]) + _chunk(b"IEND", b"")


def _jpeg_header_claiming(width: int, height: int) -> bytes:
    """A real small JPEG with its SOF0 size fields rewritten to `width`x`height`."""
    data = bytearray(_save(photo_like(16, 16, "RGB", 3), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _exif_with_orientation(value: object) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def _jpeg_with_raw_orientation(value: int) -> bytes:
    """A JPEG whose EXIF orientation tag holds `value` (a SHORT), whatever it is."""
    return _save(photo_like(120, 80, "RGB", 5), "JPEG", quality=90, exif=_exif_with_orientation(value))


def _animated_gif() -> bytes:
    frames = [photo_like(90, 60, "RGB", seed).convert("P", palette=Image.Palette.ADAPTIVE) for seed in (1, 2, 3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _reference_oriented(data: bytes) -> Image.Image:
    """What the identity flow must give: the first frame, EXIF orientation applied, in RGB."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")


def _reference_unrotated(data: bytes) -> Image.Image:
    """What the identity flow must give when the orientation value is invalid: the pixels as stored."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB")


def _reference_16bit_gray(data: bytes) -> Image.Image:
    """A 16-bit grayscale PNG keeps the high byte of each sample (Pillow's convert("L") would clip to white)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == "I;16", image.mode  # little-endian samples: the high byte is the second
        return Image.frombytes("L", image.size, image.tobytes()[1::2])


def _truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


@cache
def corpus() -> dict[str, Specimen]:
    """Return every specimen, built once per test session."""
    jpeg = _save(photo_like(900, 900, "RGB", 11), "JPEG", quality=92)
    png = _save(photo_like(300, 200, "RGB", 12), "PNG")
    small_png = _save(photo_like(40, 30, "RGB", 13), "PNG")
    bomb_text = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)  # 64 MB of text in ~64 KB
    svg = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<rect width="100" height="100" fill="red"/></svg>'
    )
    cmyk = _save(photo_like(160, 120, "RGB", 14).convert("CMYK"), "JPEG", quality=95)
    gray16 = Image.frombytes(
        "I;16",
        (64, 48),
        bytes(
            ((x * 7 + y * 5) * 97 % 65536).to_bytes(2, "little")[i]
            for y in range(48)
            for x in range(64)
            for i in (0, 1)
        ),
    )
    rgb16_png = _rgb16_png(48, 32)
    return {
        "zero-bytes": Specimen(b"", "empty.jpg", "refused", "empty"),
        "not-an-image": Specimen(
            b"just some words, certainly not pixels\n" * 20,
            "words.png",
            "refused",
            "not an image in an accepted format",
        ),
        "truncated-jpeg": Specimen(_truncated(jpeg, 0.3), "cut.jpg", "refused", "truncated"),
        "jpeg-without-end-marker": Specimen(jpeg[:-2], "no-end.jpg", "refused", "no end-of-image marker"),
        "truncated-bmp": Specimen(
            _truncated(_save(photo_like(300, 200, "RGB", 14), "BMP"), 0.5), "cut.bmp", "failed", "truncated"
        ),
        "truncated-jpeg-header": Specimen(jpeg[:300], "cut-header.jpg", "refused", "damaged or truncated"),
        "truncated-png": Specimen(_truncated(png, 0.5), "cut.png", "refused", "truncated"),
        # Issue 10: 631 bytes declaring 12000x12000, its scan stopping early but closed by an end-of-image marker.
        "jpeg-144-mp-in-600-bytes": Specimen(_jpeg_header_claiming(12_000, 12_000), "tiny.jpg", "refused", "truncated"),
        "jpeg-cut-then-end-marker": Specimen(
            _truncated(jpeg, 0.03) + b"\xff\xd9", "cut-eoi.jpg", "failed", "premature end of data", status=422
        ),
        "png-image-data-cut-then-iend": Specimen(
            _png_with_cut_image_data(png, 0.05), "cut-idat.png", "failed", "truncated"
        ),
        "png-10000x10000-in-100-bytes": Specimen(
            _png_header_claiming(10_000, 10_000), "tiny.png", "refused", "cannot inflate"
        ),
        "png-claims-100000x100000": Specimen(
            _png_header_claiming(100_000, 100_000), "bomb.png", "refused", "limit of 150000000 pixels"
        ),
        "jpeg-claims-65000x65000": Specimen(
            _jpeg_header_claiming(65_000, 65_000), "bomb.jpg", "refused", "limit of 150000000 pixels"
        ),
        "png-huge-ztxt": Specimen(
            _png_with_chunk(small_png, _chunk(b"zTXt", b"Comment\x00\x00" + bomb_text)),
            "ztxt.png",
            "refused",
            "damaged or truncated",
        ),
        "png-huge-iccp": Specimen(
            _png_with_chunk(small_png, _chunk(b"iCCP", b"icc\x00\x00" + bomb_text)),
            "iccp.png",
            "refused",
            "damaged or truncated",
        ),
        "animated-gif": Specimen(_animated_gif(), "moving.gif", "runs", reference=_reference_oriented),
        "svg": Specimen(svg, "vector.png", "refused", "not an image in an accepted format"),
        "svg-named-svg": Specimen(svg, "vector.svg", "refused", "not an image in an accepted format"),
        "ico": Specimen(
            _save(photo_like(32, 32, "RGB", 15), "ICO"), "icon.png", "refused", "not an image in an accepted format"
        ),
        "pdf": Specimen(
            _save(photo_like(32, 32, "RGB", 16), "PDF"), "doc.jpg", "refused", "not an image in an accepted format"
        ),
        "jpeg-named-svg": Specimen(
            _save(photo_like(64, 48, "RGB", 17), "JPEG", quality=90),
            "picture.svg",
            "runs",
            reference=_reference_oriented,
        ),
        "cmyk-jpeg": Specimen(cmyk, "cmyk.jpg", "runs", reference=_reference_oriented),
        "16-bit-gray-png": Specimen(_save(gray16, "PNG"), "gray16.png", "runs", reference=_reference_16bit_gray),
        "16-bit-rgb-png": Specimen(rgb16_png, "rgb16.png", "runs", reference=_reference_oriented),
        "exif-orientation-0": Specimen(_jpeg_with_raw_orientation(0), "o0.jpg", "runs", reference=_reference_unrotated),
        "exif-orientation-9": Specimen(_jpeg_with_raw_orientation(9), "o9.jpg", "runs", reference=_reference_unrotated),
        "exif-orientation-65535": Specimen(
            _jpeg_with_raw_orientation(65535), "o65535.jpg", "runs", reference=_reference_unrotated
        ),
        "exif-orientation-6": Specimen(_jpeg_with_raw_orientation(6), "o6.jpg", "runs", reference=_reference_oriented),
        "exif-garbage": Specimen(_jpeg_with_garbage_exif(), "garbage-exif.jpg", "runs", reference=_reference_unrotated),
    }


def _rgb16_png(width: int, height: int) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow does not write them)."""
    rows = b"".join(
        b"\x00" + b"".join(struct.pack(">HHH", x * 1300, y * 2000, (x + y) * 650) for x in range(width))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _jpeg_with_garbage_exif() -> bytes:
    """A JPEG whose APP1 Exif segment is 200 bytes of noise after the Exif header."""
    data = _save(photo_like(100, 70, "RGB", 18), "JPEG", quality=90)
    noise = bytes((i * 151 + 7) % 256 for i in range(200))
    payload = b"Exif\x00\x00" + noise
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]
