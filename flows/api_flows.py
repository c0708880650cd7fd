"""Step catalog and flow calls of CONTRACT §3: GET /steps, and list, create, read, replace, delete flows."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja import Router, Status

from flows.auth import get_owned_or_404
from flows.models import Flow
from flows.schemas import ErrorOut, ErrorsOut, FlowIn, FlowOut, FlowsOut, StepsOut
from flows.validation import GraphError, validate_graph
from runtime import api as runtime

router = Router(tags=["flows"])

# A 400 names each wrong field or node ({"errors"}), or says the body could not be read at all ({"error"}).
ERRORS = {400: ErrorsOut | ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


@router.get("/steps", response={200: StepsOut, 401: ErrorOut}, tags=["steps"])
def list_steps(request: HttpRequest) -> dict:
    """List every step type with its params as JSON Schema (the editor's palette and forms)."""
    return {"steps": runtime.catalog()}


@router.get("/flows", response={200: FlowsOut, 401: ErrorOut})
def list_flows(request: HttpRequest) -> dict:
    """List the caller's flows, most recently changed first."""
    return {"flows": list(Flow.objects.filter(owner=request.auth))}


@router.post("/flows", response={201: FlowOut, **ERRORS})
def create_flow(request: HttpRequest, document: FlowIn) -> Status:
    """Create a flow from a flow document; an invalid graph is refused with every error named."""
    errors = document_errors(request.auth, document, flow=None)
    if errors:
        return Status(400, {"errors": [error.as_dict() for error in errors]})
    try:
        with transaction.atomic():
            flow = Flow.objects.create(
                owner=request.auth, name=document.name, description=document.description, graph=document.graph
            )
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
    with transaction.atomic():
        flow = get_owned_or_404(Flow.objects.select_for_update(), request.auth, flow_id)
        errors = document_errors(request.auth, document, flow=flow)
        if errors:
            return Status(400, {"errors": [error.as_dict() for error in errors]})
        flow.name, flow.description, flow.graph = document.name, document.description, document.graph
        flow.version += 1
        try:
            with transaction.atomic():
                flow.save()
        except IntegrityError:
            return Status(400, {"errors": [name_taken(document.name).as_dict()]})
    return Status(200, flow)


@router.delete("/flows/{flow_id}", response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut})
def delete_flow(request: HttpRequest, flow_id: str) -> Status:
    """Delete a flow; its past executions stay, with the flow's name."""
    get_owned_or_404(Flow, request.auth, flow_id).delete()
    return Status(204, None)


def document_errors(owner, document: FlowIn, *, flow: Flow | None) -> list[GraphError]:
    """Return what is wrong with a flow document for `owner`: a taken name, then the graph's errors."""
    errors = []
    others = Flow.objects.filter(owner=owner, name=document.name)
    if flow is not None:
        others = others.exclude(pk=flow.pk)
    if others.exists():
        errors.append(name_taken(document.name))
    limits = settings.TILEFLOW
    errors += validate_graph(document.graph, max_nodes=limits["MAX_NODES"], max_text=limits["MAX_WATERMARK_TEXT"])
    return errors


def name_taken(name: str) -> GraphError:
    return GraphError(None, f"you already have a flow named {name!r}; flow names are unique per user")
