import itertools

from hypothesis import given
from hypothesis import strategies as st

from runtime.geometry import clip, flip_x, grid_shape, tile_grid, tile_index, tiles_meeting, transpose_box
from runtime.tiles import Box, Size

sizes = st.builds(Size, st.integers(1, 300), st.integers(1, 300))


@given(sizes, st.integers(1, 128))
def test_grid_covers_every_pixel_exactly_once(size, tile_size):
    boxes = tile_grid(size, tile_size)
    assert sum(box.width * box.height for box in boxes) == size.pixels
    assert all(size.box.contains(box) and not box.empty for box in boxes)
    for a, b in itertools.pairwise(boxes):
        assert a.intersect(b).empty
    columns, rows = grid_shape(size, tile_size)
    assert len(boxes) == columns * rows


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
