"""Output assembly alone: a chain's tiles into one, rows into bands, the file complete and exact."""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from runtime.assembly import OutputAssembly, assemble_tile
from runtime.control import RunFailed
from runtime.plan import compile_plan
from runtime.recording import RunRecord
from runtime.registry import ImageInfo
from runtime.spec import RunLimits, RunSpec
from runtime.store import TileStore
from runtime.testing import chain, make_image
from runtime.tiles import Box, Size, Tile


def test_pieces_a_step_wrote_are_put_together_into_the_tile_it_owes():
    image = make_image(40, 30)
    pieces = [
        Tile.from_image(Box(0, 0, 40, 10), image.crop((0, 0, 40, 10))),
        Tile.from_image(Box(0, 10, 40, 30), image.crop((0, 10, 40, 30))),
    ]
    tile = assemble_tile("step", "RGB", Box(0, 0, 40, 30), pieces)
    assert tile.image().tobytes() == image.tobytes()


def test_a_tile_in_the_wrong_mode_fails_naming_the_node():
    grey = Tile.from_image(Box(0, 0, 8, 8), Image.new("L", (8, 8)))
    with pytest.raises(RunFailed, match="node 'step' wrote a tile in mode L, but its output is RGB"):
        assemble_tile("step", "RGB", Box(0, 0, 8, 8), [grey])


async def test_rows_are_encoded_in_order_as_they_complete_and_the_file_is_the_image(tmp_path):
    image = make_image(100, 70)
    plan = compile_plan(chain(output={"format": "png"}), ImageInfo(Size(100, 70), "RGB"), tile_size=32)
    stores = {node: TileStore(node, plan.nodes[node].output, 32) for node in plan.stores}
    record = RunRecord("assembly")
    record.plan(plan.order, plan.totals)
    posted: asyncio.Queue = asyncio.Queue()
    spec = RunSpec("assembly", {}, tmp_path / "in.png", tmp_path / "out", RunLimits(tile_size=32))
    assembly = OutputAssembly(spec, plan, stores, record, lambda kind, payload: posted.put_nowait((kind, payload)))
    source = stores[plan.source]
    for index in reversed(range(source.count)):  # the last row first: nothing may be written before row 0
        box = source.tile_box(index)
        source.put(index, Tile.from_image(box, image.crop(box.as_tuple())))
        assembly.arrived(source)
        if index == source.columns:
            await asyncio.sleep(0.05)
            assert assembly.outputs["out"].bands == 0
    assert await asyncio.wait_for(posted.get(), 10) == ("output", "out")
    assert assembly.complete and record.first_output.is_set()
    assert record.nodes["out"].done == source.count
    written = Image.open(assembly.outputs["out"].path)
    assert written.tobytes() == image.tobytes()


async def test_stopping_a_run_that_failed_removes_its_partial_files(tmp_path):
    plan = compile_plan(chain(output={"format": "jpeg"}), ImageInfo(Size(64, 64), "RGB"), tile_size=32)
    stores = {node: TileStore(node, plan.nodes[node].output, 32) for node in plan.stores}
    spec = RunSpec("stopped", {}, tmp_path / "in.png", tmp_path / "out", RunLimits(tile_size=32))
    assembly = OutputAssembly(spec, plan, stores, RunRecord("stopped"), lambda kind, payload: None)
    path = assembly.outputs["out"].path
    assert path.exists()
    assembly.stop(remove=True)
    assert not path.exists()
