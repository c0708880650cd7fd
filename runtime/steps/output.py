from typing import Literal

from pydantic import Field

from runtime.registry import Step, StepParams, TileKind, step


@step("output", label="Image output", category="Input / output")
class Output(Step):
    """Encode the result file. PNG and JPEG stream band by band as tiles finish; WebP is encoded
    once the whole image is done (its encoder cannot stream), so its first byte comes last."""

    class Params(StepParams):
        format: Literal["png", "jpeg", "webp"] = "png"
        quality: int = Field(85, ge=1, le=100, description="JPEG and WebP quality")

    kind = TileKind.OUTPUT
