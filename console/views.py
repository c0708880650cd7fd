"""Page views of the console (CONTRACT §6): server-rendered shells whose actions go through the API."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from console import gallery
from flows.auth import get_owned_or_404
from flows.models import Batch, Execution, Flow
from flows.trigger_stores import configured_names
from runtime import api as runtime

RECENT_EXECUTIONS = 10
RECENT_BATCHES = 5
EXECUTIONS_PER_PAGE = 200


def _seconds_label(start, end) -> str:
    """Return the time from `start` to `end` as a short label, or a dash when either is unknown."""
    if not start or not end:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return _("%(ms)s ms") % {"ms": formats.number_format(round(seconds * 1000))}
    return _("%(s)s s") % {"s": formats.number_format(seconds, 2)}


def _labelled(executions) -> list[Execution]:
    """Attach the duration and time-to-first-output labels the tables show."""
    rows = list(executions)
    for execution in rows:
        execution.duration_label = _seconds_label(execution.started_at, execution.finished_at)
        execution.first_output_label = _seconds_label(execution.started_at, execution.first_output_at)
    return rows


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Show the user's flows with their last run, and the most recent executions."""
    last_runs = Execution.objects.filter(flow=OuterRef("pk")).order_by("-created_at")
    flows = Flow.objects.filter(owner=request.user).annotate(
        last_run_at=Subquery(last_runs.values("created_at")[:1]),
        last_status=Subquery(last_runs.values("status")[:1]),
    )
    executions = Execution.objects.filter(owner=request.user).select_related("owner")[:RECENT_EXECUTIONS]
    labels = dict(Execution.Status.choices)
    flows = list(flows)
    for flow in flows:
        flow.last_status_label = labels.get(flow.last_status, flow.last_status)
    context = {"flows": flows, "executions": _labelled(executions), "templates": gallery.templates(), "nav": "home"}
    context["batches"] = Batch.objects.filter(owner=request.user)[:RECENT_BATCHES]
    if request.user.is_staff:  # staff see the workers that run everyone's flows
        try:
            context["workers"] = async_to_sync(runtime.workers)()
        except runtime.WorkersUnknown as unknown:
            context["workers"], context["workers_unknown"] = [], str(unknown)
    return render(request, "console/home.html", context)


@login_required
def editor(request: HttpRequest, flow_id=None) -> HttpResponse:
    """Open the editor on a saved flow, or on a new one."""
    flow = get_object_or_404(Flow, id=flow_id, owner=request.user) if flow_id else None
    return render(request, "console/editor.html", {"flow": flow, "nav": "home"})


@login_required
def flow_triggers(request: HttpRequest, flow_id) -> HttpResponse:
    """Show a flow's triggers, and a form offering the folder roots and S3 connections configured."""
    flow = get_object_or_404(Flow, id=flow_id, owner=request.user)
    return render(request, "console/triggers.html", {"flow": flow, "locations": configured_names(), "nav": "home"})


@login_required
def execution_list(request: HttpRequest) -> HttpResponse:
    """List the user's executions, optionally for one flow and one status."""
    executions = Execution.objects.filter(owner=request.user).select_related("owner")
    flow = None
    flow_id = request.GET.get("flow")
    if flow_id:
        flow = get_owned_or_404(Flow, request.user, flow_id)  # a malformed id is a 404 too, not a 500
        executions = executions.filter(flow=flow)
    status = request.GET.get("status", "")
    if status in Execution.Status.values:
        executions = executions.filter(status=status)
    else:
        status = ""
    return render(
        request,
        "console/executions.html",
        {
            "executions": _labelled(executions[:EXECUTIONS_PER_PAGE]),
            "flow": flow,
            "status": status,
            "statuses": Execution.Status.choices,
            "flow_url": reverse("flow-edit", args=[flow.id]) if flow else "",
            "nav": "executions",
        },
    )


@login_required
def execution_detail(request: HttpRequest, execution_id) -> HttpResponse:
    """Show one execution: its frozen graph, timings and results, live while it runs."""
    execution = get_object_or_404(Execution.objects.select_related("flow"), id=execution_id, owner=request.user)
    return render(request, "console/execution.html", {"execution": execution, "nav": "executions"})


@login_required
def batch_detail(request: HttpRequest, batch_id) -> HttpResponse:
    """Show one batch: its items filling in as they run, the overall progress, the results zip."""
    batch = get_object_or_404(Batch.objects.select_related("flow"), id=batch_id, owner=request.user)
    return render(request, "batch/batch.html", {"batch": batch, "nav": "executions"})


@csrf_exempt  # any method gets the same 404, not a CSRF page
def api_without_slash(request: HttpRequest) -> JsonResponse:
    """Answer `/api` as every unknown API path: a JSON 404 (`/api/` is no page a redirect could lead to)."""
    return JsonResponse({"error": f"no such API path: {request.method} {request.path}"}, status=404)
