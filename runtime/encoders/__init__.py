"""Streaming encoders for the output step: PNG and JPEG band by band, WebP buffered."""

from __future__ import annotations

from runtime.encoders.base import Encoder
from runtime.encoders.jpeg import JpegEncoder
from runtime.encoders.png import PngEncoder
from runtime.encoders.webp import WebpEncoder
from runtime.tiles import Size

FORMATS = ("png", "jpeg", "webp")

__all__ = ["FORMATS", "Encoder", "JpegEncoder", "PngEncoder", "WebpEncoder", "make_encoder"]


def make_encoder(format: str, size: Size, mode: str, quality: int = 85) -> Encoder:
    """Return a fresh encoder for the output `format` ("png", "jpeg" or "webp"); PNG ignores `quality`."""
    if format == "png":
        return PngEncoder(size, mode)
    if format == "jpeg":
        return JpegEncoder(size, mode, quality)
    if format == "webp":
        return WebpEncoder(size, mode, quality)
    raise ValueError(f"unknown output format {format!r}; expected one of {', '.join(FORMATS)}")
