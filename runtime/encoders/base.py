"""What every streaming encoder offers, and the threads they share to use every core on one band."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from PIL import Image

from runtime.images import WORKING_MODES
from runtime.tiles import Size

WORKERS = os.cpu_count() or 1


@cache
def band_pool() -> ThreadPoolExecutor:
    """Return the process-wide pool that encodes parts of a band in parallel (zlib and libjpeg drop the GIL)."""
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tileflow-encode")


class Encoder(ABC):
    """Turn full-width bands, arriving top to bottom, into the bytes of one image file, as they come."""

    content_type: str
    extension: str

    def __init__(self, size: Size, mode: str) -> None:
        if mode not in WORKING_MODES:
            raise ValueError(f"cannot encode mode {mode}")
        if size.width < 1 or size.height < 1:
            raise ValueError(f"cannot encode an empty image {size}")
        self.size = size
        self.mode = mode
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
        return image

    def _check_complete(self) -> None:
        if self.rows_received != self.size.height:
            raise ValueError(f"finish after {self.rows_received} of {self.size.height} rows")


def split_rows(height: int, parts: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Cut [0, height) into at most `parts` row ranges, each start a multiple of `multiple`."""
    units = -(-height // multiple)
    parts = max(1, min(parts, units))
    bounds = [min(height, round(units * i / parts) * multiple) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]
