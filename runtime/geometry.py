"""Tile grids and box arithmetic shared by the plan, the steps and the conductor."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from functools import lru_cache

from runtime.tiles import Box, Size

# The grid's first rows are short, so the first full-width band of every node (and of the output file)
# is done after a few dozen source rows: tile_size >> SHORT_ROWS, ..., tile_size >> 1 tall, each at least
# SHORT_ROW_MIN (smaller ones are left out). Columns stay `tile_size` wide. A run nobody watches as it
# goes (a batch item, a trigger's run) asks for a grid without them (`short=False`): its first band
# comes later, but it has fewer tiles, tasks and bands (a 2 MP batch item: ~20% less CPU).
SHORT_ROWS = 4
SHORT_ROW_MIN = 16  # one 4:2:0 JPEG MCU row: a short output band is encoded at once, never buffered


@lru_cache(maxsize=256)  # a server sees few distinct heights at once; the plan asks for each many times
def row_bounds(height: int, tile_size: int, short: bool = True) -> tuple[int, ...]:
    """Return the top of every tile row of an image `height` rows tall, then `height` itself.

    The first rows are short (for 512: 32, 64, 128, 256) unless `short` is false, then every row is
    `tile_size` tall but the last, which may be shorter. Every grid (plan, stores, decoder bands) cuts
    rows here.
    """
    if tile_size < 1:
        raise ValueError(f"tile size must be at least 1, not {tile_size}")
    bounds = [0]
    for shift in range(SHORT_ROWS if short else 0, 0, -1):
        if tile_size >> shift >= SHORT_ROW_MIN and bounds[-1] < height:
            bounds.append(min(bounds[-1] + (tile_size >> shift), height))
    while bounds[-1] < height:
        bounds.append(min(bounds[-1] + tile_size, height))
    return tuple(bounds)


def row_of(y: int, bounds: tuple[int, ...]) -> int:
    """Return the tile row of `bounds` that holds image row `y` (0 <= y < bounds[-1])."""
    return bisect_right(bounds, y) - 1


def grid_shape(size: Size, tile_size: int, short: bool = True) -> tuple[int, int]:
    """Return the number of tile columns and rows that cover an image of `size`."""
    if tile_size < 1:
        raise ValueError(f"tile size must be at least 1, not {tile_size}")
    return math.ceil(size.width / tile_size), len(row_bounds(size.height, tile_size, short)) - 1


def tile_grid(size: Size, tile_size: int, short: bool = True) -> list[Box]:
    """Return the boxes of the tiles covering `size`, row-major; see `row_bounds` for the rows' heights."""
    columns, _ = grid_shape(size, tile_size, short)
    bounds = row_bounds(size.height, tile_size, short)
    return [
        Box(column * tile_size, y0, min((column + 1) * tile_size, size.width), y1)
        for y0, y1 in itertools.pairwise(bounds)
        for column in range(columns)
    ]


def tile_index(box: Box, size: Size, tile_size: int, short: bool = True) -> int:
    """Return the row-major grid index of the tile whose top-left corner is `box`'s."""
    columns, _ = grid_shape(size, tile_size, short)
    return row_of(box.y0, row_bounds(size.height, tile_size, short)) * columns + box.x0 // tile_size


def tiles_meeting(region: Box, size: Size, tile_size: int, short: bool = True) -> list[int]:
    """Return the row-major indices of the grid tiles that overlap `region` (clipped to the image)."""
    clipped = clip(region, size)
    if clipped.empty:
        return []
    columns, _ = grid_shape(size, tile_size, short)
    bounds = row_bounds(size.height, tile_size, short)
    first_column, last_column = clipped.x0 // tile_size, (clipped.x1 - 1) // tile_size
    first_row, last_row = row_of(clipped.y0, bounds), row_of(clipped.y1 - 1, bounds)
    return [
        row * columns + column
        for row in range(first_row, last_row + 1)
        for column in range(first_column, last_column + 1)
    ]


def clip(box: Box, size: Size) -> Box:
    """Return the part of `box` inside an image of `size`."""
    return box.intersect(size.box)


def transpose_box(box: Box) -> Box:
    """Return `box` with its axes swapped."""
    return Box(box.y0, box.x0, box.y1, box.x1)


def flip_x(box: Box, width: int) -> Box:
    """Return `box` mirrored left to right in an image `width` wide."""
    return Box(width - box.x1, box.y0, width - box.x0, box.y1)


def flip_y(box: Box, height: int) -> Box:
    """Return `box` mirrored top to bottom in an image `height` tall."""
    return Box(box.x0, height - box.y1, box.x1, height - box.y0)
