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


@dataclass(frozen=True, slots=True)
class Tile:
    """Pixels of one box of one image: raw bytes in `mode`, row-major, immutable."""

    box: Box
    mode: str
    data: bytes

    @classmethod
    def from_image(cls, box: Box, image: Image.Image) -> Tile:
        if image.size != (box.width, box.height):
            raise ValueError(f"image of size {image.size} does not fit box {box}")
        return cls(box, image.mode, image.tobytes())

    def image(self) -> Image.Image:
        """Return the pixels as a Pillow image (a copy: steps may change it freely)."""
        return Image.frombytes(self.mode, (self.box.width, self.box.height), self.data)

    def crop(self, box: Box) -> Tile:
        """Return the part of this tile inside `box` (given in image coordinates)."""
        if box == self.box:
            return self
        if not self.box.contains(box):
            raise ValueError(f"{box} is not inside tile {self.box}")
        return Tile.from_image(box, self.image().crop(box.relative_to(self.box).as_tuple()))

    def with_image(self, image: Image.Image, box: Box | None = None) -> Tile:
        """Return a tile of `image` at `box` (this tile's box when left out)."""
        return Tile.from_image(box or self.box, image)
