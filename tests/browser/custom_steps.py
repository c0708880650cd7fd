"""A third-party step for the browser tests, installed through TILEFLOW_STEP_MODULES like any other."""

from PIL import Image

from runtime.sdk import Field, ImageInfo, Step, StepContext, StepParams, Tile, TileKind, step


@step("tint", label="Colour tint", category="Studio extras")
class Tint(Step):
    """Blend every pixel towards one colour."""

    class Params(StepParams):
        color: str = Field("#ff8800", pattern=r"^#[0-9a-fA-F]{6}$", description="the colour to blend towards")
        amount: float = Field(0.3, ge=0, le=1)

    kind = TileKind.POINT

    def output_info(self) -> ImageInfo:
        return ImageInfo(self.input.size, "RGB")

    def process(self, tile: Tile, ctx: StepContext) -> None:
        image = tile.image().convert("RGB")
        colour = Image.new("RGB", image.size, self.params.color)
        ctx.write(tile.with_image(Image.blend(image, colour, self.params.amount)))
