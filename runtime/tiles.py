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
    bytes makes its image once, when first asked. A tile *of a parent* (`Tile.of_parent`) stands for a
    box of a larger image whose pixels there are final (the decoder's full-size target): it is cut out
    only when first read, by whoever reads it (a step's thread), and cutting a tile of it again makes
    another such tile, so a task's region costs one copy, off the event loop.
    """

    __slots__ = ("_data", "_image", "_parent", "box", "mode")

    def __init__(self, box: Box, mode: str, data: bytes | None = None, *, image: Image.Image | None = None) -> None:
        if (data is None) == (image is None):
            raise ValueError("a tile is made of either bytes or an image")
        self.box = box
        self.mode = mode
        self._data = data
        self._image = image
        self._parent: tuple[Image.Image, int, int] | None = None

    @classmethod
    def of_parent(cls, box: Box, parent: Image.Image, origin: tuple[int, int] = (0, 0)) -> Tile:
        """Return the tile of `box` of `parent`, whose top-left pixel is at `origin` in image coordinates.

        The pixels of `box` in `parent` must never change again; they are copied when first read.
        """
        x0, y0 = box.x0 - origin[0], box.y0 - origin[1]
        if x0 < 0 or y0 < 0 or x0 + box.width > parent.width or y0 + box.height > parent.height:
            raise ValueError(f"{box} is not inside a parent of size {parent.size} at {origin}")
        tile = cls.__new__(cls)
        tile.box, tile.mode, tile._data, tile._image = box, parent.mode, None, None
        tile._parent = (parent, *origin)
        return tile

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
            return self.view().tobytes()
        return self._data

    def view(self) -> Image.Image:
        """Return the tile's own image, shared: read it (crop, resize, convert, paste it elsewhere), never change it."""
        image = self._image
        if image is None:
            # Two threads may both build it; either result is the same, one is kept. `_image` is set
            # before `_parent` is dropped, so a thread that finds neither parent nor bytes finds the image.
            parent = self._parent
            if parent is not None:
                image = parent[0].crop(self.box.translate(-parent[1], -parent[2]).as_tuple())
            elif self._data is not None:
                image = Image.frombytes(self.mode, (self.box.width, self.box.height), self._data)
            else:
                return self._image
            self._image = image
            self._parent = None  # the parent may be large: let it go as soon as this tile stands alone
        return image

    def image(self) -> Image.Image:
        """Return the pixels as a Pillow image (a copy: steps may change it freely)."""
        return self.view().copy()

    def crop(self, box: Box) -> Tile:
        """Return the part of this tile inside `box` (given in image coordinates)."""
        if box == self.box:
            return self
        if not self.box.contains(box):
            raise ValueError(f"{box} is not inside tile {self.box}")
        parent = self._parent
        if parent is not None:
            return Tile.of_parent(box, parent[0], parent[1:])
        return Tile.from_image(box, self.view().crop(box.relative_to(self.box).as_tuple()))

    def parent(self) -> tuple[Image.Image, tuple[int, int]] | None:
        """Return (parent image, its origin) while this tile is an uncut part of a parent, else None."""
        parent = self._parent
        return None if parent is None else (parent[0], parent[1:])

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
