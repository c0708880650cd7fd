"""What a run is given: the flow, where its input and outputs live, and the limits it runs under."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtime.decode import SourceHeader
from runtime.tiles import Size
from runtime.upload import UploadStream

if TYPE_CHECKING:
    from runtime.admission import RunCost


@dataclass(frozen=True, slots=True)
class RunLimits:
    tile_size: int = 512
    max_in_flight: int = 8
    lease_seconds: float = 30.0
    max_attempts: int = 3
    max_pixels: int = 150_000_000
    heartbeat_seconds: float = 2.0
    # Someone waits for the run's first band (a /run client, the live monitor). Off for a run nobody
    # watches as it goes (batch items, trigger runs): its grids have no short first rows, so fewer
    # tiles to move (`geometry.row_bounds`), and "running" is saved only if it lasts (`recording`).
    interactive: bool = True
    # An image of at most this many tiles is cut into tiles twice as large. Every tile costs the same
    # fixed work whatever its size (a pipeline to build, a dispatch, progress), and a small image has
    # few pixels to spread over the cores. Its first rows stay short when someone waits: a 2 MP photo
    # is 10 tiles instead of 24; 2 MP runs from 4 clients went from 16 to 22 a second, first byte 34
    # → 29 ms (docs/benchmarks.md). 0: every image in `tile_size` tiles.
    small_image_tiles: int = 0

    def grid(self, size: Size) -> tuple[int, bool]:
        """Return the tile size and whether the first rows are short for a run on an image of `size`."""
        small = size.width * size.height <= self.small_image_tiles * self.tile_size**2
        return 2 * self.tile_size if small else self.tile_size, self.interactive


@dataclass(frozen=True, slots=True)
class RunSpec:
    execution: str
    graph: dict[str, Any]
    input_path: Path
    output_dir: Path
    limits: RunLimits = RunLimits()
    header: SourceHeader | None = None  # the input's header when the caller has probed it already
    # The input's bytes when the caller holds them: the run decodes them while the file is being stored.
    input_data: bytes | None = None
    # The input while it is still arriving: the run decodes it as it comes.
    input_stream: UploadStream | None = None
    # The run's memory cost when the caller estimated it already (`runtime.api.admit`, under these limits).
    cost: RunCost | None = None


class RunRecorder(Protocol):
    async def save(self, snapshot: dict[str, Any], *, final: bool) -> None: ...
