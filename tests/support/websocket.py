"""A minimal RFC 6455 client for a real Daphne: handshake with a bearer token, read JSON text frames."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any


class SocketClient:
    """One websocket connection over a plain TCP socket (no library: none is a project dependency)."""

    def __init__(self, port: int, path: str, token: str, *, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: http://127.0.0.1:{port}",
            f"Authorization: Bearer {token}",
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket handshake refused: {head.decode(errors='replace')}")

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("websocket closed by the server")
        return data

    def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def receive(self) -> dict[str, Any] | None:
        """Return the next JSON text message, or None once the server sent its close frame."""
        return self.receive_stamped()[1]

    def receive_stamped(self) -> tuple[float, dict[str, Any] | None]:
        """Return (time.time() when it arrived, the next JSON text message or None once the server closed)."""
        while True:
            first, second = self._take(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._take(8))[0]
            payload = self._take(length)
            if opcode == 0x8:
                return time.time(), None
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x1:
                return time.time(), json.loads(payload)

    def messages(self) -> list[dict[str, Any]]:
        """Return every message until the server closes the socket."""
        received = []
        while (message := self.receive()) is not None:
            received.append(message)
        return received

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode, 0x80 | len(payload)])  # control frames only: payloads under 126 bytes
        self.sock.sendall(header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)))

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()
