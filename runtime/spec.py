"""What a run is given: the flow, where its input and outputs live, and the limits it runs under."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from runtime.decode import SourceHeader
from runtime.upload import UploadStream


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


class RunRecorder(Protocol):
    async def save(self, snapshot: dict[str, Any], *, final: bool) -> None: ...
