"""Output files that are written while they stream, and followers that read them as they grow.

The conductor owns one `OutputWriter` per output node: each band is encoded in the writer's own
thread (bands stay in order) and appended to the file in media storage at once. HTTP responses
never hold the run: they *follow* the file, like `tail -f`, so a client that disconnects loses
nothing and a late one starts from the first byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from runtime import pagecache

FOLLOW_CHUNK = 256 * 1024


class Pulse:
    """Wake every waiter each time something changes (an asyncio-only, level-free signal)."""

    def __init__(self) -> None:
        self._future: asyncio.Future | None = None

    async def wait(self, timeout: float | None = None) -> None:
        if self._future is None or self._future.done():
            self._future = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):  # not wait_for, which may drop a cancellation in 3.11
                await asyncio.shield(self._future)
        except TimeoutError:
            pass

    def notify(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


class FollowedFile:
    """A file being written that readers follow as it grows: its size, whether it is complete or failed."""

    def __init__(self, node: str, path: Path, content_type: str) -> None:
        self.node = node
        self.path = path
        self.content_type = content_type
        self.size = 0
        self.complete = False
        self.failed = False
        self.pulse = Pulse()

    async def follow(self, offset: int = 0) -> AsyncIterator[bytes]:
        """Yield the file's bytes from `offset` (the first), as they are written, until it is complete.

        Ends early (without error) when the run fails: the caller checks `failed`. A run that failed
        before its reader came removed the file: nothing to yield either.
        """
        try:
            reader = open(self.path, "rb")  # closed by the with below
        except FileNotFoundError:
            if self.failed:
                return
            raise
        with reader:
            while True:
                reader.seek(offset)
                chunk = reader.read(FOLLOW_CHUNK)
                if chunk:
                    offset += len(chunk)
                    yield chunk
                    continue
                if self.complete and offset >= self.size:
                    pagecache.release(reader.fileno())  # what this reader brought back from the disk
                    return
                if self.failed:
                    return
                await self.pulse.wait(timeout=1.0)


class OutputWriter(FollowedFile):
    """Encode bands of one output node into its file, in order, off the event loop."""

    def __init__(self, node: str, path: Path, encoder) -> None:
        super().__init__(node, path, encoder.content_type)
        self.encoder = encoder
        self.bands = 0
        self._header_queued = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"tileflow-out-{node}")
        # Made now, while the first band is still being computed: a JPEG header is a small encode of
        # its own (~1-3 ms on busy cores), which would otherwise delay the first byte.
        self._header = self._thread.submit(encoder.header)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")

    def _write(self, data: bytes) -> int:
        if data:
            self._file.write(data)
            self._file.flush()
        return len(data)

    def _encode_band(self, band: Image.Image | Callable[[], Image.Image], with_header: bool) -> int:
        data = self.encoder.encode_band(band if isinstance(band, Image.Image) else band())
        # The header goes out with the first band's data in one write: a client's first byte is image data,
        # and a run that fails before any band can still be answered with an error instead of a cut stream.
        return self._write(self._header.result() + data if with_header else data)

    def _finish(self) -> int:
        written = self._write(self.encoder.finish())
        pagecache.settle(self._file)
        self._file.close()
        return written

    async def write_band(self, band: Image.Image | Callable[[], Image.Image]) -> None:
        """Encode and append the next band, given as an image or a call that makes it (run in our thread)."""
        loop = asyncio.get_running_loop()
        with_header = not self._header_queued
        self._header_queued = True
        self.bands += 1
        self.size += await loop.run_in_executor(self._thread, self._encode_band, band, with_header)
        self.pulse.notify()

    async def write_header(self) -> None:
        """Write the file's header if no band brought it yet (an encoder that buffers everything)."""
        header = self._queue_header()
        if header is not None:
            self.size += await header
            self.pulse.notify()

    def _queue_header(self) -> asyncio.Future | None:
        """Queue the header on our thread unless it was queued already (the one thread keeps the order)."""
        if self._header_queued:
            return None
        self._header_queued = True
        return asyncio.get_running_loop().run_in_executor(self._thread, lambda: self._write(self._header.result()))

    async def finish(self) -> None:
        loop = asyncio.get_running_loop()
        await self.write_header()
        self.size += await loop.run_in_executor(self._thread, self._finish)
        self.complete = True
        self._thread.shutdown(wait=False)
        self.pulse.notify()

    def abort(self, *, remove: bool) -> None:
        """Stop writing (the run failed or was cancelled); remove the partial file if asked."""
        self.failed = True
        self._thread.shutdown(wait=True, cancel_futures=True)
        if not self._file.closed:
            self._file.close()
        if remove:
            self.path.unlink(missing_ok=True)
        self.pulse.notify()


class RelayedFile(FollowedFile):
    """An output encoded elsewhere (on a worker), written here from the chunks it sends, in order.

    Encoding is deterministic, so a chunk of a second attempt that covers bytes already written
    brings the same bytes: only what lies beyond the file's end is appended.
    """

    def __init__(self, node: str, path: Path, content_type: str) -> None:
        super().__init__(node, path, content_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")

    def write_at(self, offset: int, data: bytes) -> bool:
        """Append the part of `data` (which starts at `offset`) beyond the end; False if it leaves a gap."""
        if offset > self.size:
            return False
        fresh = data[self.size - offset :]
        if fresh and not self.complete:
            self._file.write(fresh)
            self._file.flush()
            self.size += len(fresh)
            self.pulse.notify()
        return True

    def finish(self) -> None:
        pagecache.settle(self._file)
        self._file.close()
        self.complete = True
        self.pulse.notify()

    def abort(self, *, remove: bool) -> None:
        self.failed = True
        if not self._file.closed:
            self._file.close()
        if remove:
            self.path.unlink(missing_ok=True)
        self.pulse.notify()
