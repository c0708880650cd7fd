from runtime.registry import Step, TileKind, step


@step("grayscale", label="Grayscale", category="Colour")
class Grayscale(Step):
    """Keep only the brightness of each pixel (ITU-R 601-2 luma, as Pillow's convert("L"))."""

    kind = TileKind.POINT
