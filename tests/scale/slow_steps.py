"""A deliberately slow custom step, loaded through TILEFLOW_STEP_MODULES by the scale-out tests."""

from __future__ import annotations

import time

from pydantic import Field

from runtime.registry import Step, StepContext, StepParams, TileKind, step
from runtime.tiles import Tile


@step("slow", label="Slow copy", category="Testing")
class Slow(Step):
    """Copy each tile unchanged after sleeping: a stand-in for an expensive step."""

    class Params(StepParams):
        seconds: float = Field(0.1, ge=0, le=5)

    kind = TileKind.POINT

    def process(self, tile: Tile, ctx: StepContext) -> None:
        time.sleep(self.params.seconds)
        ctx.write(tile.crop(ctx.out_box))
