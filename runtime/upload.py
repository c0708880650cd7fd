"""An upload that is still arriving, read as a file by the decode thread while the network fills it.

The event loop `feed`s the pieces of the image as they come off the socket and `end`s it (or `fail`s it
with a reason, when the client went away or the request body was malformed). Readers in other threads
(`probe`, the band decoder) `read`, `seek` and `tell` as on any binary file; a read past what has
arrived waits for more, and a seek to the end (which the probe of a PNG makes, to find IEND) waits for
the whole upload. A read after a failure raises `UploadBroken` with its reason, so the run fails with it.
What arrived is kept (the run stores the input once it is complete), bounded by the upload limit the
server applies to the body before it reaches this.
"""

from __future__ import annotations

import io
import os
import threading


class UploadBroken(OSError):
    """The upload did not arrive whole; `reason` says why, for the person who sent it; `status`, as HTTP would."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class UploadStream(io.RawIOBase):
    """A binary file whose bytes arrive while it is read: reads wait for them, never for more than asked."""

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self._pieces: list[bytes | memoryview] = []
        self._joined = bytearray()
        self._size = 0
        self._position = 0
        self._complete = False
        self._error: UploadBroken | None = None
        self._timeout = timeout  # seconds a reader waits for the next piece before it gives up
        self._arrived = threading.Condition()

    # The writer's side (the event loop): never blocks.

    def feed(self, data: bytes | memoryview) -> None:
        """Append a piece that arrived: bytes, or a read-only view of bytes, kept as it is (not copied)."""
        if not data:
            return
        if not (isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly)):
            data = bytes(data)  # a writable buffer could change under the readers
        with self._arrived:
            if self._complete or self._error is not None:
                raise ValueError("the upload has ended")
            self._pieces.append(data)
            self._size += len(data)
            self._arrived.notify_all()

    def end(self) -> None:
        """Note that the upload is complete."""
        with self._arrived:
            self._complete = True
            self._arrived.notify_all()

    def fail(self, reason: str, *, status: int = 400) -> None:
        """Break the upload: every read from now on (and every waiting one) raises UploadBroken(reason, status)."""
        with self._arrived:
            if not self._complete and self._error is None:
                self._error = UploadBroken(reason, status)
            self._arrived.notify_all()

    @property
    def size(self) -> int:
        """Return how many bytes have arrived so far."""
        return self._size

    @property
    def failure(self) -> UploadBroken | None:
        """Why the upload broke off (over the limit, stalled, the client gone), or None."""
        return self._error

    @property
    def complete(self) -> bool:
        return self._complete

    def getvalue(self) -> bytes:
        """Return the whole upload (it must be complete), as a copy."""
        return bytes(self.view())

    def view(self) -> memoryview:
        """Return the whole upload (it must be complete) without copying it: a read-only view."""
        with self._arrived:
            if not self._complete:
                raise ValueError("the upload is not complete")
            self._join()
            return memoryview(self._joined).toreadonly()

    # The reader's side (any other thread): a file.

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            with self._arrived:
                self._wait(lambda: self._complete)
                position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer) -> int:
        wanted = len(buffer)
        if wanted == 0:
            return 0
        with self._arrived:
            self._wait(lambda: self._size > self._position or self._complete)
            self._join()
            # Copied once, straight from what arrived (a view of it, released before the next join).
            with memoryview(self._joined) as joined:
                piece = joined[self._position : self._position + wanted]
                buffer[: len(piece)] = piece
                count = len(piece)
        self._position += count
        return count

    def whole(self) -> memoryview:
        """Wait for the whole upload and return it as a read-only view (raises UploadBroken if it broke)."""
        with self._arrived:
            self._wait(lambda: self._complete)
        return self.view()

    def _wait(self, ready) -> None:
        """Wait (holding the condition) until `ready()`, the upload fails, or the timeout passes."""
        while True:
            if self._error is not None:
                raise UploadBroken(self._error.reason, self._error.status)
            if ready():
                return
            if not self._arrived.wait(self._timeout):
                raise UploadBroken("the upload stalled: no data arrived in time")

    def _join(self) -> None:
        if self._pieces:
            for piece in self._pieces:
                self._joined += piece
            self._pieces.clear()
