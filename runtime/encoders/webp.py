"""WebP, buffered: libwebp encodes a whole picture at once, so bands are collected and encoded in `finish`.

The first byte of a WebP result therefore comes only after the last band. L is stored as RGB (WebP has
no gray format); RGBA keeps its alpha.
"""

from __future__ import annotations

import io

from PIL import Image

from runtime.encoders.base import BufferedEncoder, EncodeOptions, metadata_params
from runtime.tiles import Size

MAX_SIDE = 16383


class WebpEncoder(BufferedEncoder):
    """Lossy WebP at `quality`, encoded once every band has arrived."""

    content_type = "image/webp"
    extension = "webp"
    canvas_mode = {"L": "RGB"}

    def __init__(self, size: Size, mode: str, quality: int = 85, options: EncodeOptions | None = None) -> None:
        options = options or EncodeOptions(quality=quality)
        if not 1 <= options.quality <= 100:
            raise ValueError(f"WebP quality {options.quality} is not within 1..100")
        if size.width > MAX_SIDE or size.height > MAX_SIDE:
            raise ValueError(f"WebP cannot hold {size.width}x{size.height}: at most {MAX_SIDE} a side")
        super().__init__(size, mode, options)
        self.quality = options.quality

    def save(self, image: Image.Image, buffer: io.BytesIO) -> None:
        image.save(buffer, "WEBP", quality=self.quality, **metadata_params(self.options, image.mode))
