"""Run a segment's chain of steps on one tile: what a worker does for one task.

Step `i` is called with a tile covering exactly `needs(boxes[i])` and `ctx.out_box = boxes[i]`.
What it writes goes on to step `i + 1`:

- nothing: the tile is dropped, later steps do not run and the task yields no tile;
- into a POINT step: each written tile (clipped to `boxes[i + 1]`) is processed on its own, with
  that clipped box as its `out_box`, so a step may split its output and the pieces stream on;
- into any other step: the written tiles are assembled (later ones over earlier ones) into the
  region the next step needs, which they must cover; otherwise the chain fails with ChainError.

The tiles written by the last step are the task's result. Pure and thread-safe: steps are
read-only after `__init__` and all state here is local to the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from runtime.registry import Step, StepContext, TileKind
from runtime.tiles import Box, Tile


class ChainError(RuntimeError):
    """A step wrote tiles that do not give the next step the region it needs."""


@dataclass(frozen=True, slots=True)
class ChainResult:
    tiles: tuple[Tile, ...]  # what the last step wrote
    busy: dict[str, float] = field(default_factory=dict)  # seconds spent in `process`, per node id


def run_chain(
    steps: list[tuple[str, Step]],
    boxes: tuple[Box, ...],
    tile: Tile,
    on_step_done: Callable[[str], None] | None = None,
) -> ChainResult:
    """Run `steps` (node id, step) on `tile`; step i produces `boxes[i]`. `on_step_done(node_id)` after each step."""
    if len(steps) != len(boxes):
        raise ValueError(f"{len(steps)} steps but {len(boxes)} boxes")
    busy: dict[str, float] = {}
    pending: list[tuple[Tile, Box]] = [(tile, boxes[0])] if steps else []
    written: list[Tile] = [tile]
    for position, (node_id, step) in enumerate(steps):
        written = []
        started = time.perf_counter()
        for given, out_box in pending:
            ctx = StepContext(node_id, out_box, step.input, step.output_info(), written.append)
            step.process(given.crop(step.needs(out_box)), ctx)
        busy[node_id] = time.perf_counter() - started
        if on_step_done is not None:
            on_step_done(node_id)
        if position + 1 < len(steps):
            pending = _hand_on(written, steps[position + 1][1], boxes[position + 1], node_id)
            if not pending:
                return ChainResult((), busy)
    return ChainResult(tuple(_standalone(tile) for tile in written), busy)


def _standalone(tile: Tile) -> Tile:
    """Return `tile` holding its own pixels: a part of the decoder's target must not outlive its task.

    A step may hand on its input, or a crop of it, as it is; when that input is an uncut part of the
    decoder's target, the target's rows may be given back as soon as the task is done (`runtime.targets`).
    """
    if tile.parent() is not None:
        tile.view()  # cuts it out of the parent, and lets the parent go
    return tile


def _hand_on(written: list[Tile], step: Step, out_box: Box, writer: str) -> list[tuple[Tile, Box]]:
    """Return the (tile, out_box) calls the next step gets from what the previous step wrote."""
    if not written:
        return []
    if step.kind is TileKind.POINT:
        calls = []
        for tile in written:
            part = tile.box.intersect(out_box)
            if not part.empty:
                calls.append((tile.crop(part), part))
        return calls
    region = step.needs(out_box)
    for tile in written:
        if tile.box.contains(region):
            return [(tile, out_box)]
    return [(assemble(written, region, writer), out_box)]


def assemble(tiles: list[Tile], region: Box, writer: str = "") -> Tile:
    """Return the tile of `region` pasted together from `tiles` (later over earlier); they must cover it."""
    canvas = Image.new(tiles[0].mode, (region.width, region.height))
    coverage = Image.new("L", (region.width, region.height), 0)
    for tile in tiles:
        part = tile.box.intersect(region)
        if part.empty:
            continue
        canvas.paste(tile.crop(part).view(), part.relative_to(region).as_tuple()[:2])
        coverage.paste(255, part.relative_to(region).as_tuple())
    if coverage.getextrema()[0] != 255:
        raise ChainError(f"tiles written by {writer!r} do not cover {region}, which the next step needs")
    return Tile.from_image(region, canvas)
