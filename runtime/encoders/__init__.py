"""Encoders for the output step: PNG and baseline JPEG stream band by band; progressive JPEG, WebP, AVIF buffer."""

from __future__ import annotations

from runtime.encoders.avif import AvifEncoder
from runtime.encoders.base import EncodeOptions, Encoder
from runtime.encoders.jpeg import JpegEncoder, ProgressiveJpegEncoder
from runtime.encoders.png import PngEncoder
from runtime.encoders.webp import WebpEncoder
from runtime.tiles import Size

FORMATS = ("png", "jpeg", "webp", "avif")

__all__ = [
    "FORMATS",
    "AvifEncoder",
    "EncodeOptions",
    "Encoder",
    "JpegEncoder",
    "PngEncoder",
    "ProgressiveJpegEncoder",
    "WebpEncoder",
    "make_encoder",
]


def make_encoder(
    format: str, size: Size, mode: str, quality: int = 85, *, options: EncodeOptions | None = None
) -> Encoder:
    """Return a fresh encoder for the output `format`; `options` (else just `quality`) say how it encodes."""
    options = options or EncodeOptions(quality=quality)
    if format == "png":
        return PngEncoder(size, mode, options=options)
    if format == "jpeg":
        if options.progressive:
            return ProgressiveJpegEncoder(size, mode, options)
        return JpegEncoder(size, mode, options=options)
    if format == "webp":
        return WebpEncoder(size, mode, options=options)
    if format == "avif":
        return AvifEncoder(size, mode, options)
    raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(FORMATS)}")
