"""Assembling outputs: tiles into the tile a chain owes, complete rows into bands for the encoders.

Each output node has an `OutputWriter` (its file in media storage) fed by one feed task: as soon
as the next full-width row of its input store is complete, the row is joined (in the writer's
thread) and encoded, rows strictly in order, and the file finished after the last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from runtime.colour import UNTAGGED, WorkingSpace
from runtime.control import RunFailed
from runtime.decode import SourceHeader
from runtime.encoders import make_encoder
from runtime.outputs import OutputWriter
from runtime.plan import Plan
from runtime.recording import RunRecord
from runtime.spec import RunSpec
from runtime.steps.output import encode_options
from runtime.store import TileStore
from runtime.tiles import Box, Tile

log = logging.getLogger("tileflow.assembly")


def assemble_tile(node: str, mode: str, out_box: Box, tiles: list[Tile]) -> Tile:
    """Return the tile a chain produced for `out_box` from what its last step (`node`, of `mode`) wrote."""
    for tile in tiles:
        if tile.mode != mode:
            raise RunFailed(f"node '{node}' wrote a tile in mode {tile.mode}, but its output is {mode}", node)
    if len(tiles) == 1 and tiles[0].box == out_box:
        return tiles[0]
    canvas = Image.new(mode, (out_box.width, out_box.height))
    for tile in tiles:
        part = tile.box.intersect(out_box)
        if not part.empty:
            canvas.paste(
                tile.view().crop(part.relative_to(tile.box).as_tuple()),
                (part.x0 - out_box.x0, part.y0 - out_box.y0),
            )
    return Tile.from_image(out_box, canvas)


@dataclass(slots=True)
class OutputFeed:
    node: str
    store: TileStore
    writer: OutputWriter
    next_row: int = 0
    task: asyncio.Task | None = None
    complete: bool = False


class OutputAssembly:
    """Feed every output of one run to its writer, band by band, in order."""

    def __init__(
        self,
        spec: RunSpec,
        plan: Plan,
        stores: dict[str, TileStore],
        record: RunRecord,
        post: Callable[[str, Any], None],
        *,
        source: SourceHeader | None = None,
        space: WorkingSpace = UNTAGGED,
    ) -> None:
        self._spec = spec
        self._source = source  # its profile, EXIF and XMP go into the outputs as their params say
        self._space = space
        self._stores = stores
        self._record = record
        self._post = post
        self._feeds: list[OutputFeed] = []
        self.outputs: dict[str, OutputWriter] = record.outputs
        for node in plan.outputs:
            self._open(plan, node)

    @property
    def complete(self) -> bool:
        return all(feed.complete for feed in self._feeds)

    @property
    def busy(self) -> bool:
        return any(feed.task is not None and not feed.task.done() for feed in self._feeds)

    def arrived(self, store: TileStore) -> None:
        """Tiles arrived in `store`: wake the feeds that read it."""
        for feed in self._feeds:
            if feed.store is store and (feed.task is None or feed.task.done()):
                feed.task = asyncio.create_task(self._feed(feed))

    def stop(self, *, remove: bool) -> None:
        """Stop every feed; abort the writers (and remove their files) when the run did not succeed."""
        for feed in self._feeds:
            if feed.task is not None and not feed.task.done():
                feed.task.cancel()
        if remove:
            for writer in self.outputs.values():
                writer.abort(remove=True)

    def _open(self, plan: Plan, node: str) -> None:
        node_plan = plan.nodes[node]
        store = self._stores[node_plan.inputs[0]]
        params = node_plan.params
        source = self._source
        exif, xmp = (source.exif, source.xmp) if source is not None else (None, None)
        options = encode_options(params, store.info.mode, self._space, exif=exif, xmp=xmp)
        encoder = make_encoder(params.format, store.info.size, store.info.mode, options=options)
        writer = OutputWriter(node, self._spec.output_dir / f"{node}.{encoder.extension}", encoder)
        store.retain(range(store.count))
        self.outputs[node] = writer
        self._feeds.append(OutputFeed(node, store, writer))

    async def _feed(self, feed: OutputFeed) -> None:
        """Encode the complete bands of one output in order; finish the file after the last."""
        store = feed.store
        try:
            while feed.next_row < store.rows and store.row_complete(feed.next_row):
                row = feed.next_row
                band = store.band_maker(row)  # joined in the writer's thread, off the event loop
                store.release(store.row_indexes(row))
                started = time.time()
                await feed.writer.write_band(band)
                feed.next_row += 1
                self._record.band_written(feed.node, store.columns, started)
            if feed.next_row >= store.rows and not feed.complete:
                await feed.writer.finish()
                self._record.output_finished(feed.node)
                feed.complete = True
                self._post("output", feed.node)
        except OSError as error:
            self._post("failed", RunFailed(f"output '{feed.node}' could not be written: {error}", feed.node))
        except Exception as error:
            log.exception("output %s of %s failed", feed.node, self._spec.execution)
            self._post("failed", RunFailed(f"output '{feed.node}' could not be encoded: {error}", feed.node))
