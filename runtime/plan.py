"""Compile a graph and a source header into a plan: geometry, segments and tasks.

Pure functions, no Django and no Channels: the conductor executes a plan, tests inspect it.

- Every node's output image (size, mode) is known before any pixel is decoded.
- Nodes are grouped into *segments*: maximal chains that one worker runs back to back on a tile.
  A segment reads from a *store* (the source, or a node whose output is materialised because it
  fans out or feeds an output) and fills the store of its last node.
- A *task* is one output tile of a segment: the box it produces, the box each node of the chain
  produces on the way (halos accumulate backwards through `Step.needs`), and the region of the
  input store it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.registry import ImageInfo, Step, StepParams
from runtime.tiles import Box


@dataclass(frozen=True, slots=True)
class NodePlan:
    id: str
    type: str
    params: StepParams
    step: Step | None  # None for source and output nodes
    input: ImageInfo | None  # None for the source
    output: ImageInfo  # for an output node: the image it encodes
    inputs: tuple[str, ...]  # upstream node ids (empty for the source)


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    input_store: str  # node id whose materialised output the segment reads
    chain: tuple[str, ...]  # node ids run in order on each tile; chain[-1] fills its own store
    lane: str


@dataclass(frozen=True, slots=True)
class Task:
    segment: int
    index: int  # position of out_box in the grid of chain[-1]'s output
    out_box: Box  # the tile this task produces, in chain[-1]'s output coordinates
    boxes: tuple[Box, ...]  # the box each chain node produces; boxes[-1] == out_box
    region: Box  # the part of the input store the task reads (halos included)


@dataclass(frozen=True, slots=True)
class Plan:
    tile_size: int
    nodes: dict[str, NodePlan]
    order: tuple[str, ...]  # topological order of node ids
    source: str  # the source node id
    stores: tuple[str, ...]  # node ids whose output is materialised (source first)
    segments: tuple[Segment, ...]
    tasks: tuple[Task, ...]  # in dispatch order: rows of the output first
    outputs: tuple[str, ...]  # output node ids
    totals: dict[str, int]  # tiles each node will process (progress `total`)
