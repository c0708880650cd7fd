import itertools

from hypothesis import given
from hypothesis import strategies as st

from runtime.geometry import (
    SHORT_ROW_MIN,
    SHORT_ROWS,
    clip,
    flip_x,
    grid_shape,
    row_bounds,
    tile_grid,
    tile_index,
    tiles_meeting,
    transpose_box,
)
from runtime.registry import ImageInfo
from runtime.store import TileStore
from runtime.tiles import Box, Size

sizes = st.builds(Size, st.integers(1, 300), st.integers(1, 300))


@given(sizes, st.integers(1, 128))
def test_grid_covers_every_pixel_exactly_once(size, tile_size):
    boxes = tile_grid(size, tile_size)
    assert all(size.box.contains(box) and not box.empty for box in boxes)
    covered = bytearray(size.pixels)  # how many boxes hold each pixel
    for box in boxes:
        for y in range(box.y0, box.y1):
            covered[y * size.width + box.x0 : y * size.width + box.x1] = bytes(
                c + 1 for c in covered[y * size.width + box.x0 : y * size.width + box.x1]
            )
    assert set(covered) == {1}
    columns, rows = grid_shape(size, tile_size)
    assert len(boxes) == columns * rows
    assert all(box.width <= tile_size and box.height <= tile_size for box in boxes)


@given(st.integers(1, 5000), st.integers(1, 1024))
def test_rows_are_short_at_the_top_then_full(height, tile_size):
    bounds = row_bounds(height, tile_size)
    assert bounds[0] == 0 and bounds[-1] == height
    heights = [b - a for a, b in itertools.pairwise(bounds)]
    short = [tile_size >> k for k in range(SHORT_ROWS, 0, -1) if tile_size >> k >= SHORT_ROW_MIN]
    planned = short + [tile_size] * (height // tile_size + 1)  # the short rows, then full rows
    # Every row is as planned but the image's last, which is cut to fit (it may end the short ones).
    assert sum(heights) == height
    assert heights[:-1] == planned[: len(heights) - 1]
    assert all(0 < h <= p for h, p in zip(heights[-1:], planned[len(heights) - 1 :], strict=False))
    if tile_size < 2 * SHORT_ROW_MIN:
        assert bounds == (*range(0, height, tile_size), height)


def test_rows_of_the_default_tile_size():
    assert row_bounds(4000, 512) == (0, 32, 96, 224, 480, 992, 1504, 2016, 2528, 3040, 3552, 4000)
    assert row_bounds(20, 512) == (0, 20)
    assert row_bounds(100, 512) == (0, 32, 96, 100)


@given(st.integers(1, 5000), st.integers(1, 1024))
def test_a_grid_without_short_rows_has_full_rows_from_the_top(height, tile_size):
    bounds = row_bounds(height, tile_size, short=False)
    assert bounds == (*range(0, height, tile_size), height)
    size = Size(700, height)
    assert len(tile_grid(size, tile_size, short=False)) == -(-700 // tile_size) * -(-height // tile_size)


def test_an_unattended_batch_photo_is_a_few_large_tiles():
    photo, half = Size(1732, 1155), Size(866, 578)
    assert len(tile_grid(photo, 1024)) == 10 and len(tile_grid(half, 1024)) == 4
    assert len(tile_grid(photo, 1024, short=False)) == 4 and len(tile_grid(half, 1024, short=False)) == 1


@given(sizes, st.integers(4, 128), st.data())
def test_a_store_cuts_the_same_grid(size, tile_size, data):
    store = TileStore("n", ImageInfo(size, "L"), tile_size)
    boxes = tile_grid(size, tile_size)
    assert store.count == len(boxes)
    assert [store.tile_box(index) for index in range(store.count)] == boxes
    assert [list(store.row_indexes(row)) for row in range(store.rows)] == [
        [i for i, box in enumerate(boxes) if box.y0 == y0] for y0 in store.bounds[:-1]
    ]
    x0 = data.draw(st.integers(0, size.width - 1))
    y0 = data.draw(st.integers(0, size.height - 1))
    region = Box(x0, y0, data.draw(st.integers(x0 + 1, size.width)), data.draw(st.integers(y0 + 1, size.height)))
    assert store.indexes(region) == tiles_meeting(region, size, tile_size)


@given(sizes, st.integers(1, 64))
def test_grid_is_row_major_and_indexable(size, tile_size):
    boxes = tile_grid(size, tile_size)
    assert [(b.y0, b.x0) for b in boxes] == sorted((b.y0, b.x0) for b in boxes)
    assert [tile_index(box, size, tile_size) for box in boxes] == list(range(len(boxes)))


coordinates = st.integers(-50, 350)


@given(sizes, st.integers(1, 64), coordinates, coordinates, st.integers(0, 200), st.integers(0, 200))
def test_tiles_meeting_is_exactly_the_overlapping_tiles(size, tile_size, x, y, w, h):
    region = Box(x, y, x + w, y + h)
    expected = [i for i, box in enumerate(tile_grid(size, tile_size)) if not box.intersect(region).empty]
    assert tiles_meeting(region, size, tile_size) == expected


def test_box_helpers():
    assert clip(Box(-5, -5, 20, 30), Size(10, 10)) == Box(0, 0, 10, 10)
    assert transpose_box(Box(1, 2, 3, 4)) == Box(2, 1, 4, 3)
    assert flip_x(Box(0, 0, 3, 1), 10) == Box(7, 0, 10, 1)
