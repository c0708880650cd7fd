"""Rotate by quarter turns, clockwise, without loss (Pillow's `transpose`)."""

from __future__ import annotations

from typing import Literal

from PIL import Image

from runtime.geometry import flip_x, flip_y, transpose_box
from runtime.registry import ImageInfo, Step, StepContext, StepParams, TileKind, step
from runtime.tiles import Box, Size, Tile

# Pillow's ROTATE_* turn counter-clockwise.
CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


@step("rotate", label="Rotate", category="Transform")
class Rotate(Step):
    """Turn the image clockwise by a quarter, half or three-quarter turn, without loss."""

    class Params(StepParams):
        angle: Literal[90, 180, 270]

    kind = TileKind.GEOMETRY

    def __init__(self, params: Params, input: ImageInfo) -> None:
        super().__init__(params, input)
        self.method = CLOCKWISE[params.angle]

    def output_info(self) -> ImageInfo:
        size = self.input.size
        if self.params.angle == 180:
            return self.input
        return ImageInfo(Size(size.height, size.width), self.input.mode)

    def needs(self, box: Box) -> Box:
        size = self.input.size
        if self.params.angle == 90:
            # out(x, y) = in(y, H - 1 - x)
            return flip_y(transpose_box(box), size.height)
        if self.params.angle == 270:
            # out(x, y) = in(W - 1 - y, x)
            return flip_x(transpose_box(box), size.width)
        return flip_y(flip_x(box, size.width), size.height)

    def process(self, tile: Tile, ctx: StepContext) -> None:
        ctx.write(Tile.from_image(ctx.out_box, tile.view().transpose(self.method)))
