"""Step catalog and flow calls of CONTRACT §3: GET /steps, and list, create, read, replace, delete flows.

Added for the console: rename (PATCH), duplicate, import as a copy (`on_conflict=copy`), and versions
(every save is kept; listed with what changed, restorable).
"""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from ninja import Router, Status

from flows import versions
from flows.auth import get_owned_or_404
from flows.catalog_i18n import translate_catalog
from flows.models import Flow, FlowVersion
from flows.schemas import (
    DuplicateIn,
    ErrorOut,
    ErrorsOut,
    FlowIn,
    FlowOut,
    FlowPatch,
    FlowsOut,
    FlowVersionOut,
    FlowVersionsOut,
    StepsOut,
)
from flows.validation import GraphError, validate_graph
from runtime import api as runtime

router = Router(tags=["flows"])

# A 400 names each wrong field or node ({"errors"}), or says the body could not be read at all ({"error"}).
ERRORS = {400: ErrorsOut | ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}
COPY_SUFFIX_LIMIT = 1000


@router.get("/steps", response={200: StepsOut, 401: ErrorOut}, tags=["steps"])
def list_steps(request: HttpRequest) -> dict:
    """List every step type with its params as JSON Schema, in the language of `Accept-Language`."""
    return {"steps": translate_catalog(runtime.catalog())}


@router.get("/flows", response={200: FlowsOut, 401: ErrorOut})
def list_flows(request: HttpRequest) -> dict:
    """List the caller's flows, most recently changed first."""
    return {"flows": list(Flow.objects.filter(owner=request.auth))}


@router.post("/flows", response={201: FlowOut, **ERRORS})
def create_flow(request: HttpRequest, document: FlowIn, on_conflict: Literal["error", "copy"] = "error") -> Status:
    """Create a flow from a flow document; an invalid graph is refused with every error named.

    With `on_conflict=copy`, a name already taken is given a free one ("name (2)") instead of a 400.
    """
    if on_conflict == "copy":
        document = document.model_copy(update={"name": free_name(request.auth, document.name)})
    errors = document_errors(request.auth, document, flow=None)
    if errors:
        return Status(400, {"errors": [error.as_dict() for error in errors]})
    try:
        with transaction.atomic():
            flow = Flow.objects.create(
                owner=request.auth, name=document.name, description=document.description, graph=document.graph
            )
            versions.record(flow)
    except IntegrityError:  # a concurrent create took the name between the check and the insert
        return Status(400, {"errors": [name_taken(document.name).as_dict()]})
    return Status(201, flow)


@router.get("/flows/{flow_id}", response={200: FlowOut, 401: ErrorOut, 404: ErrorOut})
def get_flow(request: HttpRequest, flow_id: str) -> Flow:
    """Return one of the caller's flows."""
    return get_owned_or_404(Flow, request.auth, flow_id)


@router.put("/flows/{flow_id}", response={200: FlowOut, **ERRORS})
def replace_flow(request: HttpRequest, flow_id: str, document: FlowIn) -> Status:
    """Replace a flow's document; its version grows by one."""
    return _save(request, flow_id, lambda flow: document)


@router.patch("/flows/{flow_id}", response={200: FlowOut, **ERRORS})
def patch_flow(request: HttpRequest, flow_id: str, patch: FlowPatch) -> Status:
    """Rename a flow or change its description (a new version); the graph stays as it is."""

    def patched(flow: Flow) -> FlowIn:
        return FlowIn(
            name=patch.name if patch.name is not None else flow.name,
            description=patch.description if patch.description is not None else flow.description,
            graph=flow.graph,
        )

    return _save(request, flow_id, patched)


@router.delete("/flows/{flow_id}", response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut})
def delete_flow(request: HttpRequest, flow_id: str) -> Status:
    """Delete a flow; its past executions stay, with the flow's name and their frozen graph."""
    get_owned_or_404(Flow, request.auth, flow_id).delete()
    return Status(204, None)


@router.post(
    "/flows/{flow_id}/duplicate",
    response={201: FlowOut, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
                    }
                }
            },
        }
    },
)
def duplicate_flow(request: HttpRequest, flow_id: str) -> Status:
    """Copy a flow under a new name (by default "name (copy)", numbered when taken); a new flow at version 1.

    The body is optional: `{"name": "…"}` asks for a name.
    """
    flow = get_owned_or_404(Flow, request.auth, flow_id)
    try:
        is_json = request.content_type == "application/json" and request.body.strip()
        body = DuplicateIn.model_validate_json(request.body) if is_json else DuplicateIn()
    except ValueError:
        return Status(400, {"error": 'the body must be empty or {"name": "…"}'})
    wanted = body.name or f"{flow.name} (copy)"
    document = FlowIn(name=free_name(request.auth, wanted[:200]), description=flow.description, graph=flow.graph)
    return create_flow(request, document)


@router.get("/flows/{flow_id}/versions", response={200: FlowVersionsOut, 401: ErrorOut, 404: ErrorOut})
def list_versions(request: HttpRequest, flow_id: str) -> dict:
    """List a flow's saved versions, newest first, each with the nodes, params and links it changed."""
    flow = get_owned_or_404(Flow, request.auth, flow_id)
    return {"versions": versions.history(flow)}


@router.get("/flows/{flow_id}/versions/{version}", response={200: FlowVersionOut, **ERRORS})
def get_version(request: HttpRequest, flow_id: str, version: int) -> FlowVersion:
    """Return one saved version of a flow, with its graph."""
    flow = get_owned_or_404(Flow, request.auth, flow_id)
    return get_owned_version(flow, version)


@router.post("/flows/{flow_id}/versions/{version}/restore", response={200: FlowOut, **ERRORS})
def restore_version(request: HttpRequest, flow_id: str, version: int) -> Status:
    """Make an earlier version current again, as a new version (nothing in between is lost)."""
    flow = get_owned_or_404(Flow, request.auth, flow_id)
    old = get_owned_version(flow, version)
    document = FlowIn(name=old.name, description=old.description, graph=old.graph)
    return _save(request, flow_id, lambda flow: document, restored_from=old.version)


def get_owned_version(flow: Flow, version: int) -> FlowVersion:
    row = FlowVersion.objects.filter(flow=flow, version=version).first()
    if row is None:
        raise Http404(f"flow has no version {version}")
    return row


def _save(request: HttpRequest, flow_id: str, document_for, *, restored_from: int | None = None) -> Status:
    """Replace a flow with `document_for(flow)`, validated, as a new version that is recorded."""
    with transaction.atomic():
        flow = get_owned_or_404(Flow.objects.select_for_update(), request.auth, flow_id)
        document = document_for(flow)
        errors = document_errors(request.auth, document, flow=flow)
        if errors:
            return Status(400, {"errors": [error.as_dict() for error in errors]})
        flow.name, flow.description, flow.graph = document.name, document.description, document.graph
        flow.version += 1
        try:
            with transaction.atomic():
                flow.save()
                versions.record(flow, restored_from=restored_from)
        except IntegrityError:
            return Status(400, {"errors": [name_taken(document.name).as_dict()]})
    return Status(200, flow)


def document_errors(owner, document: FlowIn, *, flow: Flow | None) -> list[GraphError]:
    """Return what is wrong with a flow document for `owner`: a taken name, then the graph's errors."""
    errors = []
    others = Flow.objects.filter(owner=owner, name=document.name)
    if flow is not None:
        others = others.exclude(pk=flow.pk)
    if others.exists():
        errors.append(name_taken(document.name))
    errors += graph_errors(document.graph)
    return errors


def graph_errors(graph) -> list[GraphError]:
    """Return what is wrong with a graph, within the configured limits."""
    limits = settings.TILEFLOW
    return validate_graph(graph, max_nodes=limits["MAX_NODES"], max_text=limits["MAX_WATERMARK_TEXT"])


def free_name(owner, name: str) -> str:
    """Return `name`, or "name (2)", "name (3)"… whichever the owner does not use yet."""
    taken = set(Flow.objects.filter(owner=owner, name__startswith=name[:150]).values_list("name", flat=True))
    if name not in taken:
        return name
    for number in range(2, COPY_SUFFIX_LIMIT):
        suffix = f" ({number})"
        candidate = name[: 200 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    return name  # refused as taken, with the usual message


def name_taken(name: str) -> GraphError:
    return GraphError(None, f"you already have a flow named {name!r}; flow names are unique per user")
