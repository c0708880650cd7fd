from typing import Literal

from pydantic import Field

from runtime.registry import Step, StepParams, TileKind, step

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center", "tiled"]


@step("watermark", label="Text watermark", category="Annotate")
class Watermark(Step):
    """Draw a text over the image, in any script (Chinese included), at a corner, the centre, or tiled."""

    class Params(StepParams):
        text: str = Field(..., min_length=1, max_length=500)
        opacity: float = Field(0.5, ge=0, le=1)
        position: Position = "bottom-right"
        font_size: int | None = Field(None, ge=1, le=2000, description="pixels; automatic when left out")
        color: str = Field("#ffffff", pattern=r"^#[0-9a-fA-F]{6}$", json_schema_extra={"format": "color"})

    kind = TileKind.POINT
