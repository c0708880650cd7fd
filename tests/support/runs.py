"""Helpers for tests that run flows: example graphs, uploads, a fresh channel layer."""

from __future__ import annotations

import io

from django.test import AsyncClient
from PIL import Image

from tests.runtime.pictures import photo_like

COMPRESS_AND_WATERMARK = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "mark", "type": "watermark", "params": {"text": "© ACME", "opacity": 0.5, "position": "bottom-right"}},
        {"id": "out", "type": "output", "params": {"format": "jpeg", "quality": 85}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "mark"}, {"from": "mark", "to": "out"}],
}


def image_bytes(width: int, height: int, format: str = "JPEG", mode: str = "RGB", seed: int = 7, **save) -> bytes:
    buffer = io.BytesIO()
    image = photo_like(width, height, mode, seed)
    image.save(buffer, format=format, **({"quality": 92} if format == "JPEG" else {}) | save)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class TokenClient(AsyncClient):
    """An AsyncClient that sends a bearer token with every request (its `headers=` default does not)."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    def generic(self, method, path, *args, headers=None, **kwargs):
        return super().generic(method, path, *args, headers={**self._auth, **(headers or {})}, **kwargs)
