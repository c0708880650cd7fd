"""Reading the source: its header, then its pixels band by band into the source store, in a thread.

The decode thread runs ahead only while the pipeline wants more: two bands are asked at once (so
it goes on to the next without waiting for the event loop) while too few tasks are ready, and none
while enough decoded tiles wait, so a slow pipeline slows the decoder instead of filling memory.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PIL import Image

from runtime.colour import UNTAGGED, WorkingSpace
from runtime.control import RunFailed
from runtime.decode import ImageRejected, SourceHeader, decode_rows, probe
from runtime.spec import RunSpec
from runtime.store import TileStore
from runtime.targets import TARGETS
from runtime.tiles import Tile
from runtime.upload import UploadBroken

AHEAD = 2  # bands asked of the decode thread at once


class SourceReader:
    """Decode one run's input in its own thread; report each band as a ("band", pieces) event."""

    def __init__(self, spec: RunSpec, post: Callable[[str, Any], None], source_node: str | None) -> None:
        self._spec = spec
        self._post = post
        self._node = source_node
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tileflow-decode")
        self.closed: Future | None = None  # done once `close` freed the decoder's image
        self._bands: Iterator | None = None
        self._store: TileStore | None = None
        self._pulls = 0  # bands asked of the decode thread and not received yet
        self._image: Image.Image | None = None  # the image the last band came from (decode thread)
        self._give_back = False
        self.decoded = False

    async def probe(self) -> SourceHeader:
        """Return the input's header (the caller's, when it probed it already)."""
        if self._spec.header is not None:
            return self._spec.header
        data = self._spec.input_data
        source = io.BytesIO(data) if data else self._spec.input_path
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, probe, source, self._spec.limits.max_pixels)
        except ImageRejected as rejected:
            raise RunFailed(str(rejected), self._node) from rejected

    async def open(
        self,
        header: SourceHeader,
        store: TileStore,
        shrink: int,
        space: WorkingSpace = UNTAGGED,
        *,
        give_back: bool = False,
    ) -> None:
        """Start the decoder: one band per row of the source store's grid (short ones first), in `space`.

        `give_back`: only tasks read the store, so a large decode target's rows may go back to the kernel
        once the store's tiles on them are all released (`runtime.targets`).
        """
        self._store = store
        self._give_back = give_back
        self._node = store.node
        source = self._spec.input_data or self._spec.input_stream or self._spec.input_path
        self._bands = await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: iter(decode_rows(source, header, store.bounds, shrink, space))
        )

    def pull(self, *, ready: int, busy: bool) -> None:
        """Ask for bands while the pipeline wants them: `ready` tasks wait to be sent, `busy` work is out."""
        while self._pulls < AHEAD and self._wanted(ready, busy):
            self._pull_one()

    def received(self) -> None:
        """Note that the conductor took a band (or the end) this reader reported."""
        self._pulls -= 1

    def close(self) -> None:
        """Stop the decoder and free its image, in its own thread."""
        self.closed = self._thread.submit(self._close_bands)  # the memory budget waits for it
        self._thread.shutdown(wait=False)

    def _wanted(self, ready: int, busy: bool) -> bool:
        if self.decoded or self._bands is None:
            return False
        in_flight = self._spec.limits.max_in_flight
        if ready >= in_flight:
            return False
        # Enough decoded and waiting: decoding more would only hold memory.
        return not (busy and len(self._store) > (in_flight + 2) * self._store.columns)

    def _pull_one(self) -> None:
        self._pulls += 1
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._decode_next)
        future.add_done_callback(self._deliver)

    def _deliver(self, done: asyncio.Future) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if isinstance(error, ImageRejected | UploadBroken):
            self._post("failed", RunFailed(str(error), self._node))
        elif error is not None:
            self._post("failed", RunFailed(f"the image could not be decoded: {error}", self._node))
        elif done.result() is None:
            self.decoded = True
            self._post("decoded", None)
        else:
            self._post("band", done.result())

    def _decode_next(self) -> list[tuple[int, Tile]] | None:
        """Decode the next band into tiles (parts of the decoded image, cut by their readers), in the decode thread."""
        item = next(self._bands, None)
        if item is None:
            return None
        # Held until the run ends, so the decoder's full-size image is freed here, not by the event loop
        # dropping the last source tile cut from it.
        image, top = item[2], item[3]
        if self._give_back and self._image is None and top == 0:
            releaser = TARGETS.releaser(image)  # None unless a large target the tiles are parts of
            if releaser is not None:
                self._store.rows_done = releaser.release  # called on the event loop as tasks finish
        self._image = image
        return self._store.cut_rows(*item)

    def _close_bands(self) -> None:
        close = getattr(self._bands, "close", None)
        if close is not None:
            close()
        self._image = None  # in the decode thread: unmapping a 24 MP target takes ~8 ms
