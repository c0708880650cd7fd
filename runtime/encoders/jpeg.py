"""Streaming baseline JPEG: bands encoded as separate JPEGs with the same tables, stitched under one header.

Every part is saved by Pillow with the same quality, standard Huffman tables (no `optimize`), the same
subsampling (4:2:0, 4:2:2 or 4:4:4 for RGB, none for L) and a restart marker after every MCU row
(`restart_marker_rows=1`). Parts start on MCU rows (16 image rows for 4:2:0, 8 otherwise), so libjpeg
codes each MCU row exactly as in a whole-image save, and a restart marker resets the DC predictors: the
entropy data of the parts, renumbered RST0..RST7 in sequence and joined by one more marker, is byte for
byte the entropy data of Pillow's whole-image save with the same settings. The first part's header, its
SOF height patched to the full height, heads the file; it carries the ICC profile, EXIF and XMP the
output was given (Pillow's APP segments). Rows that do not fill an MCU row wait for the next band (or
`finish`). A progressive JPEG (`progressive`) is buffered and saved whole by Pillow at the end: its
scans each cover the whole image.

Alpha is dropped (`convert("RGB")`, what Pillow users do, since JPEG has no alpha channel): the colour of a
transparent pixel shows as it is stored.

Each band of a megapixel or more is cut into MCU-row ranges encoded at once on the shared pool. libjpeg
releases the GIL only when Pillow writes to a real file descriptor, so each part is saved to a memfd: for
6000x1024, q85, 8 parts,
BytesIO took 0.029 s serial / 0.025 s on 2 threads, memfd 0.024 s / 0.013 s.
"""

from __future__ import annotations

import os
import re

from PIL import Image

from runtime.encoders.base import (
    WORKERS,
    BufferedEncoder,
    EncodeOptions,
    Encoder,
    band_pool,
    metadata_params,
    split_rows,
)
from runtime.tiles import Size

_MAX_SIDE = 65535
_SOF0 = 0xC0
_SOS = 0xDA
_EOI = b"\xff\xd9"
_RST = re.compile(rb"\xff[\xd0-\xd7]")
# Below this many pixels a band is encoded in one part, on the writer's thread: a 3000x32 first band
# takes ~0.4 ms, and handing its halves to two more threads on busy cores took several.
_PARALLEL_MIN_PIXELS = 1024 * 1024


def _save_part(image: Image.Image, quality: int, subsampling: str = "4:2:0", **metadata) -> bytes:
    """Encode one part; to a memfd, since that is the path on which Pillow releases the GIL."""
    with open(os.memfd_create("tileflow-jpeg"), "w+b") as file:
        params = {"quality": quality, "restart_marker_rows": 1, "optimize": False, "progressive": False}
        if image.mode == "RGB":
            params["subsampling"] = subsampling
        image.save(file, "JPEG", **params, **metadata)
        file.seek(0)
        return file.read()


def _split_jpeg(data: bytes) -> tuple[bytes, int, bytes]:
    """Return (header up to and including SOS, offset of the SOF height, entropy-coded data)."""
    position = 2
    height_at = -1
    while position < len(data):
        if data[position] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == _SOF0:
            height_at = position + 5
        if marker == _SOS:
            end = position + 2 + length
            if height_at < 0 or not data.endswith(_EOI):
                raise ValueError("not a baseline JPEG from libjpeg")
            return data[:end], height_at, data[end : -len(_EOI)]
        position += 2 + length
    raise ValueError("JPEG without a scan")


SUBSAMPLINGS = ("4:2:0", "4:2:2", "4:4:4")


def _check(size: Size, options: EncodeOptions) -> None:
    if not 1 <= options.quality <= 100:
        raise ValueError(f"JPEG quality {options.quality} is not within 1..100")
    if options.subsampling not in SUBSAMPLINGS:
        raise ValueError(f"JPEG subsampling {options.subsampling!r} is not one of {', '.join(SUBSAMPLINGS)}")
    if size.width > _MAX_SIDE or size.height > _MAX_SIDE:
        raise ValueError(f"JPEG cannot hold {size.width}x{size.height}: at most {_MAX_SIDE} a side")


class JpegEncoder(Encoder):
    """Baseline JPEG (gray for L, YCbCr for RGB and RGBA, alpha dropped), written band by band."""

    content_type = "image/jpeg"
    extension = "jpg"

    def __init__(self, size: Size, mode: str, quality: int = 85, options: EncodeOptions | None = None) -> None:
        options = options or EncodeOptions(quality=quality)
        super().__init__(size, mode, options)
        _check(size, options)
        self.quality = options.quality
        self._subsampling = options.subsampling
        self._color_mode = "L" if mode == "L" else "RGB"
        self._mcu_height = 16 if mode != "L" and options.subsampling == "4:2:0" else 8
        self._pending: Image.Image | None = None
        self._mcu_rows_done = 0

    def header(self) -> bytes:
        blank = Image.new(self._color_mode, (self.size.width, self._mcu_height))
        metadata = metadata_params(self.options, self._color_mode)
        head, height_at, _ = _split_jpeg(_save_part(blank, self.quality, self._subsampling, **metadata))
        return head[:height_at] + self.size.height.to_bytes(2, "big") + head[height_at + 2 :]

    def encode_band(self, image: Image.Image) -> bytes:
        image = self._accept(image)
        if image.mode != self._color_mode:
            image = image.convert(self._color_mode)
        if self._pending is not None:
            joined = Image.new(self._color_mode, (image.width, self._pending.height + image.height))
            joined.paste(self._pending, (0, 0))
            joined.paste(image, (0, self._pending.height))
            image = joined
        ready = image.height - image.height % self._mcu_height
        if self.rows_received == self.size.height:
            ready = image.height
        self._pending = image.crop((0, ready, image.width, image.height)) if ready < image.height else None
        return self._encode_rows(image, ready) if ready else b""

    def finish(self) -> bytes:
        self._check_complete()
        return _EOI

    def _encode_rows(self, image: Image.Image, rows: int) -> bytes:
        ranges = split_rows(rows, WORKERS if rows * image.width >= _PARALLEL_MIN_PIXELS else 1, self._mcu_height)
        parts = [image.crop((0, y0, image.width, y1)) for y0, y1 in ranges]
        count = len(parts)
        if count > 1:
            encoded = list(band_pool().map(_save_part, parts, [self.quality] * count, [self._subsampling] * count))
        else:
            encoded = [_save_part(parts[0], self.quality, self._subsampling)]
        out = []
        for (y0, y1), data in zip(ranges, encoded, strict=True):
            entropy = _split_jpeg(data)[2]
            first = self._mcu_rows_done
            if first:
                out.append(bytes((0xFF, 0xD0 + (first - 1) % 8)))
            out.append(_RST.sub(lambda m, shift=first: bytes((0xFF, 0xD0 + (m[0][1] - 0xD0 + shift) % 8)), entropy))
            self._mcu_rows_done += -(-(y1 - y0) // self._mcu_height)
        return b"".join(out)


class ProgressiveJpegEncoder(BufferedEncoder):
    """Progressive JPEG: every scan covers the whole image, so bands are collected and saved at the end."""

    content_type = "image/jpeg"
    extension = "jpg"
    canvas_mode = {"RGBA": "RGB"}

    def __init__(self, size: Size, mode: str, options: EncodeOptions) -> None:
        _check(size, options)
        super().__init__(size, mode, options)

    def save(self, image: Image.Image, buffer) -> None:
        params = {"quality": self.options.quality, "progressive": True, **metadata_params(self.options, image.mode)}
        if image.mode == "RGB":
            params["subsampling"] = self.options.subsampling
        image.save(buffer, "JPEG", **params)
