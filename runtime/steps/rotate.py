from typing import Literal

from runtime.registry import Step, StepParams, TileKind, step


@step("rotate", label="Rotate", category="Transform")
class Rotate(Step):
    """Turn the image clockwise by a quarter, half or three-quarter turn, without loss."""

    class Params(StepParams):
        angle: Literal[90, 180, 270]

    kind = TileKind.GEOMETRY
