"""Tile grids and box arithmetic shared by the plan, the steps and the conductor."""

from __future__ import annotations

import math

from runtime.tiles import Box, Size


def grid_shape(size: Size, tile_size: int) -> tuple[int, int]:
    """Return the number of tile columns and rows that cover an image of `size`."""
    if tile_size < 1:
        raise ValueError(f"tile size must be at least 1, not {tile_size}")
    return math.ceil(size.width / tile_size), math.ceil(size.height / tile_size)


def tile_grid(size: Size, tile_size: int) -> list[Box]:
    """Return the boxes of square tiles covering `size`, row-major; the last row and column may be smaller."""
    columns, rows = grid_shape(size, tile_size)
    return [
        Box(
            column * tile_size,
            row * tile_size,
            min((column + 1) * tile_size, size.width),
            min((row + 1) * tile_size, size.height),
        )
        for row in range(rows)
        for column in range(columns)
    ]


def tile_index(box: Box, size: Size, tile_size: int) -> int:
    """Return the row-major grid index of the tile whose top-left corner is `box`'s."""
    columns, _ = grid_shape(size, tile_size)
    return (box.y0 // tile_size) * columns + box.x0 // tile_size


def tiles_meeting(region: Box, size: Size, tile_size: int) -> list[int]:
    """Return the row-major indices of the grid tiles that overlap `region` (clipped to the image)."""
    clipped = clip(region, size)
    if clipped.empty:
        return []
    columns, _ = grid_shape(size, tile_size)
    first_column, last_column = clipped.x0 // tile_size, (clipped.x1 - 1) // tile_size
    first_row, last_row = clipped.y0 // tile_size, (clipped.y1 - 1) // tile_size
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
