"""A plain HTTP client that sees a chunked body as it arrives (the test client would buffer it)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit


def multipart(files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """Return a multipart/form-data body of `files` (field -> (filename, data)) and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 120) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.headers = headers or {}
        self.timeout = timeout

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, payload=None) -> tuple[int, dict]:
        body = json.dumps(payload).encode() if payload is not None else None
        status, _, data = self.request(method, path, body, {"Content-Type": "application/json"})
        return status, json.loads(data) if data else {}

    def upload(self, path: str, data: bytes, name: str = "photo.jpg") -> tuple[int, dict[str, str], bytes]:
        body, content_type = multipart({"image": (name, data)})
        return self.request("POST", path, body, {"Content-Type": content_type})

    def stream(
        self,
        path: str,
        data: bytes,
        *,
        stop_after: int | None = None,
    ) -> Iterator[tuple[float, int, dict[str, str], bytes]]:
        """POST an upload and yield (seconds since the request was sent, status, headers, chunk) per chunk."""
        body, content_type = multipart({"image": ("photo.jpg", data)})
        connection = self.connection()
        try:
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={**self.headers, "Content-Type": content_type})
            response = connection.getresponse()
            headers = dict(response.getheaders())
            count = 0
            while True:
                chunk = response.read1(1 << 20)
                if not chunk:
                    return
                count += 1
                yield time.perf_counter() - started, response.status, headers, chunk
                if stop_after is not None and count >= stop_after:
                    return
        finally:
            connection.close()


def wait_status(client: Client, execution_id: str, wanted: set[str], timeout: float = 60) -> dict:
    """Poll the API until the execution's status is one of `wanted`; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, execution = client.json("GET", f"/api/executions/{execution_id}")
        assert status == 200, execution
        if execution["status"] in wanted:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} still {execution['status']}, not one of {sorted(wanted)}")
