"""What every streaming encoder offers, and the threads they share to use every core on one band."""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image

from runtime.colour import profile_space
from runtime.images import WORKING_MODES
from runtime.tiles import Size

WORKERS = os.cpu_count() or 1


@cache
def band_pool() -> ThreadPoolExecutor:
    """Return the process-wide pool that encodes parts of a band in parallel (zlib and libjpeg drop the GIL)."""
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tileflow-encode")


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """Everything an output node asks of its encoder besides size and mode (see `runtime.steps.output`)."""

    quality: int = 85  # JPEG, WebP, AVIF
    progressive: bool = False  # JPEG
    subsampling: str = "4:2:0"  # JPEG colour
    compression: int = 6  # PNG zlib level
    speed: int = 6  # AVIF encoder speed, 0 (slowest, smallest) to 10
    icc_profile: bytes | None = None  # embedded as is
    srgb: bool = False  # tagged sRGB (PNG: an sRGB chunk instead of the profile)
    exif: bytes | None = None  # "Exif\0\0" and the TIFF-structured block
    xmp: bytes | None = None
    convert: Callable[[Image.Image], Image.Image] | None = None  # colour conversion of each band


class Encoder(ABC):
    """Turn full-width bands, arriving top to bottom, into the bytes of one image file, as they come."""

    content_type: str
    extension: str

    def __init__(self, size: Size, mode: str, options: EncodeOptions | None = None) -> None:
        if mode not in WORKING_MODES:
            raise ValueError(f"cannot encode mode {mode}")
        if size.width < 1 or size.height < 1:
            raise ValueError(f"cannot encode an empty image {size}")
        self.size = size
        self.mode = mode
        self.options = options or EncodeOptions()
        self.rows_received = 0

    @abstractmethod
    def header(self) -> bytes:
        """Return the bytes that open the file; call once, before the first band."""

    @abstractmethod
    def encode_band(self, image: Image.Image) -> bytes:
        """Return the bytes for the next band of rows (may be empty while the encoder buffers)."""

    @abstractmethod
    def finish(self) -> bytes:
        """Return the bytes that close the file; call once, after the last band."""

    def _accept(self, image: Image.Image) -> Image.Image:
        """Check that `image` is the next full-width band in this encoder's mode."""
        if image.width != self.size.width:
            raise ValueError(f"band is {image.width} wide, the image {self.size.width}")
        if self.rows_received + image.height > self.size.height:
            raise ValueError(f"band of {image.height} rows overflows the image height {self.size.height}")
        if image.mode != self.mode:
            raise ValueError(f"band is {image.mode}, the encoder expects {self.mode}")
        self.rows_received += image.height
        return self.options.convert(image) if self.options.convert is not None else image

    def _check_complete(self) -> None:
        if self.rows_received != self.size.height:
            raise ValueError(f"finish after {self.rows_received} of {self.size.height} rows")


def split_rows(height: int, parts: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Cut [0, height) into at most `parts` row ranges, each start a multiple of `multiple`."""
    units = -(-height // multiple)
    parts = max(1, min(parts, units))
    bounds = [min(height, round(units * i / parts) * multiple) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def metadata_params(options: EncodeOptions, mode: str) -> dict[str, Any]:
    """Return Pillow `save` params for the options' ICC profile (when it fits `mode`), EXIF and XMP."""
    params: dict[str, Any] = {}
    icc = options.icc_profile
    if icc and (profile_space(icc) == "GRAY") == (mode == "L"):
        params["icc_profile"] = icc
    if options.exif:
        params["exif"] = options.exif
    if options.xmp:
        params["xmp"] = options.xmp
    return params


class BufferedEncoder(Encoder):
    """An encoder whose library takes a whole picture: bands are collected, the file made in `finish`."""

    canvas_mode: dict[str, str] = {}  # the encoder's mode for a working mode, when they differ

    def __init__(self, size: Size, mode: str, options: EncodeOptions | None = None) -> None:
        super().__init__(size, mode, options)
        self._canvas = Image.new(self.canvas_mode.get(mode, mode), (size.width, size.height))

    def header(self) -> bytes:
        return b""

    def encode_band(self, image: Image.Image) -> bytes:
        y0 = self.rows_received
        self._canvas.paste(self._accept(image), (0, y0))
        return b""

    def finish(self) -> bytes:
        self._check_complete()
        buffer = io.BytesIO()
        self.save(self._canvas, buffer)
        self._canvas = Image.new(self._canvas.mode, (1, 1))
        return buffer.getvalue()

    @abstractmethod
    def save(self, image: Image.Image, buffer: io.BytesIO) -> None:
        """Encode the whole picture into `buffer`."""
