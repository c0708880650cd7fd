"""SourceReader alone: the input decoded band by band into the source store, failures named."""

from __future__ import annotations

import asyncio

import pytest

from runtime.control import RunFailed
from runtime.reading import SourceReader
from runtime.registry import ImageInfo
from runtime.spec import RunLimits, RunSpec
from runtime.store import TileStore
from runtime.testing import make_image


async def read_all(spec: RunSpec, *, max_bands: int | None = None) -> tuple[TileStore, list[str], int]:
    """Decode `spec`'s input as the conductor does; return the store, the event kinds and the most bands held."""
    inbox: asyncio.Queue = asyncio.Queue()
    reader = SourceReader(spec, lambda kind, payload: inbox.put_nowait((kind, payload)), "in")
    header = await reader.probe()
    store = TileStore("in", ImageInfo(header.size, "RGB"), spec.limits.tile_size)
    store.retain(range(store.count))
    await reader.open(header, store, 1)
    kinds, most_ahead, bands = [], 0, 0
    try:
        while True:
            reader.pull(ready=0, busy=False)
            kind, payload = await asyncio.wait_for(inbox.get(), 10)
            kinds.append(kind)
            if kind == "failed":
                raise payload
            reader.received()
            if kind == "decoded":
                return store, kinds, most_ahead
            bands += 1
            for index, tile in payload:
                store.put(index, tile)
            most_ahead = max(most_ahead, inbox.qsize())
    finally:
        reader.close()


async def test_every_band_arrives_in_order_and_the_tiles_make_the_image(tmp_path):
    image = make_image(300, 200, "RGB", 3)
    source = tmp_path / "in.png"
    image.save(source)
    spec = RunSpec("read", {}, source, tmp_path, RunLimits(tile_size=64))
    store, kinds, most_ahead = await read_all(spec)
    assert kinds[-1] == "decoded" and kinds.count("band") == store.rows
    assert most_ahead <= 2  # the reader never runs more than two bands ahead of the conductor
    assert all(store.row_complete(row) for row in range(store.rows))
    assert store.band(0).tobytes() == image.crop((0, 0, 300, store.bounds[1])).tobytes()


async def test_bytes_held_in_memory_decode_without_the_file(tmp_path):
    image = make_image(130, 90, "RGB", 4)
    image.save(tmp_path / "in.jpg", quality=92)
    data = (tmp_path / "in.jpg").read_bytes()
    spec = RunSpec("mem", {}, tmp_path / "missing.jpg", tmp_path, RunLimits(tile_size=32), input_data=data)
    store, kinds, _ = await read_all(spec)
    assert kinds[-1] == "decoded" and len(store) == store.count


async def test_a_file_that_is_not_an_image_fails_at_the_source_node(tmp_path):
    (tmp_path / "in.png").write_bytes(b"not an image at all")
    spec = RunSpec("bad", {}, tmp_path / "in.png", tmp_path, RunLimits(tile_size=64))
    reader = SourceReader(spec, lambda kind, payload: None, "in")
    with pytest.raises(RunFailed) as failure:
        await reader.probe()
    assert failure.value.node == "in"
    reader.close()


async def test_a_file_cut_short_fails_while_decoding_naming_the_source(tmp_path):
    source = tmp_path / "cut.bmp"
    make_image(300, 200, "RGB", 4).save(source, "BMP")
    source.write_bytes(source.read_bytes()[:40_000])
    spec = RunSpec("cut", {}, source, tmp_path, RunLimits(tile_size=64))
    with pytest.raises(RunFailed) as failure:
        await read_all(spec)
    assert failure.value.node == "in"


async def test_no_band_is_asked_while_enough_tasks_are_ready(tmp_path):
    make_image(64, 64).save(tmp_path / "in.png")
    spec = RunSpec("full", {}, tmp_path / "in.png", tmp_path, RunLimits(tile_size=32, max_in_flight=4))
    posted = []
    reader = SourceReader(spec, lambda kind, payload: posted.append(kind), "in")
    header = await reader.probe()
    store = TileStore("in", ImageInfo(header.size, "RGB"), 32)
    await reader.open(header, store, 1)
    reader.pull(ready=4, busy=True)
    await asyncio.sleep(0.2)
    assert posted == []
    reader.close()
