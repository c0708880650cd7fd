"""Raw HTTP/1.1 over a socket, for requests no polite client sends: huge declared lengths, stalled bodies."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

PIECE = b"\0" * (1024 * 1024)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the moment the request's head was sent
    raw_head: bytes = field(repr=False, default=b"")

    def json(self) -> dict:
        return json.loads(self.body)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(port: int, timeout: float = 30) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_answer(sock: socket.socket, started: float, timeout: float = 30) -> Answer:
    """Read one response (with Content-Length, or to the end of the connection), skipping `100 Continue`."""
    sock.settimeout(timeout)
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError(f"the connection closed before a full answer: {data[:200]!r}")
            data += more
        raw_head, _, data = data.partition(b"\r\n\r\n")
        status = int(raw_head.split(b" ", 2)[1])
        if status != 100:
            break
    seconds = time.monotonic() - started
    headers = {}
    for line in raw_head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        return Answer(status, headers, _dechunked(sock, data), seconds, raw_head)
    length = int(headers.get("content-length", -1))
    while length < 0 or len(data) < length:
        try:
            more = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not more:
            break
        data += more
    return Answer(status, headers, data[:length] if length >= 0 else data, seconds, raw_head)


def _dechunked(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += sock.recv(65536)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("the connection closed inside a chunk")
            data += more
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
    """Send a head (and an optional body) and read the answer."""
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(head(method, path, headers) + body)
        return read_answer(sock, started)


def send_until_answered(sock: socket.socket, total: int, *, chunked: bool) -> int:
    """Send up to `total` zero bytes (as HTTP chunks, or raw) until the server answers or stops reading.

    Return the bytes sent. The answer is left unread on the socket.
    """
    sent = 0
    outgoing = memoryview(b"")
    sock.setblocking(False)
    try:
        while sent < total or outgoing:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable or not writable:  # answered, or the server has not read for 10 s
                return sent
            if not outgoing:
                piece = PIECE[: min(len(PIECE), total - sent)]
                outgoing = memoryview(b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece)
                sent += len(piece)
            try:
                outgoing = outgoing[sock.send(outgoing) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return sent
        if chunked:
            try:
                sock.send(b"0\r\n\r\n")
            except OSError:
                pass
        return sent
    finally:
        sock.setblocking(True)


def rss_bytes(pid: int) -> int:
    """Return the resident memory of process `pid` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())
