"""Shapes of the JSON API's bodies (CONTRACT §3), shared by its routers and shown in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import Field, StringConstraints, WithJsonSchema

CONTRACT_EXAMPLE_GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 80}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "mark", "type": "watermark", "params": {"text": "© ACME", "opacity": 0.5, "position": "bottom-right"}},
        {"id": "out", "type": "output", "params": {"format": "jpeg", "quality": 85}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "mark"}, {"from": "mark", "to": "out"}],
}
GRAPH_DESCRIPTION = (
    "`nodes`: [{id, type, params, position?}], `edges`: [{from, to}]; checked as CONTRACT §1 says "
    "(one source, at least one output, no cycle, every node on a path from the source to an output, "
    "params as the step catalog's params_schema)."
)


class ErrorOut(Schema):
    error: str


class GraphErrorOut(Schema):
    node: str | None = Field(description="the node concerned, or null for the whole document")
    message: str


class ErrorsOut(Schema):
    errors: list[GraphErrorOut]


class StepOut(Schema):
    type: str
    label: str
    category: str
    description: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the step's params")
    category_key: str = Field("", description="the category's untranslated name (stable across languages)")
    aliases: list[str] = Field(default_factory=list, description="label, description, category in other languages")


class StepsOut(Schema):
    steps: list[StepOut]


class FlowIn(Schema):
    """A flow document: what a client sends to create or replace a flow."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        examples=["compress-and-watermark"]
    )
    description: str = Field("", max_length=10_000)
    graph: dict[str, Any] = Field(description=GRAPH_DESCRIPTION, examples=[CONTRACT_EXAMPLE_GRAPH])


class FlowOut(Schema):
    """A stored flow: the document plus what the server keeps about it."""

    id: str
    name: str
    description: str
    graph: dict[str, Any]
    version: int = Field(description="1 when created, one more at each replacement")
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_id(flow: Any) -> str:
        return str(flow.id)


class FlowsOut(Schema):
    flows: list[FlowOut]


class FlowPatch(Schema):
    """Rename a flow or change its description."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    description: str | None = Field(None, max_length=10_000)


class DuplicateIn(Schema):
    # Leave `name` out for the default name; null is not a name (the schema says string) and answers 400.
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = None


class FlowVersionOut(Schema):
    """One saved version of a flow."""

    version: int
    name: str
    description: str
    graph: dict[str, Any]
    created_at: datetime
    restored_from: int | None


class FlowVersionEntry(Schema):
    version: int
    name: str
    created_at: datetime
    restored_from: int | None = Field(description="the version this save restored, if it was a restore")
    current: bool
    changes: dict[str, Any] = Field(
        description="from the version before: nodes_added, nodes_removed, nodes_changed (type, params_added, "
        "params_removed, params_changed), edges_added, edges_removed, renamed, description_changed"
    )


class FlowVersionsOut(Schema):
    versions: list[FlowVersionEntry]


# An ISO-8601 moment as the execution payload writes it (`datetime.isoformat()`), kept a string so the REST
# answer and the websocket snapshot (which shares the payload) show the same text.
Moment = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
ExecutionStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class NodeProgressOut(Schema):
    status: Literal["pending", "running", "done", "failed"]
    done: int = Field(description="tiles this node has finished")
    total: int = Field(description="tiles this node will receive")
    busy_ms: int | None = Field(None, description="time spent working on its tiles")
    started_ms: int | None = Field(None, description="when it started, from the run's start")
    finished_ms: int | None = Field(None, description="when it finished, from the run's start")


class ExecutionInputOut(Schema):
    name: str = Field(description="the uploaded file's name")
    size: int = Field(description="bytes")
    width: int
    height: int
    format: str = Field(description="as Pillow names it: JPEG, PNG, WEBP, GIF, BMP, TIFF")
    url: str = Field(description="where the owner downloads it")


class ExecutionOutputOut(Schema):
    node: str
    url: str
    content_type: str
    size: int = Field(description="bytes written so far")
    complete: bool


class ExecutionOut(Schema):
    """An execution (CONTRACT §3): a run of a flow's graph, frozen at its start, on one uploaded image."""

    id: str
    flow: str | None = Field(description="the flow's id; null once the flow is deleted")
    flow_name: str
    flow_version: int
    draft: bool = Field(False, description="ran the editor's unsaved graph (`graph`), not the saved version")
    owner: str
    status: ExecutionStatus
    created_at: Moment
    started_at: Moment | None
    first_output_at: Moment | None
    finished_at: Moment | None
    duration_ms: int | None
    time_to_first_output_ms: int | None
    error: str | None = Field(description="why it failed, for the person who ran it")
    retries: int = Field(description="tiles sent again after a worker did not answer")
    duplicates: int = Field(0, description="tile results received twice and dropped")
    workers: dict[str, int] = Field(default_factory=dict, description="tiles done per worker process (host:pid)")
    nodes: dict[str, NodeProgressOut]
    timeline: dict[str, list[list[int]]] = Field(description="per node: [start_ms, end_ms] of each tile")
    graph: dict[str, Any]
    input: ExecutionInputOut
    outputs: list[ExecutionOutputOut]


class ExecutionsOut(Schema):
    executions: list[ExecutionOut]


class NodePreviewOut(Schema):
    """One node of a finished run, inspected: what it produced."""

    node: str
    width: int
    height: int
    mode: str = Field(description="Pillow's mode of the node's image: L, RGB or RGBA")
    url: str = Field(description="a PNG preview of it, at most 480 px on its longer side")


class BatchItemOut(Schema):
    index: int = Field(description="its place in the batch, from 0")
    name: str = Field(description="the input's name, with its folders inside an archive or a dropped folder")
    execution: str | None = Field(description="its execution; null when it never ran (not an image, unsafe, ...)")
    status: ExecutionStatus
    error: str | None
    size: int = Field(description="bytes of the stored input")
    started_at: Moment | None
    finished_at: Moment | None
    duration_ms: int | None
    input_url: str | None


class BatchOut(Schema):
    """A batch (CONTRACT §7): one flow over many images, each item one execution."""

    id: str
    flow: str | None
    flow_name: str
    flow_version: int
    status: ExecutionStatus
    created_at: Moment
    finished_at: Moment | None
    total: int
    succeeded: int
    failed: int
    cancelled: int
    queued: int = Field(description="items not started yet")
    running: int
    outputs: list[str] = Field(description="the flow's output nodes")
    results_url: str
    items: list[BatchItemOut] | None = Field(None, description="left out of lists")


class BatchesOut(Schema):
    batches: list[BatchOut]
