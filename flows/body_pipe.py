"""A streamed request body read as a plain file by a thread, while the event loop pumps it in.

Django's multipart parser reads a file. A route given its body as a stream (`console.handler.stream_body_of`)
can hand it a `BodyPipe`: the event loop `pump`s the body's pieces in as they come off the socket, a thread
parses from `read`, so each part is parsed (and a file part written) while the rest is still arriving,
instead of the whole body first going to a temporary file and then being read again. The pipe holds at
most `capacity` bytes: a parser that falls behind stops the pump, which stops reading the socket.
A reader never waits forever: a body that breaks off (the client went away, the body timeout) fails the
pipe, and the read raises `MultiPartParserError` with the reason.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import deque
from collections.abc import AsyncIterable

from django.core.exceptions import RequestAborted
from django.http.multipartparser import MultiPartParserError

CAPACITY = 8 * 1024 * 1024


class BodyPipe(io.RawIOBase):
    """Bytes pumped in by the event loop, read once, in order, by one thread."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__()
        self.capacity = capacity
        self._pieces: deque[memoryview] = deque()
        self._buffered = 0
        self._ended = False
        self._error: str | None = None
        self._arrived = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()

    # The event loop's side.

    async def pump(self, body: AsyncIterable[bytes]) -> None:
        """Move `body` into the pipe, waiting while it is full; never raises for the body's own failures."""
        self._loop = asyncio.get_running_loop()
        try:
            async for piece in body:
                while self._buffered >= self.capacity and self._error is None:
                    self._room.clear()
                    await self._room.wait()
                self._put(piece)
            self._end()
        except RequestAborted:
            self.fail("the client went away before the request body was complete")
        except asyncio.CancelledError:
            self.fail("the request body was not read to its end")
            raise
        except Exception as error:  # the body stream's own failures (a timeout, a reset) end the parse, not the server
            self.fail(f"the request body could not be read: {error}")

    def fail(self, reason: str) -> None:
        """Break the pipe: the reader's next (or waiting) read raises with `reason`."""
        with self._arrived:
            if not self._ended and self._error is None:
                self._error = reason
            self._arrived.notify_all()
        self._room.set()

    def _put(self, piece: bytes) -> None:
        if not piece:
            return
        with self._arrived:
            if self._error is not None:
                return  # the reader gave up; what still arrives is dropped
            self._pieces.append(memoryview(piece))
            self._buffered += len(piece)
            self._arrived.notify_all()

    def _end(self) -> None:
        with self._arrived:
            self._ended = True
            self._arrived.notify_all()

    # The reader's side (one thread).

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = len(buffer)
        if wanted == 0:
            return 0
        with self._arrived:
            while not self._pieces:
                if self._error is not None:
                    raise MultiPartParserError(self._error)
                if self._ended:
                    return 0
                self._arrived.wait()
            filled = 0
            while self._pieces and filled < wanted:
                piece = self._pieces[0]
                taken = min(len(piece), wanted - filled)
                buffer[filled : filled + taken] = piece[:taken]
                filled += taken
                if taken == len(piece):
                    self._pieces.popleft()
                else:
                    self._pieces[0] = piece[taken:]
            was_full = self._buffered >= self.capacity
            self._buffered -= filled
        if was_full and self._buffered < self.capacity and self._loop is not None:
            self._loop.call_soon_threadsafe(self._room.set)
        return filled

    def close_reading(self) -> None:
        """The reader is done (it parsed what it needed, or gave up): let the pump drop the rest."""
        self.fail("the request body was not read to its end")
