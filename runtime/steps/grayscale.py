"""Grayscale: Pillow's `convert("L")` luma. An RGBA image stays RGBA (gray channels, alpha kept),
because dropping the alpha would turn transparent areas black, which nobody asking for gray wants."""

from __future__ import annotations

from PIL import Image

from runtime.registry import ImageInfo, Step, StepContext, TileKind, step
from runtime.tiles import Tile


def grayscale_image(image: Image.Image) -> Image.Image:
    """Return `image` in gray: "L" for L and RGB, RGBA with equal colour channels for RGBA."""
    luma = image.convert("L")
    if image.mode != "RGBA":
        return luma
    return Image.merge("RGBA", (luma, luma, luma, image.getchannel("A")))


@step("grayscale", label="Grayscale", category="Colour")
class Grayscale(Step):
    """Keep only the brightness of each pixel (ITU-R 601-2 luma, as Pillow's convert("L"))."""

    kind = TileKind.POINT

    def output_info(self) -> ImageInfo:
        return ImageInfo(self.input.size, "RGBA" if self.input.mode == "RGBA" else "L")

    def process(self, tile: Tile, ctx: StepContext) -> None:
        ctx.write(Tile.from_image(ctx.out_box, grayscale_image(tile.view())))
