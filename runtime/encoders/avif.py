"""AVIF, buffered: libavif (AV1 by libaom) encodes a whole picture at once, in `finish`.

So its first byte comes only after the last band, and encoding is slow: at the default speed 6 a
24 MP photo takes seconds on two cores; speed 10 is several times faster for somewhat larger files.
L is stored as RGB; RGBA keeps its alpha. Pillow's AVIF writer does the YUV 4:2:0 conversion.
"""

from __future__ import annotations

import io

from PIL import Image

from runtime.encoders.base import BufferedEncoder, EncodeOptions, metadata_params
from runtime.tiles import Size

MAX_SIDE = 65536  # AV1's limit


class AvifEncoder(BufferedEncoder):
    """AVIF at `quality` (1-100) and `speed` (0-10), encoded once every band has arrived."""

    content_type = "image/avif"
    extension = "avif"
    canvas_mode = {"L": "RGB"}

    def __init__(self, size: Size, mode: str, options: EncodeOptions | None = None) -> None:
        options = options or EncodeOptions()
        if not 1 <= options.quality <= 100:
            raise ValueError(f"AVIF quality {options.quality} is not within 1..100")
        if not 0 <= options.speed <= 10:
            raise ValueError(f"AVIF speed {options.speed} is not within 0..10")
        if size.width > MAX_SIDE or size.height > MAX_SIDE:
            raise ValueError(f"AVIF cannot hold {size.width}x{size.height}: at most {MAX_SIDE} a side")
        super().__init__(size, mode, options)

    def save(self, image: Image.Image, buffer: io.BytesIO) -> None:
        params = metadata_params(self.options, image.mode)
        image.save(buffer, "AVIF", quality=self.options.quality, speed=self.options.speed, **params)
