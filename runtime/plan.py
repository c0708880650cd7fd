"""Compile a graph and a source header into a plan: geometry, segments and tasks.

Pure functions, no Django and no Channels: the conductor executes a plan, tests inspect it.

- Every node's output image (size, mode) is known before any pixel is decoded.
- Nodes are grouped into *segments*: maximal chains that one worker runs back to back on a tile.
  A segment reads from a *store* (the source, or a node whose output is materialised because it
  fans out or feeds an output) and fills the store of its last node.
- Every node's output is cut by the same kind of grid (`geometry.tile_grid`): `tile_size` columns,
  rows short at the top (`geometry.row_bounds`) so the first output band needs few source rows.
- A *task* is one output tile of a segment: the box it produces, the box each node of the chain
  produces on the way (halos accumulate backwards through `Step.needs`), and the region of the
  input store it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.geometry import grid_shape, tile_grid, tiles_meeting
from runtime.registry import ImageInfo, Step, StepParams, StepRegistry, TileKind, registry
from runtime.tiles import Box


class PlanError(ValueError):
    """The graph cannot be planned (it should have been rejected by validation, or a step refused its input)."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


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
    short_rows: bool  # the grids' first rows are short (`geometry.row_bounds`)
    nodes: dict[str, NodePlan]
    order: tuple[str, ...]  # topological order of node ids
    source: str  # the source node id
    stores: tuple[str, ...]  # node ids whose output is materialised (source first)
    segments: tuple[Segment, ...]
    tasks: tuple[Task, ...]  # in dispatch order: rows of the output first
    outputs: tuple[str, ...]  # output node ids
    totals: dict[str, int]  # tiles each node will process (progress `total`)

    def grid(self, node_id: str) -> list[Box]:
        """Return the tile grid of a node's output image (the tiles of its store)."""
        size = self.nodes[node_id].output.size
        return tile_grid(size, self.tile_size, self.short_rows)

    def needed_tiles(self, task: Task) -> list[int]:
        """Return the indices of the input-store tiles that `task`'s region overlaps."""
        store = self.segments[task.segment].input_store
        return tiles_meeting(task.region, self.nodes[store].output.size, self.tile_size, self.short_rows)

    def read_by_tasks_only(self, store: str) -> bool:
        """Tell whether only tasks read `store`: no output encodes it as it is (an encoder joins its tiles later)."""
        return all(self.nodes[output].inputs[0] != store for output in self.outputs)

    def reference_counts(self) -> dict[str, list[int]]:
        """Return, per store, how many readers each of its tiles has: tasks, plus one per output node."""
        counts = {store: [0] * len(self.grid(store)) for store in self.stores}
        for task in self.tasks:
            store = self.segments[task.segment].input_store
            for index in self.needed_tiles(task):
                counts[store][index] += 1
        for output in self.outputs:
            (store,) = self.nodes[output].inputs
            counts[store] = [count + 1 for count in counts[store]]
        return counts


def compile_plan(
    graph: dict[str, Any],
    source: ImageInfo,
    *,
    tile_size: int = 512,
    short_rows: bool = True,
    registry: StepRegistry = registry,
) -> Plan:
    """Return the plan of an already validated `graph` run on a source image described by `source`.

    Every node's grid is `tile_size` tiles, its first rows short unless `short_rows` is false.

    Task order: each task is keyed by the last row of *source* tiles it ultimately depends on
    (through every upstream segment), then by segment depth. The conductor decodes the source band
    by band, so this dispatches every task as soon as the rows it needs can exist, upstream before
    downstream, and the output's first rows are complete after the fewest source rows.
    """
    if tile_size < 1:
        raise PlanError(f"tile size must be at least 1, not {tile_size}")
    declared = [(node["id"], node["type"], node.get("params") or {}) for node in graph["nodes"]]
    inputs: dict[str, list[str]] = {node_id: [] for node_id, _, _ in declared}
    consumers: dict[str, list[str]] = {node_id: [] for node_id, _, _ in declared}
    for edge in graph["edges"]:
        inputs[edge["to"]].append(edge["from"])
        consumers[edge["from"]].append(edge["to"])
    order = _topological_order([node_id for node_id, _, _ in declared], inputs, consumers)
    nodes = _plan_nodes(declared, order, inputs, source, registry)

    source_id = next(node_id for node_id in order if nodes[node_id].type == "source")
    outputs = tuple(node_id for node_id in order if nodes[node_id].type == "output")
    stores = tuple(node_id for node_id in order if _is_store(node_id, nodes, consumers))
    segments = _segments(order, nodes, consumers, set(stores))
    tasks = _tasks(segments, nodes, stores, source_id, tile_size, short_rows)

    totals: dict[str, int] = {source_id: len(tile_grid(nodes[source_id].output.size, tile_size, short_rows))}
    for segment in segments:
        count = sum(1 for task in tasks if task.segment == segment.id)
        totals.update({node_id: count for node_id in segment.chain})
    for output in outputs:
        totals[output] = len(tile_grid(nodes[output].output.size, tile_size, short_rows))
    return Plan(
        tile_size=tile_size,
        short_rows=short_rows,
        nodes=nodes,
        order=order,
        source=source_id,
        stores=stores,
        segments=segments,
        tasks=tasks,
        outputs=outputs,
        totals=totals,
    )


def _topological_order(
    ids: list[str], inputs: dict[str, list[str]], consumers: dict[str, list[str]]
) -> tuple[str, ...]:
    """Return the node ids in dependency order, ties kept in declaration order (Kahn)."""
    waiting = {node_id: len(inputs[node_id]) for node_id in ids}
    ready = [node_id for node_id in ids if waiting[node_id] == 0]
    order: list[str] = []
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        for consumer in consumers[node_id]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) != len(ids):
        raise PlanError("the graph has a cycle")
    return tuple(order)


def _plan_nodes(
    declared: list[tuple[str, str, dict[str, Any]]],
    order: tuple[str, ...],
    inputs: dict[str, list[str]],
    source: ImageInfo,
    registry: StepRegistry,
) -> dict[str, NodePlan]:
    by_id = {node_id: (type_name, params) for node_id, type_name, params in declared}
    nodes: dict[str, NodePlan] = {}
    for node_id in order:
        type_name, raw_params = by_id[node_id]
        step_class = registry.get(type_name)
        if step_class is None:
            raise PlanError(f"node {node_id!r}: unknown step type {type_name!r}")
        params = step_class.Params(**raw_params)
        upstream = tuple(inputs[node_id])
        if step_class.kind is TileKind.SOURCE:
            nodes[node_id] = NodePlan(node_id, type_name, params, None, None, source, upstream)
            continue
        if len(upstream) != 1:
            raise PlanError(f"node {node_id!r} must have exactly one input, not {len(upstream)}")
        input_info = nodes[upstream[0]].output
        if step_class.kind is TileKind.OUTPUT:
            nodes[node_id] = NodePlan(node_id, type_name, params, None, input_info, input_info, upstream)
            continue
        try:
            instance = step_class(params, input_info)
        except ValueError as error:  # e.g. a watermark whose text no installed font can draw
            raise PlanError(f"node {node_id!r}: {error}", node=node_id) from error
        nodes[node_id] = NodePlan(node_id, type_name, params, instance, input_info, instance.output_info(), upstream)
    return nodes


def _is_store(node_id: str, nodes: dict[str, NodePlan], consumers: dict[str, list[str]]) -> bool:
    """Return whether a node's output is materialised rather than streamed on within a chain."""
    node = nodes[node_id]
    if node.step is None:
        return node.inputs == ()  # the source; output nodes encode their input's store
    after = [nodes[consumer] for consumer in consumers[node_id]]
    if len(after) != 1 or after[0].step is None:
        return True  # fan-out, or it feeds an output
    # A whole-image step reads all of its input and its output would be recomputed per tile.
    whole = TileKind.WHOLE_IMAGE
    return after[0].step.lane != node.step.lane or whole in (after[0].step.kind, node.step.kind)


def _segments(
    order: tuple[str, ...], nodes: dict[str, NodePlan], consumers: dict[str, list[str]], stores: set[str]
) -> tuple[Segment, ...]:
    segments = []
    for node_id in order:
        node = nodes[node_id]
        if node.step is None or node.inputs[0] not in stores:
            continue
        chain = [node_id]
        while chain[-1] not in stores:
            chain.append(consumers[chain[-1]][0])
        segments.append(Segment(len(segments), node.inputs[0], tuple(chain), node.step.lane))
    return tuple(segments)


def _tasks(
    segments: tuple[Segment, ...],
    nodes: dict[str, NodePlan],
    stores: tuple[str, ...],
    source_id: str,
    tile_size: int,
    short: bool,
) -> tuple[Task, ...]:
    producer = {segment.chain[-1]: segment for segment in segments}
    depth: dict[int, int] = {}
    # Per store tile: the last source tile row it depends on (the source's own tiles: their row).
    ready_row: dict[str, list[int]] = {}
    source_size = nodes[source_id].output.size
    columns, rows = grid_shape(source_size, tile_size, short)
    ready_row[source_id] = [row for row in range(rows) for _ in range(columns)]
    keyed = []
    for store in stores:
        if store == source_id:
            continue
        segment = producer[store]
        depth[segment.id] = depth.get(producer[segment.input_store].id, 0) + 1 if segment.input_store in producer else 1
        steps = [nodes[node_id].step for node_id in segment.chain]
        input_size = nodes[segment.input_store].output.size
        rows = []
        for index, out_box in enumerate(tile_grid(nodes[store].output.size, tile_size, short)):
            boxes = [out_box]
            for step in reversed(steps[1:]):
                boxes.insert(0, step.needs(boxes[0]))
            region = steps[0].needs(boxes[0])
            row = max(ready_row[segment.input_store][i] for i in tiles_meeting(region, input_size, tile_size, short))
            rows.append(row)
            keyed.append(
                ((row, depth[segment.id], segment.id, index), Task(segment.id, index, out_box, tuple(boxes), region))
            )
        ready_row[store] = rows
    keyed.sort(key=lambda pair: pair[0])
    return tuple(task for _, task in keyed)
