"""Helpers for tests that run flows: example graphs, uploads, a fresh channel layer."""

from __future__ import annotations

import asyncio
import io
import time

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


def upload(data: bytes, name: str = "photo.jpg"):
    """Return `data` as the multipart file a client would send."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


async def wait_finished(http: TokenClient, execution_id: str, timeout: float = 60) -> dict:
    """Poll the API until the execution has ended; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} still {body['status']} after {timeout} s")


async def read_stream(response) -> bytes:
    """Return the whole body of a streaming test-client response, async or not."""
    content = response.streaming_content
    if hasattr(content, "__aiter__"):
        return b"".join([chunk async for chunk in content])
    return b"".join(content)
