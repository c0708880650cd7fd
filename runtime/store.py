"""Tile stores: the materialised output of a node, held only while some consumer still needs it.

A store is a grid of tiles: the grid the plan uses for that node's output, short rows first
(`geometry.row_bounds`). Consumers (tasks reading a region, output encoders reading bands) are
counted per tile when the plan is known; a tile is dropped as soon as its last consumer is done, so
memory follows the work in flight, not the image size. A store whose tiles are parts of a larger image
(the decoder's target) tells `rows_done` how far from the top its rows are all dropped, so that image's
rows can go too (`runtime.targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PIL import Image

from runtime.geometry import row_bounds, row_of
from runtime.registry import ImageInfo
from runtime.tiles import Box, Tile


class TileStore:
    def __init__(self, node: str, info: ImageInfo, tile_size: int, short_rows: bool = True) -> None:
        self.node = node
        self.info = info
        self.tile_size = tile_size
        self.bounds = row_bounds(info.size.height, tile_size, short_rows)
        self.columns = -(-info.size.width // tile_size)
        self.rows = len(self.bounds) - 1
        self.refs = [0] * (self.columns * self.rows)
        self._tiles: dict[int, Tile] = {}
        self._arrived = [False] * (self.columns * self.rows)
        self._row_missing = [self.columns] * self.rows
        self.rows_done: Callable[[int], None] | None = None  # told y once rows [0, y) are read by nobody
        self._rows_dropped = 0  # tile rows from the top that arrived and were all released

    def __len__(self) -> int:
        return len(self._tiles)

    @property
    def count(self) -> int:
        return self.columns * self.rows

    def tile_box(self, index: int) -> Box:
        row, column = divmod(index, self.columns)
        size = self.tile_size
        return Box(
            column * size, self.bounds[row], min((column + 1) * size, self.info.size.width), self.bounds[row + 1]
        )

    def indexes(self, box: Box) -> list[int]:
        """Return the indexes of the tiles that overlap `box` (which lies inside the image)."""
        size = self.tile_size
        first_column, last_column = box.x0 // size, (box.x1 - 1) // size
        first_row, last_row = row_of(box.y0, self.bounds), row_of(box.y1 - 1, self.bounds)
        return [
            row * self.columns + column
            for row in range(first_row, last_row + 1)
            for column in range(first_column, last_column + 1)
        ]

    def row_indexes(self, row: int) -> range:
        return range(row * self.columns, (row + 1) * self.columns)

    def retain(self, indexes: list[int] | range) -> None:
        for index in indexes:
            self.refs[index] += 1

    def arrived(self, index: int) -> bool:
        return self._arrived[index]

    def row_complete(self, row: int) -> bool:
        return self._row_missing[row] == 0

    def put(self, index: int, tile: Tile) -> bool:
        """Keep `tile` as tile `index`; return False when it was there already (a duplicate)."""
        if self._arrived[index]:
            return False
        self._arrived[index] = True
        self._row_missing[index // self.columns] -= 1
        if self.refs[index] > 0:
            self._tiles[index] = tile
        return True

    def release(self, indexes: list[int] | range) -> None:
        for index in indexes:
            self.refs[index] -= 1
            if self.refs[index] <= 0:
                self._tiles.pop(index, None)
        if self.rows_done is not None:
            self._drop_rows()

    def _drop_rows(self) -> None:
        """Tell `rows_done` how far the rows from the top have all arrived and been released."""
        row = self._rows_dropped
        while row < self.rows and self._row_missing[row] == 0 and all(self.refs[i] <= 0 for i in self.row_indexes(row)):
            row += 1
        if row > self._rows_dropped:
            self._rows_dropped = row
            self.rows_done(self.bounds[row])

    def region(self, box: Box) -> Tile:
        """Return the pixels of `box`, cut from (or assembled out of) the tiles that cover it."""
        indexes = self.indexes(box)
        if len(indexes) == 1:
            return self._tiles[indexes[0]].crop(box)
        parents = [self._tiles[index].parent() for index in indexes]
        first = parents[0]
        if first is not None and all(other is not None and other[0] is first[0] for other in parents):
            return Tile.of_parent(box, *first)  # cut by its reader, in one piece
        canvas = Image.new(self.info.mode, (box.width, box.height), None)  # the tiles cover it: no fill
        for index in indexes:
            tile = self._tiles[index]
            part = tile.box.intersect(box)
            piece = tile.view().crop(part.relative_to(tile.box).as_tuple())
            canvas.paste(piece, (part.x0 - box.x0, part.y0 - box.y0))
        return Tile.from_image(box, canvas)

    def band(self, row: int) -> Image.Image:
        """Return the full-width band of tile row `row` as one image."""
        return self.band_maker(row)()

    def band_maker(self, row: int) -> Callable[[], Image.Image]:
        """Return a call that joins tile row `row` into one image; it holds the tiles, so it may run later, anywhere."""
        tiles = [self._tiles[index] for index in self.row_indexes(row)]
        return partial(join_row, tiles, self.info.mode, self.info.size.width)

    def put_band(self, y0: int, band: Image.Image) -> list[int]:
        """Cut a full-width band that starts on a tile row into tiles; return the indexes added."""
        return [index for index, tile in self.cut_band(y0, band) if self.put(index, tile)]

    def cut_rows(self, y0: int, y1: int, image: Image.Image, top: int) -> list[tuple[int, Tile]]:
        """Return the (index, tile) pieces of rows [y0, y1), rows [y0 - top, y1 - top) of `image`.

        The tiles are parts of `image`, cut only when read; changes nothing here.
        """
        first = self._row_starting(y0, f"rows from y={y0} do not start a tile row")
        pieces = []
        for row in range(first, row_of(y1 - 1, self.bounds) + 1):
            for index in self.row_indexes(row):
                box = self.tile_box(index)
                if box.y1 > y1:
                    raise ValueError(f"rows up to y={y1} end inside tile row {row}")
                pieces.append((index, Tile.of_parent(box, image, (0, top))))
        return pieces

    def cut_band(self, y0: int, band: Image.Image) -> list[tuple[int, Tile]]:
        """Return the (index, tile) pieces of a full-width band that starts on a tile row; changes nothing."""
        first = self._row_starting(y0, f"band at y={y0} does not start a tile row")
        pieces = []
        for row in range(first, row_of(y0 + band.height - 1, self.bounds) + 1):
            for index in self.row_indexes(row):
                box = self.tile_box(index)
                if box.y1 > y0 + band.height:
                    raise ValueError(f"band at y={y0} ends inside tile row {row}")
                if box.x0 == 0 and box.x1 == band.width and box.height == band.height:
                    piece = band  # a one-column grid: the band is the tile
                else:
                    piece = band.crop((box.x0, box.y0 - y0, box.x1, box.y1 - y0))
                pieces.append((index, Tile.from_image(box, piece)))
        return pieces

    def _row_starting(self, y: int, complaint: str) -> int:
        """Return the tile row whose top is image row `y`; raise ValueError with `complaint` if none is."""
        row = row_of(y, self.bounds)
        if not 0 <= row < self.rows or self.bounds[row] != y:
            raise ValueError(complaint)
        return row


def join_row(tiles: list[Tile], mode: str, width: int) -> Image.Image:
    """Return the tiles of one row, left to right, pasted into one full-width image."""
    if len(tiles) == 1:
        return tiles[0].view()
    band = Image.new(mode, (width, tiles[0].box.height), None)  # the tiles cover it: no fill
    for tile in tiles:
        band.paste(tile.view(), (tile.box.x0, 0))
    return band
