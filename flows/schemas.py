"""Shapes of the JSON API's bodies (CONTRACT §3), shared by its routers and shown in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import Field, StringConstraints

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
