"""What a file tells before any pixel is decoded, beyond what Pillow reports when it opens it.

- JPEG: the layout up to the first scan (where its entropy-coded data starts, progressive or not, how
  many 8x8 blocks it codes). A Huffman-coded scan spends at least 1 bit a block on its DC coefficient
  (2 with the end-of-block code of a sequential scan), so a file whose data after its first scan is
  shorter than that is truncated, whatever markers it ends with: a 631-byte file declaring
  12000x12000 is refused here instead of decoding 144 MP of grey filler. A cut that leaves more bytes
  than that bound is caught while decoding (`runtime.decode`) for a sequential JPEG. A progressive one
  codes each coefficient over several scans (successive approximation): every scan is walked, and a
  file whose scans stop before each coefficient they start is refined to its last bit, or before every
  component's DC, was cut (libjpeg would decode what came and fill the rest with grey).
- HEIC and AVIF: the nclx colour box (H.273 primaries and transfer), for files without an ICC profile.
- PNG: every chunk up to IEND is walked, which finds a cut file, an image stream too short to inflate
  to the declared rows (deflate never expands more than 1032:1), and the EXIF and XMP that
  `ImageOps.exif_transpose` reads: an `eXIf` chunk, a "Raw profile type exif" text chunk
  (ImageMagick), or XMP `tiff:Orientation` (exiftool), wherever they are (Pillow reads chunks after
  the image data only when it decodes).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, PngImagePlugin

ORIENTATION_TAG = 0x0112
_XMP_KEY = "XML:com.adobe.xmp"
_RAW_EXIF_KEY = "Raw profile type exif"
_XMP_ORIENTATION = re.compile(r'tiff:Orientation(="|>)([0-9])')
_DEFLATE_MAX_RATIO = 1032
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Markers without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xDA)}
_SOS = 0xDA


class ImageRejected(ValueError):
    """The upload is not an image Tileflow accepts; `reason` says why, for the person who sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageDamaged(ImageRejected):
    """An image of a format Tileflow reads whose data is damaged or cut short (not a file that is no image)."""


@dataclass(frozen=True, slots=True)
class JpegLayout:
    scan_start: int  # offset of the first scan's entropy-coded data
    progressive: bool
    arithmetic: bool
    blocks: int  # 8x8 blocks of all components (without MCU padding)


def jpeg_layout(file: BinaryIO) -> JpegLayout:
    """Walk a JPEG's marker segments from SOI to its first scan."""
    file.seek(2)
    frame: tuple[int, int, int, list[tuple[int, int]]] | None = None
    while True:
        marker = _next_marker(file)
        if marker in _STANDALONE:
            continue
        length_bytes = file.read(2)
        if len(length_bytes) < 2:
            raise ImageDamaged("the image header is damaged or truncated (no scan)")
        length = int.from_bytes(length_bytes, "big")
        segment_end = file.tell() + length - 2
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and frame is None:
            data = file.read(length - 2)
            if len(data) < 6:
                raise ImageDamaged("the image header is damaged or truncated (short frame header)")
            height, width, count = struct.unpack(">HHB", data[1:6])
            sampling = [(data[7 + 3 * i] >> 4, data[7 + 3 * i] & 15) for i in range(count) if 8 + 3 * i < len(data)]
            frame = (marker, width, height, sampling)
        if marker == _SOS:
            if frame is None:
                raise ImageDamaged("the image header is damaged or truncated (a scan before its frame)")
            kind, width, height, sampling = frame
            progressive = kind in (0xC2, 0xC6, 0xCA, 0xCE)
            return JpegLayout(segment_end, progressive, kind >= 0xC9, _blocks(width, height, sampling))
        file.seek(segment_end)


def _next_marker(file: BinaryIO) -> int:
    byte = file.read(1)
    while byte and byte != b"\xff":
        byte = file.read(1)
    while byte == b"\xff":
        byte = file.read(1)
    if not byte:
        raise ImageDamaged("the image header is damaged or truncated (no scan)")
    return byte[0]


def _blocks(width: int, height: int, sampling: list[tuple[int, int]]) -> int:
    if not sampling:
        return 0
    h_max = max(h for h, _ in sampling) or 1
    v_max = max(v for _, v in sampling) or 1
    total = 0
    for h, v in sampling:
        component_width, component_height = -(-width * h // h_max), -(-height * v // v_max)
        total += -(-component_width // 8) * -(-component_height // 8)
    return total


def check_jpeg_data(file: BinaryIO, layout: JpegLayout, size: tuple[int, int]) -> None:
    """Refuse a JPEG whose data after its first scan header is too short for its blocks, or has no end."""
    end = file.seek(0, os.SEEK_END)
    if not _has_end_marker(file, layout.scan_start, end):
        raise ImageDamaged("the JPEG file is truncated (it has no end-of-image marker)")
    if layout.arithmetic:
        return  # arithmetic coding has no per-block minimum
    needed_bits = layout.blocks * (1 if layout.progressive else 2)
    available = end - layout.scan_start
    if available * 8 < needed_bits:
        width, height = size
        raise ImageRejected(
            f"the JPEG file is truncated: its {available} bytes of pixel data cannot hold {width}x{height} "
            f"pixels (at least {-(-needed_bits // 8)} bytes are needed)"
        )
    if layout.progressive:
        _check_progressive_scans(file, end)


# In entropy-coded data an FF is followed by 00 (a stuffed byte) or a restart marker: anything else ends it.
_SCAN_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def _check_progressive_scans(file: BinaryIO, end: int) -> None:
    """Refuse a progressive JPEG whose scans stop before its coefficients are whole (it was cut, then closed).

    Each (component, coefficient) a scan starts (Ah = 0) must be refined down to Al = 0 by later scans,
    and every component of the frame needs its DC: what a cut file misses, its last scans.
    """
    file.seek(0)
    data = file.read(end)
    components: list[int] = []
    lowest: dict[tuple[int, int], int] = {}  # (component, coefficient) -> the lowest bit sent so far
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break  # junk after the image's end: nothing more to read
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == 0xD9:
            break
        if marker in _STANDALONE:
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment = data[position + 4 : position + 2 + length]
        position += 2 + length
        if marker in (0xC2, 0xC6) and len(segment) >= 6 and not components:
            count = segment[5]
            components = [segment[6 + 3 * i] for i in range(count) if 6 + 3 * i < len(segment)]
        elif marker == _SOS and segment:
            _record_scan(segment, lowest)
            found = _SCAN_END.search(data, position)
            if found is None:
                break
            position = found.end() - 2
    missing = [c for c in components if (c, 0) not in lowest]
    unrefined = sum(1 for bit in lowest.values() if bit > 0)
    if missing or unrefined:
        what = "the DC of a component" if missing else f"{unrefined} coefficient bands at their last bits"
        raise ImageDamaged(f"the JPEG file is truncated: its progressive scans end before the image is whole ({what})")


def _record_scan(header: bytes, lowest: dict[tuple[int, int], int]) -> None:
    count = header[0]
    if len(header) < 1 + 2 * count + 3:
        raise ImageDamaged("the image header is damaged or truncated (short scan header)")
    ids = [header[1 + 2 * i] for i in range(count)]
    start, stop, bits = header[1 + 2 * count], header[2 + 2 * count], header[3 + 2 * count]
    high, low = bits >> 4, bits & 15
    for component in ids:
        for k in range(start, min(stop, 63) + 1):
            key = (component, k)
            if high == 0:
                lowest.setdefault(key, low)
            elif lowest.get(key) == high:
                lowest[key] = low


def cut_before_its_end(file: BinaryIO, scan_start: int) -> bool:
    """Tell whether a whole JPEG file (a seekable file of its own) has no end-of-image marker after its first scan."""
    return not _has_end_marker(file, scan_start, file.seek(0, os.SEEK_END))


def _has_end_marker(file: BinaryIO, scan_start: int, end: int) -> bool:
    """Tell whether an end-of-image marker (FF D9) follows the first scan: a cut file has none.

    Entropy-coded data never holds FF D9 (an FF there is followed by 00 or a restart marker), so
    only truncation removes it. A whole file has it in its last bytes: the common case reads 64 KB.
    """
    position = end
    while position > scan_start:
        start = max(scan_start, position - (64 << 10 if position == end else 1 << 20))
        file.seek(start)
        if b"\xff\xd9" in file.read(position - start + (1 if position < end else 0)):
            return True
        position = start
    return False


@dataclass(frozen=True, slots=True)
class PngFacts:
    orientation: int
    exif: bytes | None  # the EXIF block (eXIf chunk, else the raw profile's), "Exif\0\0" prefix removed
    xmp: bytes | None


def png_facts(file: BinaryIO) -> PngFacts:
    """Walk the PNG's chunks up to IEND: truncation, and the EXIF and XMP `exif_transpose` would read."""
    end = file.seek(0, os.SEEK_END)
    file.seek(8)
    exif: bytes | None = None
    raw_exif: str | None = None
    xmp: str | None = None
    image_data = 0
    ihdr = b""
    while True:
        head = file.read(8)
        if len(head) < 8:
            raise ImageDamaged("the PNG file is truncated (no IEND chunk)")
        length, kind = int.from_bytes(head[:4], "big"), head[4:]
        chunk_end = file.tell() + length + 4
        if chunk_end > end:
            raise ImageDamaged(f"the PNG file is truncated (inside a {kind.decode('latin-1')} chunk)")
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            image_data += length
        elif kind == b"IHDR":
            ihdr = file.read(length)
        elif kind == b"eXIf":
            exif = file.read(length)
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, text = _png_text(kind, file.read(length))
            if key == _RAW_EXIF_KEY:
                raw_exif = text
            elif key == _XMP_KEY:
                xmp = text
        file.seek(chunk_end)
    _check_png_data(ihdr, image_data)
    if exif is None and raw_exif is not None:
        try:
            exif = bytes.fromhex("".join(raw_exif.split("\n")[3:]))
        except ValueError:
            exif = None
    if exif is not None and exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    return PngFacts(_orientation_of(exif, xmp), exif, xmp.encode("utf-8") if xmp is not None else None)


def _png_text(kind: bytes, data: bytes) -> tuple[str, str | None]:
    """Return (key, text) of a text chunk; text None when it cannot be read as Pillow would."""
    key, _, rest = data.partition(b"\x00")
    name = key.decode("latin-1")
    if name not in (_RAW_EXIF_KEY, _XMP_KEY):
        return name, None
    try:
        if kind == b"tEXt":
            return name, rest.decode("latin-1")
        if kind == b"zTXt":
            return name, _inflate_text(rest[1:]).decode("latin-1", "replace")
        compressed, rest = rest[0], rest[2:]
        _language, _translated, text = rest.split(b"\x00", 2)
        return name, (_inflate_text(text) if compressed else text).decode("utf-8")
    except (ValueError, zlib.error, UnicodeError, IndexError):
        return name, None


def _inflate_text(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, PngImagePlugin.MAX_TEXT_CHUNK)
    if inflater.unconsumed_tail:
        raise ImageDamaged("the image header is damaged or truncated (Decompressed data too large for a text chunk)")
    return text


def _check_png_data(ihdr: bytes, image_data: int) -> None:
    """Refuse a PNG whose image data cannot inflate to its rows, however its chunks end."""
    if len(ihdr) < 10:
        return  # Pillow has read this header already; nothing more to learn
    width, height, depth, color_type = struct.unpack(">IIBB", ihdr[:10])
    pixel_bits = depth * _PNG_CHANNELS.get(color_type, 1)
    # Filter bytes and pixels: a lower bound of the inflated size, interlaced or not.
    inflated = height + width * height * pixel_bits // 8
    if image_data * _DEFLATE_MAX_RATIO < inflated:
        raise ImageRejected(
            f"the PNG file is truncated: its {image_data} bytes of image data cannot inflate to {width}x{height} pixels"
        )


def _orientation_of(exif_data: bytes | None, xmp: str | None) -> int:
    """Return the orientation `ImageOps.exif_transpose` honours: EXIF's, else XMP's, 1 unless 2..8."""
    exif = Image.Exif()
    if exif_data:
        try:
            exif.load(exif_data)
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, EOFError, struct.error):
            return 1
    if ORIENTATION_TAG in exif:
        return valid_orientation(exif[ORIENTATION_TAG])
    if xmp:
        match = _XMP_ORIENTATION.search(xmp)
        if match:
            return valid_orientation(int(match[2]))
    return 1


def exif_orientation(image: Image.Image) -> int:
    """Return the EXIF (or XMP) orientation of an opened image as `ImageOps.exif_transpose` honours it."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, EOFError, struct.error):
        return 1
    return valid_orientation(value)


def valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # boxes to descend into, and the bytes before their children


def isobmff_nclx(file: BinaryIO) -> tuple[int, int] | None:
    """Return (colour primaries, transfer characteristics) of the first nclx `colr` box of a HEIF/AVIF file."""
    end = file.seek(0, os.SEEK_END)
    return _find_nclx(file, 0, end, depth=0)


def _find_nclx(file: BinaryIO, start: int, end: int, depth: int) -> tuple[int, int] | None:
    position = start
    while position + 8 <= end and depth < 4:
        file.seek(position)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", file.read(8))[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            return None
        if kind == b"colr":
            data = file.read(min(size - header, 11))
            if data[:4] == b"nclx" and len(data) >= 8:
                primaries, transfer = struct.unpack(">HH", data[4:8])
                return primaries, transfer
        elif kind in _CONTAINERS:
            found = _find_nclx(file, position + header + _CONTAINERS[kind], position + size, depth + 1)
            if found is not None:
                return found
        position += size
    return None
