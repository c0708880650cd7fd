from typing import Literal

from pydantic import Field, model_validator

from runtime.registry import Step, StepParams, TileKind, step


@step("resize", label="Resize", category="Transform")
class Resize(Step):
    """Scale the image down by a factor, or to fit inside a width and/or height, keeping its aspect ratio."""

    class Params(StepParams):
        scale: float | None = Field(None, gt=0, le=1, description="factor in (0, 1]")
        width: int | None = Field(None, ge=1, le=100_000, description="fit inside this width (px)")
        height: int | None = Field(None, ge=1, le=100_000, description="fit inside this height (px)")
        resample: Literal["lanczos", "bilinear", "nearest"] = "lanczos"

        @model_validator(mode="after")
        def _one_way_to_size(self):
            if self.scale is None and self.width is None and self.height is None:
                raise ValueError("give either scale, or width and/or height")
            if self.scale is not None and (self.width is not None or self.height is not None):
                raise ValueError("give either scale, or width and/or height, not both")
            return self

    kind = TileKind.GEOMETRY
