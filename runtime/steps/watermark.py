"""Text watermark: the text is rendered once into a small coverage mask (a *stamp*), placed at one
or more positions, and each tile blends the colour through the parts of the stamps that meet it.

The reference is `apply_watermark_whole`: draw the text at every position on one whole-image
mask, then `paste(colour, mask=layer)` once. Stamps never overlap (tiled stamps keep a gap), the
mask is zero elsewhere and a zero-mask paste leaves a pixel as it is, so pasting stamp by stamp
per tile gives the same bytes. `paste` with a mask releases the GIL; `alpha_composite` does not.

The colour is drawn as given, in the run's working colour space (`runtime.colour`): the values of the
source's own profile (what a `keep` output carries), or sRGB when every output converts to sRGB.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw
from pydantic import Field

from runtime.fonts import font_for
from runtime.registry import ImageInfo, Step, StepContext, StepParams, TileKind, step
from runtime.tiles import Box, Size, Tile

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center", "tiled"]
BUCKET = 256  # px: stamps are indexed by the buckets they meet, so a tile looks at a few only


@dataclass(frozen=True)
class WatermarkLayout:
    """Where the text goes on an image of a given size, and how it is drawn."""

    text: str
    font: object
    font_size: int
    fill: int  # coverage scale of the mask: opacity x 255
    offset: tuple[int, int]  # where to draw the text so its ink box starts at the stamp's corner
    stamp_size: Size
    positions: tuple[tuple[int, int], ...]  # top-left corner of each stamp

    def stamp_boxes(self) -> list[Box]:
        width, height = self.stamp_size.width, self.stamp_size.height
        return [Box(x, y, x + width, y + height) for x, y in self.positions]


def auto_font_size(size: Size) -> int:
    """Return the default text height: 5% of the shorter side, at least 10 px."""
    return max(10, round(min(size.width, size.height) * 0.05))


def ink(mode: str, color: str) -> int | tuple[int, ...]:
    """Return `#rrggbb` as a pixel value of `mode` (opaque in RGBA, its luma in L)."""
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    if mode == "L":
        return Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0))
    return (*rgb, 255) if mode == "RGBA" else rgb


def watermark_layout(params: Watermark.Params, size: Size) -> WatermarkLayout:
    """Return the font, stamp size and stamp positions of `params` on an image of `size`.

    Cached: one run lays its watermark out several times (its memory estimate, its plan, each worker's
    step), and a batch does it again for every photo of the same size.
    """
    return _layout(params.text, params.opacity, params.position, params.font_size, size)


@functools.lru_cache(maxsize=64)
def _layout(text: str, opacity: float, position: Position, font_size: int | None, size: Size) -> WatermarkLayout:
    font_size = font_size or auto_font_size(size)
    font = font_for(text, font_size)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox((0, 0), text, font=font)
    stamp = Size(max(1, right - left), max(1, bottom - top))
    margin = max(2, font_size // 2)
    far_x, far_y = size.width - stamp.width - margin, size.height - stamp.height - margin
    corners = {
        "top-left": (margin, margin),
        "top-right": (far_x, margin),
        "bottom-left": (margin, far_y),
        "bottom-right": (far_x, far_y),
        "center": ((size.width - stamp.width) // 2, (size.height - stamp.height) // 2),
    }
    if position == "tiled":
        positions = _tiled_positions(size, stamp, gap=max(4, font_size * 2))
    else:
        positions = (corners[position],)
    return WatermarkLayout(
        text=text,
        font=font,
        font_size=font_size,
        fill=round(255 * opacity),
        offset=(-left, -top),
        stamp_size=stamp,
        positions=positions,
    )


def _tiled_positions(size: Size, stamp: Size, gap: int) -> tuple[tuple[int, int], ...]:
    """Return a brick pattern of stamp corners covering the image; every other row shifts by half."""
    step_x, step_y = stamp.width + gap, stamp.height + gap
    positions = []
    row = 0
    for y in range(gap // 2, size.height, step_y):
        x = gap // 2 - (step_x // 2 if row % 2 else 0)
        while x < size.width:
            if x + stamp.width > 0:
                positions.append((x, y))
            x += step_x
        row += 1
    return tuple(positions)


def draw_text(draw: ImageDraw.ImageDraw, layout: WatermarkLayout, corner: tuple[int, int]) -> None:
    """Draw the layout's text with its ink box's top-left at `corner`."""
    xy = (corner[0] + layout.offset[0], corner[1] + layout.offset[1])
    draw.multiline_text(xy, layout.text, fill=layout.fill, font=layout.font)


def apply_watermark_whole(image: Image.Image, params: Watermark.Params) -> Image.Image:
    """Return `image` watermarked the plain whole-image Pillow way (the reference for tiles)."""
    layout = watermark_layout(params, Size(*image.size))
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    for corner in layout.positions:
        draw_text(draw, layout, corner)
    result = image.copy()
    result.paste(ink(image.mode, params.color), (0, 0, *image.size), layer)
    return result


@step("watermark", label="Text watermark", category="Annotate")
class Watermark(Step):
    """Draw a text over the image, in any script (Chinese included), at a corner, the centre, or tiled."""

    class Params(StepParams):
        text: str = Field(..., min_length=1, max_length=500)
        opacity: float = Field(0.5, ge=0, le=1)
        position: Position = "bottom-right"
        font_size: int | None = Field(None, ge=1, le=2000, description="pixels; automatic when left out")
        color: str = Field(
            "#ffffff",
            pattern=r"^#[0-9a-fA-F]{6}$",
            json_schema_extra={"format": "color"},
            description="in the image's colour space: its own profile, or sRGB when every output converts to sRGB",
        )

    kind = TileKind.POINT

    def __init__(self, params: Params, input: ImageInfo) -> None:
        super().__init__(params, input)
        self.layout = watermark_layout(params, input.size)
        self.ink = ink(input.mode, params.color)
        self.stamp = _stamp(self.layout)  # shared, only read (cropped) from here on
        self.buckets: dict[tuple[int, int], list[Box]] = defaultdict(list)
        image_box = input.size.box
        for box in self.layout.stamp_boxes():
            if self.layout.fill == 0 or box.intersect(image_box).empty:
                continue
            for key in _bucket_keys(box):
                self.buckets[key].append(box)

    def stamps_meeting(self, box: Box) -> list[Box]:
        """Return the stamp boxes that overlap `box`."""
        found: dict[Box, None] = {}
        for key in _bucket_keys(box):
            for stamp in self.buckets.get(key, ()):
                if not stamp.intersect(box).empty:
                    found[stamp] = None
        return list(found)

    def process(self, tile: Tile, ctx: StepContext) -> None:
        stamps = self.stamps_meeting(tile.box)
        if not stamps:
            ctx.write(tile)
            return
        image = tile.image()
        for stamp in stamps:
            part = stamp.intersect(tile.box)
            mask = self.stamp.crop(part.relative_to(stamp).as_tuple())
            image.paste(self.ink, part.relative_to(tile.box).as_tuple(), mask)
        ctx.write(Tile.from_image(tile.box, image))


@functools.lru_cache(maxsize=64)
def _stamp(layout: WatermarkLayout) -> Image.Image:
    """Return the text's coverage mask, drawn once for each layout."""
    stamp = Image.new("L", (layout.stamp_size.width, layout.stamp_size.height), 0)
    draw_text(ImageDraw.Draw(stamp), layout, (0, 0))
    return stamp


def _bucket_keys(box: Box) -> list[tuple[int, int]]:
    return [
        (bx, by)
        for by in range(box.y0 // BUCKET, (box.y1 - 1) // BUCKET + 1)
        for bx in range(box.x0 // BUCKET, (box.x1 - 1) // BUCKET + 1)
    ]
