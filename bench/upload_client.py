"""A raw-socket HTTP client that sends a request body at a set rate while it reads the answer, as curl does.

`paced_upload` sends the headers, then the body in small pieces paced to `rate` bytes a second, while a
thread records every piece of the answer with its arrival time. From the log it tells when the first
byte of the answer's body arrived, when the last did, and when the last request byte left, so a
server that answers while the upload is still arriving shows it. `stop_after` sends only that many
body bytes and then closes the connection (a client that goes away mid-upload).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class UploadTiming:
    status: int
    headers: dict[str, str]
    body: bytes  # de-chunked
    upload_seconds: float  # first body byte sent -> last body byte sent (or the send stopped)
    first_body: float | None  # seconds from the first body byte sent to the first answer body byte
    last_body: float | None  # ... to the last answer byte
    sent: int  # body bytes sent
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (seconds, answer bytes so far)

    @property
    def tail(self) -> float | None:
        """Return the seconds from the last request byte sent to the last answer byte."""
        return None if self.last_body is None else self.last_body - self.upload_seconds


def paced_upload(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    rate: float,
    *,
    piece: int = 16 * 1024,
    stop_after: int | None = None,
    timeout: float = 120.0,
) -> UploadTiming:
    """POST `body` to `path` at `rate` bytes a second while reading the answer; return what happened when."""
    connection = socket.create_connection((host, port), timeout=timeout)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A small send buffer: bytes leave at the pace set here, not when the kernel gets round to them.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    headers = {"Host": f"{host}:{port}", **headers, "Content-Length": str(len(body)), "Connection": "close"}
    head = [f"POST {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    received: list[tuple[float, bytes]] = []
    reader = threading.Thread(target=_read_all, args=(connection, received), daemon=True)
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    reader.start()
    limit = len(body) if stop_after is None else min(stop_after, len(body))
    sent = 0
    started = time.perf_counter()
    try:
        while sent < limit:
            chunk = body[sent : min(limit, sent + piece)]
            connection.sendall(chunk)
            sent += len(chunk)
            delay = started + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    except OSError:
        pass  # the server answered and closed before the body was sent: what it answered is read below
    upload_seconds = time.perf_counter() - started
    if stop_after is not None:
        connection.shutdown(socket.SHUT_RDWR)
    reader.join(timeout)
    connection.close()
    return _timing(received, started, upload_seconds, sent)


def _read_all(connection: socket.socket, received: list[tuple[float, bytes]]) -> None:
    while True:
        try:
            data = connection.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        received.append((time.perf_counter(), data))


def _timing(received: list[tuple[float, bytes]], started: float, upload_seconds: float, sent: int) -> UploadTiming:
    raw = b"".join(data for _, data in received)
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return UploadTiming(0, {}, b"", upload_seconds, None, None, sent)
    status_line, *lines = raw[:end].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().title()] = value.strip()
    first_body = last_body = None
    arrivals = []
    offset = 0
    for at, data in received:
        offset += len(data)
        if offset > end + 4:
            first_body = at - started if first_body is None else first_body
            last_body = at - started
            arrivals.append((at - started, offset - end - 4))
    payload = raw[end + 4 :]
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return UploadTiming(
        int(status_line.split()[1]), headers, payload, upload_seconds, first_body, last_body, sent, arrivals
    )


def _dechunk(data: bytes) -> bytes:
    out, position = [], 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return b"".join(out)  # cut short: what arrived
        size = int(data[position:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[line_end + 2 : line_end + 2 + size])
        position = line_end + 2 + size + 2
