import asyncio
import copy
import pickle

import pytest
from channels.layers import InMemoryChannelLayer

from runtime.bridge import LOCAL, is_local, tile_from_wire, tile_to_wire
from runtime.registry import ImageInfo
from runtime.store import TileStore
from runtime.tiles import Box, Size, Tile
from tests.runtime.pictures import photo_like

IMAGE = photo_like(300, 200)


def test_a_tile_keeps_its_image_and_hands_out_copies_to_change():
    tile = Tile.from_image(Box(10, 20, 310, 220), IMAGE)
    assert tile.view() is IMAGE
    changed = tile.image()
    changed.paste((0, 0, 0), (0, 0, 50, 50))
    assert tile.view().tobytes() == IMAGE.tobytes() != changed.tobytes()
    assert tile.data == IMAGE.tobytes()


def test_a_tile_of_bytes_makes_its_image_once():
    tile = Tile(Box(0, 0, 300, 200), "RGB", IMAGE.tobytes())
    assert tile.view() is tile.view()
    assert tile.view().tobytes() == IMAGE.tobytes()


def test_a_tile_of_a_parent_is_cut_when_read_and_its_crops_stay_parts_of_the_parent():
    box = Box(50, 40, 250, 140)
    tile = Tile.of_parent(box, IMAGE)
    assert tile.parent() == (IMAGE, (0, 0))
    inner = tile.crop(Box(60, 50, 100, 90))
    assert inner.parent() == (IMAGE, (0, 0))
    assert inner.view().tobytes() == IMAGE.crop((60, 50, 100, 90)).tobytes()
    assert tile.data == IMAGE.crop(box.as_tuple()).tobytes()
    assert tile.parent() is None  # read once: it stands alone and lets the parent go


def test_a_parent_may_sit_lower_in_the_image():
    band = IMAGE.crop((0, 100, 300, 200))
    tile = Tile.of_parent(Box(0, 120, 100, 180), band, (0, 100))
    assert tile.view().tobytes() == IMAGE.crop((0, 120, 100, 180)).tobytes()
    with pytest.raises(ValueError, match="not inside"):
        Tile.of_parent(Box(0, 50, 100, 150), band, (0, 100))


def test_copies_are_the_tile_and_pickles_carry_its_pixels():
    tile = Tile.of_parent(Box(0, 0, 30, 20), IMAGE)
    assert copy.deepcopy({"tile": tile})["tile"] is tile
    again = pickle.loads(pickle.dumps(tile))
    assert again == tile and again is not tile


def test_a_region_over_several_tiles_of_one_parent_is_one_cut():
    store = TileStore("in", ImageInfo(Size(300, 200), "RGB"), 64)
    store.retain(range(store.count))
    assert store.bounds == (0, 16, 48, 112, 176, 200)
    assert [index for index, tile in store.cut_rows(0, 176, IMAGE, 0) if store.put(index, tile)] == list(range(20))
    with pytest.raises(ValueError, match="end inside tile row 4"):
        store.cut_rows(176, 190, IMAGE, 0)
    with pytest.raises(ValueError, match="do not start a tile row"):
        store.cut_rows(64, 112, IMAGE, 0)
    region = store.region(Box(30, 10, 200, 120))
    assert region.parent() is not None
    assert region.view().tobytes() == IMAGE.crop((30, 10, 200, 120)).tobytes()


def test_the_in_memory_layer_carries_the_tile_itself():
    layer = InMemoryChannelLayer()
    tile = Tile.from_image(Box(0, 0, 300, 200), IMAGE)
    assert is_local(layer)
    assert tile_to_wire(tile, LOCAL) is tile

    async def roundtrip():
        await layer.send("lane", {"type": "x", "tile": tile_to_wire(tile, LOCAL)})
        return await layer.receive("lane")

    message = asyncio.run(roundtrip())
    assert tile_from_wire(message["tile"]) is tile
    remote = tile_from_wire(tile_to_wire(tile, "none"))
    assert remote == tile and remote is not tile


def test_a_store_tells_how_far_from_the_top_its_rows_are_read_by_nobody():
    store = TileStore("in", ImageInfo(Size(300, 200), "RGB"), 64)  # 5 columns; rows 0-16-48-112-176-200
    store.retain(range(store.count))
    store.retain(store.row_indexes(1))  # row 1 has a second reader (a halo)
    told = []
    store.rows_done = told.append
    for index, tile in store.cut_rows(0, 112, IMAGE, 0):
        store.put(index, tile)

    store.release(store.row_indexes(2))  # row 2 done first: rows above it are still read
    assert told == []
    store.release(store.row_indexes(0))
    assert told == [16]
    store.release(store.row_indexes(1))  # row 1's first reader; its second still reads it
    assert told == [16]
    store.release(store.row_indexes(1))
    assert told == [16, 112]  # rows 1 and 2 at once
    store.release(store.row_indexes(3))  # released but not arrived yet: no further
    assert told == [16, 112]
