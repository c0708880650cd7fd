"""Trigger calls of CONTRACT §8: create, list, read, change, delete triggers; their events; S3 notifications."""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Any, Literal

from django.db.models import Count
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema, Status
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from flows import json_text
from flows import trigger_stores as stores
from flows.auth import get_owned_or_404
from flows.models import Flow, Trigger, TriggerEvent
from flows.schemas import ErrorOut, ErrorsOut
from flows.trigger_loop import reconsider as reconsider_triggers
from flows.trigger_loop import wake as wake_trigger
from flows.triggers import record_notification
from flows.validation import describe_error

router = Router(tags=["triggers"])

LOCATION = "{root, path} for a folder, {connection, bucket, prefix} for S3; names as the administrator configured"
EVENT_STATUSES = [status for status in TriggerEvent.Status.values if status != TriggerEvent.Status.EXISTING]


class TriggerIn(Schema):
    type: Literal["folder", "s3"]
    source: dict[str, Any] = Field(description=LOCATION)
    destination: dict[str, Any] = Field(description=LOCATION)
    enabled: bool = True
    process_existing: bool = Field(False, description="also run on the objects already there")


class TriggerPatch(Schema):
    enabled: bool | None = None
    source: dict[str, Any] | None = Field(None, description=LOCATION)
    destination: dict[str, Any] | None = Field(None, description=LOCATION)


class TriggerOut(Schema):
    id: str
    flow: str
    type: Literal["folder", "s3"]
    source: dict[str, str]
    destination: dict[str, str]
    enabled: bool
    secret: str = Field(description="authenticates POST /api/triggers/{id}/events; shown to its owner only")
    process_existing: bool
    created_at: datetime
    last_error: str | None = Field(description="why the last look at a store failed; null when all is well")
    last_scan_at: datetime | None
    counts: dict[str, int] = Field(description="events by status")


class TriggersOut(Schema):
    triggers: list[TriggerOut]


class TriggerEventOut(Schema):
    key: str = Field(description="the object's name under the source")
    version: str
    size: int
    seen_at: datetime
    finished_at: datetime | None
    execution: str | None
    status: Literal["pending", "running", "succeeded", "failed", "skipped"]
    error: str | None
    outputs: list[str] = Field(description="where the outputs were written, under the destination's root or bucket")


class TriggerEventsOut(Schema):
    events: list[TriggerEventOut]


class LocationsOut(Schema):
    folder: list[str] = Field(description="the folder roots' names")
    s3: list[str] = Field(description="the S3 connections' names")


class AcceptedOut(Schema):
    accepted: int = Field(description="objects recorded that were not known yet")


ERRORS = {400: ErrorsOut | ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _body(request: HttpRequest, schema: type[Schema]) -> Schema | list[dict]:
    """Read a JSON body into `schema`, or return its errors; read after the ownership check, so a
    stranger gets 404 whatever the body is."""
    try:
        document = json_text.loads(request.body or b"{}")
    except ValueError as error:
        return [{"node": None, "message": f"the request body is not valid JSON: {error}"}]
    if not isinstance(document, dict):
        return [{"node": None, "message": "the request body must be a JSON object"}]
    try:
        return schema.model_validate(document)
    except PydanticValidationError as invalid:
        return [{"node": None, "message": describe_error(error)} for error in invalid.errors()]


def _documented_body(schema: type[Schema]) -> dict:
    content = {"application/json": {"schema": schema.model_json_schema()}}
    return {"requestBody": {"required": True, "content": content}}


def trigger_payload(trigger: Trigger) -> dict[str, Any]:
    counts = dict(
        trigger.events.exclude(status=TriggerEvent.Status.EXISTING)
        .values_list("status")
        .annotate(count=Count("id"))
        .values_list("status", "count")
    )
    return {
        "id": str(trigger.id),
        "flow": str(trigger.flow_id),
        "type": trigger.type,
        "source": trigger.source,
        "destination": trigger.destination,
        "enabled": trigger.enabled,
        "secret": trigger.secret,
        "process_existing": trigger.process_existing,
        "created_at": trigger.created_at,
        "last_error": trigger.last_error,
        "last_scan_at": trigger.last_scan_at,
        "counts": {status: counts.get(status, 0) for status in EVENT_STATUSES},
    }


def location_errors(
    kind: str, source: Any, destination: Any, *, asked: tuple[str, ...] = ("source", "destination")
) -> tuple[dict, dict, list[dict]]:
    """Return both locations in stored form and what is wrong with them, each error naming its field.

    The buckets of the `asked` S3 locations (those given in the request) are looked at in the store:
    one it says is missing, or a source it denies, is refused; a store that does not answer is not.
    """
    errors, checked = [], {}
    for field, location in (("source", source), ("destination", destination)):
        try:
            checked[field] = stores.normalise_location(kind, location)
        except stores.LocationError as error:
            errors.append({"node": None, "message": f"{field}: {error}"})
    if not errors and kind == "folder":
        root = stores.folder_roots()[checked["source"]["root"]]
        if not root.joinpath(*stores.relative_parts(checked["source"]["path"])).is_dir():
            where = stores.describe(kind, checked["source"])
            errors.append({"node": None, "message": f"source: the folder {where} does not exist"})
    if not errors and stores.overlap(kind, checked["source"], checked["destination"]):
        errors.append(
            {"node": None, "message": "destination: it lies inside the source; every output would run the flow again"}
        )
    if not errors and kind == "s3":
        for field in asked:
            try:
                stores.check_bucket(checked[field], reading=field == "source")
            except stores.LocationError as error:
                errors.append({"node": None, "message": f"{field}: {error}"})
    return checked.get("source", {}), checked.get("destination", {}), errors


@router.get("/locations", response={200: LocationsOut, 401: ErrorOut}, summary="Where triggers may read and write")
def list_locations(request: HttpRequest) -> dict:
    """List the folder roots and S3 connections the administrator named (names only, never paths or keys)."""
    return stores.configured_names()


@router.post(
    "/flows/{flow_id}/triggers",
    response={201: TriggerOut, **ERRORS},
    summary="Create a trigger",
    openapi_extra=_documented_body(TriggerIn),
)
def create_trigger(request: HttpRequest, flow_id: str) -> Status:
    flow = get_owned_or_404(Flow, request.auth, flow_id)
    body = _body(request, TriggerIn)
    if isinstance(body, list):
        return Status(400, {"errors": body})
    source, destination, errors = location_errors(body.type, body.source, body.destination)
    if errors:
        return Status(400, {"errors": errors})
    trigger = Trigger.objects.create(
        owner=request.auth,
        flow=flow,
        type=body.type,
        source=source,
        destination=destination,
        enabled=body.enabled,
        process_existing=body.process_existing,
        watch_from=timezone.now(),
    )
    reconsider_triggers()  # taken (and primed) now, not at the next poll
    return Status(201, trigger_payload(trigger))


@router.get("/triggers", response={200: TriggersOut, **ERRORS}, summary="The caller's triggers")
def list_triggers(request: HttpRequest, flow: str | None = None) -> dict:
    rows = Trigger.objects.filter(owner=request.auth)
    if flow is not None:
        try:
            rows = rows.filter(flow_id=uuid.UUID(flow))
        except ValueError:
            return {"triggers": []}
    return {"triggers": [trigger_payload(trigger) for trigger in rows]}


@router.get("/triggers/{trigger_id}", response={200: TriggerOut, **ERRORS}, summary="One trigger")
def get_trigger(request: HttpRequest, trigger_id: str) -> dict:
    return trigger_payload(get_owned_or_404(Trigger, request.auth, trigger_id))


@router.patch(
    "/triggers/{trigger_id}",
    response={200: TriggerOut, **ERRORS},
    summary="Pause, resume, or move a trigger",
    description="A new source is watched from now on: what is already there is left alone.",
    openapi_extra=_documented_body(TriggerPatch),
)
def change_trigger(request: HttpRequest, trigger_id: str) -> Status:
    trigger = get_owned_or_404(Trigger, request.auth, trigger_id)
    body = _body(request, TriggerPatch)
    if isinstance(body, list):
        return Status(400, {"errors": body})
    changes = body.model_dump(exclude_unset=True)
    if changes.get("enabled") is None and "enabled" in changes:
        return Status(400, {"errors": [{"node": None, "message": "enabled: must be true or false"}]})
    if "source" in changes or "destination" in changes:
        source, destination, errors = location_errors(
            trigger.type,
            changes.get("source") or trigger.source,
            changes.get("destination") or trigger.destination,
            asked=tuple(field for field in ("source", "destination") if changes.get(field)),
        )
        if errors:
            return Status(400, {"errors": errors})
        if source != trigger.source:
            trigger.source, trigger.primed, trigger.watch_from = source, False, timezone.now()
            trigger.process_existing = False
        trigger.destination = destination
    if "enabled" in changes:
        trigger.enabled = changes["enabled"]
    trigger.save()
    reconsider_triggers()
    return Status(200, trigger_payload(trigger))


@router.delete("/triggers/{trigger_id}", response={204: None, **ERRORS}, summary="Delete a trigger")
def delete_trigger(request: HttpRequest, trigger_id: str) -> Status:
    """Delete a trigger and its events; runs it started stay in the executions, with their outputs."""
    get_owned_or_404(Trigger, request.auth, trigger_id).delete()
    return Status(204, None)


@router.get("/triggers/{trigger_id}/events", response={200: TriggerEventsOut, **ERRORS}, summary="What it did")
def list_events(request: HttpRequest, trigger_id: str, status: str | None = None, limit: int = 100) -> dict:
    """List the objects a trigger saw and what became of each, newest first."""
    trigger = get_owned_or_404(Trigger, request.auth, trigger_id)
    rows = trigger.events.exclude(status=TriggerEvent.Status.EXISTING)
    if status:
        rows = rows.filter(status__in=status.split(","))
    return {
        "events": [
            {
                "key": event.key,
                "version": event.version,
                "size": event.size,
                "seen_at": event.seen_at,
                "finished_at": event.finished_at,
                "execution": str(event.execution_id) if event.execution_id else None,
                "status": event.status,
                "error": event.error,
                "outputs": event.outputs,
            }
            for event in rows[: max(1, min(limit, 1000))]
        ]
    }


@router.post(
    "/triggers/{trigger_id}/events",
    auth=None,
    response={202: AcceptedOut, 400: ErrorOut, 401: ErrorOut},
    summary="Take an S3 event notification",
    description='The body is an S3 event notification (`{"Records": [...]}`); the trigger\'s `secret` comes '
    "as `Authorization: Bearer <secret>`, an `X-Tileflow-Secret` header or `?secret=`. Objects it names "
    "under the source are recorded at once, without waiting for the next scan.",
)
def notify(request: HttpRequest, trigger_id: str, secret: str | None = None) -> Status:
    given = request.headers.get("X-Tileflow-Secret") or secret or ""
    authorization = request.headers.get("Authorization", "")
    if not given and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    try:
        trigger = Trigger.objects.filter(pk=uuid.UUID(trigger_id)).first()
    except ValueError:
        trigger = None
    if trigger is None or not given or not hmac.compare_digest(given.encode(), trigger.secret.encode()):
        return Status(401, {"error": "unknown trigger or wrong secret"})  # alike, so ids cannot be probed
    if trigger.type != Trigger.Kind.S3:
        return Status(400, {"error": "only s3 triggers take event notifications; folder triggers are scanned"})
    try:
        document = json_text.loads(request.body or b"{}")
    except ValueError as error:
        return Status(400, {"error": f"the body is not valid JSON: {error}"})
    records = document.get("Records") if isinstance(document, dict) else None
    if records is None and isinstance(document, dict) and "Event" in document:  # a store's test event
        records = []
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        return Status(400, {"error": 'an S3 event notification is {"Records": [...]}'})
    accepted = record_notification(trigger, records)
    if accepted:
        wake_trigger(trigger.pk)  # this process's loop at once; another's finds the rows within a second
    return Status(202, {"accepted": accepted})
