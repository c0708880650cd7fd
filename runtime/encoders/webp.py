"""WebP, buffered: libwebp encodes a whole picture at once, so bands are collected and encoded in `finish`.

The first byte of a WebP result therefore comes only after the last band. L is stored as RGB (WebP has
no gray format); RGBA keeps its alpha.
"""

from __future__ import annotations

import io

from PIL import Image

from runtime.encoders.base import Encoder
from runtime.tiles import Size


class WebpEncoder(Encoder):
    """Lossy WebP at `quality`, encoded once every band has arrived."""

    content_type = "image/webp"
    extension = "webp"

    def __init__(self, size: Size, mode: str, quality: int = 85) -> None:
        super().__init__(size, mode)
        if not 1 <= quality <= 100:
            raise ValueError(f"WebP quality {quality} is not within 1..100")
        if size.width > 16383 or size.height > 16383:
            raise ValueError(f"WebP cannot hold {size.width}x{size.height}: at most 16383 a side")
        self.quality = quality
        self._canvas = Image.new("RGB" if mode == "L" else mode, (size.width, size.height))

    def header(self) -> bytes:
        return b""

    def encode_band(self, image: Image.Image) -> bytes:
        y0 = self.rows_received
        self._canvas.paste(self._accept(image), (0, y0))
        return b""

    def finish(self) -> bytes:
        self._check_complete()
        buffer = io.BytesIO()
        self._canvas.save(buffer, "WEBP", quality=self.quality)
        self._canvas = Image.new(self._canvas.mode, (1, 1))
        return buffer.getvalue()
