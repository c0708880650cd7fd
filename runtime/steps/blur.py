from pydantic import Field

from runtime.registry import Step, StepParams, TileKind, step


@step("blur", label="Gaussian blur", category="Filter")
class Blur(Step):
    """Soften the image with a Gaussian blur of the given radius, as Pillow's GaussianBlur."""

    class Params(StepParams):
        radius: float = Field(2.0, ge=0, le=250)

    kind = TileKind.NEIGHBOURHOOD
