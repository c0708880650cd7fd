"""Everything a step needs, in one import: `from runtime.sdk import step, Step, StepParams, ...`.

Built-in steps and third-party steps (modules named in TILEFLOW_STEP_MODULES) are written the
same way; see docs/steps.md.
"""

from pydantic import Field

from runtime.registry import ImageInfo, Step, StepContext, StepParams, TileKind, step
from runtime.tiles import Box, Size, Tile

__all__ = ["Box", "Field", "ImageInfo", "Size", "Step", "StepContext", "StepParams", "Tile", "TileKind", "step"]
