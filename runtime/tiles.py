"""Boxes, sizes and tiles: the immutable values that travel between steps."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int

    @property
    def box(self) -> Box:
        return Box(0, 0, self.width, self.height)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class Box:
    """A half-open pixel rectangle [x0, x1) × [y0, y1) in one image's coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def size(self) -> Size:
        return Size(self.width, self.height)

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def translate(self, dx: int, dy: int) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def relative_to(self, outer: Box) -> Box:
        """Return this box in the coordinates of `outer`'s top-left corner."""
        return self.translate(-outer.x0, -outer.y0)

    def grow(self, margin: int) -> Box:
        return Box(self.x0 - margin, self.y0 - margin, self.x1 + margin, self.y1 + margin)

    def intersect(self, other: Box) -> Box:
        return Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))

    def union(self, other: Box) -> Box:
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def contains(self, other: Box) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1


class Tile:
    """Pixels of one box of one image in `mode`, immutable.

    A tile holds a Pillow image that nobody changes after the tile is made, so tiles pass between
    threads and through the in-memory channel layer (whose deepcopy returns the tile itself) with no
    copy at all. Raw bytes (`data`) are made only for the wire to another process; a tile built from
    bytes makes its image once, when first asked.
    """

    __slots__ = ("_data", "_image", "box", "mode")

    def __init__(self, box: Box, mode: str, data: bytes | None = None, *, image: Image.Image | None = None) -> None:
        if (data is None) == (image is None):
            raise ValueError("a tile is made of either bytes or an image")
        self.box = box
        self.mode = mode
        self._data = data
        self._image = image

    @classmethod
    def from_image(cls, box: Box, image: Image.Image) -> Tile:
        """Return a tile of `image` at `box`; the tile keeps `image`, so the caller must not change it."""
        if image.size != (box.width, box.height):
            raise ValueError(f"image of size {image.size} does not fit box {box}")
        return cls(box, image.mode, image=image)

    @property
    def data(self) -> bytes:
        """Return the pixels as raw bytes, row-major (for the wire)."""
        if self._data is None:
            return self._image.tobytes()
        return self._data

    def view(self) -> Image.Image:
        """Return the tile's own image, shared: read it (crop, resize, convert, paste it elsewhere), never change it."""
        if self._image is None:
            # Two threads may both build it from the bytes; either result is the same, one is kept.
            self._image = Image.frombytes(self.mode, (self.box.width, self.box.height), self._data)
        return self._image

    def image(self) -> Image.Image:
        """Return the pixels as a Pillow image (a copy: steps may change it freely)."""
        return self.view().copy()

    def crop(self, box: Box) -> Tile:
        """Return the part of this tile inside `box` (given in image coordinates)."""
        if box == self.box:
            return self
        if not self.box.contains(box):
            raise ValueError(f"{box} is not inside tile {self.box}")
        return Tile.from_image(box, self.view().crop(box.relative_to(self.box).as_tuple()))

    def with_image(self, image: Image.Image, box: Box | None = None) -> Tile:
        """Return a tile of `image` at `box` (this tile's box when left out)."""
        return Tile.from_image(box or self.box, image)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tile):
            return NotImplemented
        return self.box == other.box and self.mode == other.mode and self.data == other.data

    __hash__ = None  # equal tiles compare by pixels; they are not dict keys

    def __repr__(self) -> str:
        return f"Tile({self.box}, {self.mode!r})"

    def __copy__(self) -> Tile:
        return self

    def __deepcopy__(self, memo: dict) -> Tile:
        return self  # immutable: what makes the in-memory channel layer's deepcopy free

    def __reduce__(self) -> tuple:
        return (Tile, (self.box, self.mode, self.data))
