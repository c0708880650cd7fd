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

import bisect
import io
import os
import threading


class UploadBroken(OSError):
    """The upload did not arrive whole; `reason` says why, for the person who sent it; `status`, as HTTP would."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _ReadFile(io.RawIOBase):
    """A seekable, read-only binary file; subclasses read from their `_position`."""

    _position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position


class UploadStream(_ReadFile):
    """A binary file whose bytes arrive while it is read: reads wait for them, never for more than asked.

    The pieces are kept as they arrived and never joined: a read copies from them straight into the
    reader's buffer, and `pieces` hands them on (to a file, to Redis) as they are. Joining a 7.7 MB
    upload into one buffer cost ~5 ms of CPU in fresh pages on this machine, for nothing.
    """

    def __init__(self, timeout: float | None = None) -> None:
        super().__init__()
        self._pieces = _Pieces()
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
            self._pieces.append(memoryview(data).cast("B"))
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
        return self._pieces.size

    @property
    def failure(self) -> UploadBroken | None:
        """Why the upload broke off (over the limit, stalled, the client gone), or None."""
        return self._error

    @property
    def complete(self) -> bool:
        return self._complete

    def pieces(self) -> list[memoryview]:
        """Return the whole upload (it must be complete) as the read-only views it arrived in, in order."""
        with self._arrived:
            self._check_complete()
            return list(self._pieces.views)

    def getvalue(self) -> bytes:
        """Return the whole upload (it must be complete), as one copy."""
        return b"".join(self.pieces())

    def view(self) -> memoryview:
        """Return the whole upload (it must be complete) as one read-only view: joined (a copy) unless in one piece."""
        with self._arrived:
            self._check_complete()
            return self._pieces.joined()

    def reader(self) -> PiecesFile:
        """Return a file of its own over the whole upload (it must be complete): its reads leave this one's place."""
        return PiecesFile(self.pieces())

    # The reader's side (any other thread): a file.

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            with self._arrived:
                self._wait(lambda: self._complete)
                position = self._pieces.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer) -> int:
        if len(buffer) == 0:
            return 0
        with self._arrived:
            self._wait(lambda: self._pieces.size > self._position or self._complete)
            count = self._pieces.copy_into(self._position, buffer)  # once, straight from what arrived
        self._position += count
        return count

    def whole(self) -> memoryview:
        """Wait for the whole upload and return it as one read-only view (raises UploadBroken if it broke)."""
        self._wait_whole()
        return self.view()

    def whole_pieces(self) -> list[memoryview]:
        """Wait for the whole upload and return its pieces (raises UploadBroken if it broke)."""
        self._wait_whole()
        return self.pieces()

    def _wait_whole(self) -> None:
        with self._arrived:
            self._wait(lambda: self._complete)

    def _check_complete(self) -> None:
        if not self._complete:
            raise ValueError("the upload is not complete")

    def _wait(self, ready) -> None:
        """Wait (holding the condition) until `ready()`, the upload fails, or the timeout passes."""
        while True:
            if self._error is not None:
                raise UploadBroken(self._error.reason, self._error.status)
            if ready():
                return
            if not self._arrived.wait(self._timeout):
                raise UploadBroken("the upload stalled: no data arrived in time")


class PiecesFile(_ReadFile):
    """A read-only binary file over bytes held in pieces, read where they are."""

    def __init__(self, pieces: list[memoryview]) -> None:
        super().__init__()
        self._pieces = _Pieces()
        for piece in pieces:
            self._pieces.append(piece)
        self._position = 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._pieces.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        count = self._pieces.copy_into(self._position, buffer)
        self._position += count
        return count


class _Pieces:
    """Byte views in order, with where each ends, to copy any stretch of them out without joining them."""

    def __init__(self) -> None:
        self.views: list[memoryview] = []
        self.ends: list[int] = []  # the offset just past each view
        self.size = 0

    def append(self, view: memoryview) -> None:
        self.views.append(view)
        self.size += len(view)
        self.ends.append(self.size)

    def copy_into(self, position: int, buffer) -> int:
        """Copy the bytes from `position` on into `buffer`, as many as it holds or there are; return how many."""
        target = memoryview(buffer).cast("B")
        wanted, count = len(target), 0
        index = bisect.bisect_right(self.ends, position)
        while count < wanted and index < len(self.views):
            view = self.views[index]
            start = position + count - (self.ends[index] - len(view))
            length = min(len(view) - start, wanted - count)
            target[count : count + length] = view[start : start + length]
            count += length
            index += 1
        return count

    def joined(self) -> memoryview:
        """Return everything as one read-only view; several views are joined once, and kept so."""
        if len(self.views) != 1:
            whole = memoryview(b"".join(self.views))
            self.views, self.ends = [whole], [len(whole)]
        return self.views[0]
