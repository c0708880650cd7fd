"""The installation's own state: `GET /api/health` for load balancers, `GET /api/workers` for staff."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse
from ninja import Router, Schema

from runtime import api as runtime

router = Router(tags=["cluster"])
RETRY = {"Retry-After": "5"}


class HealthOut(Schema):
    status: str


class WorkerOut(Schema):
    name: str
    host: str
    pid: int
    threads: int
    runs: int
    capacity: int
    embedded: bool
    draining: bool = False  # stopping (SIGTERM): it finishes its runs and takes no new ones
    last_heartbeat: str


class WorkersOut(Schema):
    workers: list[WorkerOut]


class ErrorOut(Schema):
    error: str


def _database_problem() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any failure of the database is what this endpoint reports
        return "the database is unreachable"
    return None


@router.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut},
    summary="Liveness and readiness",
    description='No authentication, no details: 200 `{"status": "ok"}`, or 503 saying what is down '
    "(the database, the channel layer, or no worker running).",
)
async def health(request):
    problem = await sync_to_async(_database_problem)() or await runtime.health()
    if problem:
        return JsonResponse({"status": problem}, status=503, headers={"Cache-Control": "no-store"})
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get(
    "/workers",
    response={200: WorkersOut, 401: ErrorOut, 403: ErrorOut, 503: ErrorOut},
    summary="The workers (staff only)",
    description="Each worker's host, threads, runs in progress and capacity, and its last heartbeat.",
)
async def workers(request):
    if not request.auth.is_staff:
        return JsonResponse({"error": "only staff may list the workers"}, status=403)
    try:
        return {"workers": await runtime.workers()}
    except runtime.WorkersUnknown as unknown:
        return JsonResponse({"error": f"the workers cannot be listed: {unknown}"}, status=503, headers=RETRY)
