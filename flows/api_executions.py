"""Execution calls of CONTRACT §3: start, run (streamed), list, get, download, cancel."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import uuid
from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.http import FileResponse, HttpRequest, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from ninja import File, Form, Query, Router, Status
from ninja.files import UploadedFile

from flows import executions as service
from flows import json_text, previews
from flows.api_flows import graph_errors
from flows.auth import vouched
from flows.models import Execution, Flow
from flows.schemas import ErrorOut, ErrorsOut, ExecutionOut, ExecutionsOut, NodePreviewOut
from flows.streamed_run import receive_streamed, start_streamed
from flows.streamed_upload import SEVERAL_IMAGES
from runtime import api as runtime
from runtime.headers import cut_before_its_end

router = Router(tags=["executions"])

FINISHED = {s.value for s in Execution.FINISHED}
# Past this, offset + limit would overflow the database's 64-bit integers (a 500 before this bound).
MAX_OFFSET = 2**62

# Every call may answer these; a 400 from a malformed parameter names it ({"errors"}), others say why ({"error"}).
ERRORS = {400: ErrorOut | ErrorsOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}
UPLOAD_ERRORS = {**ERRORS, 413: ErrorOut, 429: ErrorOut}
OUTPUT_TYPES = ("image/png", "image/jpeg", "image/webp", "image/avif")
INPUT_TYPES = (
    *OUTPUT_TYPES,
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/heic",
    "image/heif",
    "application/octet-stream",
)


def _binary(description: str, content_types: tuple[str, ...]) -> dict[str, Any]:
    """Describe a 200 whose body is a file, for the OpenAPI document."""
    schema = {"type": "string", "format": "binary"}
    return {
        "responses": {
            200: {"description": description, "content": {kind: {"schema": schema} for kind in content_types}}
        }
    }


def _error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _owned(model, user, object_id: str):
    key = _uuid(object_id)
    if key is None:
        return None
    return await model.objects.select_related("owner").filter(owner=user, pk=key).afirst()


async def _owned_flow(request, flow_id: str) -> Flow | None:
    """Return the caller's flow `flow_id`: as the upload gate found it for this request, else looked up."""
    checked = vouched(request)
    if checked is not None and checked.user == request.auth and checked.flow.pk == _uuid(flow_id):
        return checked.flow
    return await _owned(Flow, request.auth, flow_id)


@sync_to_async
def _payload(execution: Execution) -> dict[str, Any]:
    return service.execution_payload(execution)


def _safe_filename(name: str, default: str = "output") -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or default


def content_disposition(disposition: str, name: str, fallback: str) -> str:
    """Return a Content-Disposition naming a download `name` in any script (RFC 6266).

    `fallback` is the ASCII name for clients that know only `filename`; the name itself goes in
    `filename*` (RFC 5987: UTF-8, percent-encoded) when it differs.
    """
    header = f'{disposition}; filename="{fallback}"'
    if name != fallback:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def unicode_filename(name: str) -> str:
    """Return `name` fit for a download's `filename*`: any script, no control characters or path separators."""
    return "".join(char if char not in '/\\"' else "_" for char in name if char.isprintable()).strip(". ")


def output_disposition(disposition: str, flow_name: str, node: str, extension: str) -> str:
    """Return the Content-Disposition of the output of `node` of a run of the flow `flow_name`."""
    flow_name = flow_name or "tileflow"
    fallback = f"{_safe_filename(flow_name)}-{_safe_filename(node)}{extension}"
    return content_disposition(disposition, unicode_filename(f"{flow_name}-{node}{extension}"), fallback)


def input_disposition(input_name: str) -> str:
    """Return the Content-Disposition of an execution's uploaded image, named as it was uploaded."""
    stem, extension = os.path.splitext(input_name)
    suffix = _safe_filename(extension, "")
    fallback = f"{_safe_filename(stem, 'input')}.{suffix}" if suffix else _safe_filename(stem, "input")
    return content_disposition("inline", unicode_filename(input_name) or fallback, fallback)


def _several_images(request: HttpRequest) -> bool:
    """Tell whether a buffered request carries more than one `image` file (one run takes one image)."""
    return len(request.FILES.getlist("image")) > 1


# A run from the editor sends the graph on its canvas (multipart field `graph`, JSON): a draft run of the
# flow that leaves the saved flow as it is.
GRAPH_FIELD = Form(None, description="optional: a draft graph (JSON) to run instead of the saved one")


def _cut_short(streamed) -> bool:
    """Tell whether a streamed upload is whole already and is a JPEG that stops before its image ends."""
    if streamed is None or not streamed.upload.complete or streamed.header.format not in ("JPEG", "MPO"):
        return False
    return cut_before_its_end(streamed.upload.reader(), streamed.header.scan_start)


def _draft_graph(flow: Flow, graph_text: str) -> dict | JsonResponse:
    """Return the draft graph sent with a run (validated), or the 400 refusing it."""
    try:
        graph = json_text.loads(graph_text)
    except ValueError as error:
        return _error(400, f"graph: not valid JSON ({error})")
    errors = graph_errors(graph)
    if errors:
        return JsonResponse({"errors": [error.as_dict() for error in errors]}, status=400)
    return graph


async def _draft(flow: Flow, graph_text: str | None) -> dict | JsonResponse | None:
    """Return the draft graph sent with a run (validated), None when there is none, or the 400 refusing it.

    Validated in a thread (`_draft_graph` may read the database), and only when there is a graph.
    """
    if graph_text is None or graph_text == "":
        return None  # the common case: no thread hop before the run starts
    return await sync_to_async(_draft_graph)(flow, graph_text)


async def _start(
    request: HttpRequest,
    flow: Flow,
    image: UploadedFile | None,
    *,
    defer_store: bool = False,
    draft: dict | None = None,
) -> tuple[Execution, Any, asyncio.Task | None] | JsonResponse:
    """Create and launch an execution; return it, its conductor and the task storing its upload, if any.

    `defer_store`: the upload is written once the first band is out, and the caller awaits the task
    itself; otherwise it is stored (or refused with 507) before this returns.
    """
    try:
        service.check_upload(image)
        header = await asyncio.to_thread(service.probe_upload, image)
        cost = await service.admit_run(draft if draft is not None else flow.graph, header, request.auth)
    except service.UploadRejected as rejected:
        return _error(rejected.status, str(rejected), **rejected.headers)
    execution = await sync_to_async(service.create_execution)(
        owner=request.auth,
        flow=flow,
        graph=draft if draft is not None else flow.graph,
        flow_name=flow.name,
        flow_version=flow.version,
        draft=draft is not None,
        upload=image,
        header=header,
    )
    if not service.in_memory(image):
        return execution, await service.launch(execution, header, cost=cost), None
    data = image.file.getvalue()
    conductor = await service.launch(execution, header, data, cost=cost)
    stored = service.store_input_soon(execution, [data], conductor, defer=defer_store)  # the run decodes `data`
    if not defer_store and (reason := await stored):
        return _error(507, reason)
    return execution, conductor, stored


@router.post(
    "/flows/{flow_id}/executions",
    response={201: ExecutionOut, **UPLOAD_ERRORS},
    summary="Start a run in the background",
)
async def start_execution(request, flow_id: str, image: File[UploadedFile] = None, graph: str | None = GRAPH_FIELD):
    flow = await _owned_flow(request, flow_id)
    if flow is None:
        return _error(404, "no such flow")
    if _several_images(request):
        return _error(400, SEVERAL_IMAGES)
    draft = await _draft(flow, graph)
    if isinstance(draft, JsonResponse):
        return draft
    started = await _start(request, flow, image, draft=draft)
    if isinstance(started, JsonResponse):
        return started
    execution, _, _ = started
    return Status(201, await _payload(execution))


@router.post(
    "/flows/{flow_id}/run",
    summary="Run and stream the result image as it is produced",
    description="Answers 200 with the output image as a chunked stream that starts when the first band "
    "is encoded. `output` picks one of several output nodes (default: the first). Errors found before "
    "the first byte are 4xx JSON; a failure after it ends the stream early.",
    response={**UPLOAD_ERRORS, 422: ErrorOut, 499: ErrorOut, 503: ErrorOut, 507: ErrorOut},
    openapi_extra=_binary("the result image, streamed (header X-Execution-Id)", OUTPUT_TYPES),
)
async def run_flow(
    request,
    flow_id: str,
    image: File[UploadedFile] = None,
    output: str | None = None,
    graph: str | None = GRAPH_FIELD,
):
    flow = await _owned_flow(request, flow_id)
    if flow is None:
        return _error(404, "no such flow")
    streamed = None
    if getattr(request, "body_stream", None) is not None:  # the body still arrives: the run starts on it
        try:
            streamed = await receive_streamed(request)
        except service.UploadRejected as rejected:
            return _error(rejected.status, str(rejected), **rejected.headers)
        if refusal := streamed.refusal:  # seen before the run starts (the whole body is in already): refused
            streamed.discard()
            return _error(400, refusal)
        graph = streamed.fields.get("graph", graph)
    elif _several_images(request):
        return _error(400, SEVERAL_IMAGES)
    draft = await _draft(flow, graph)
    ran = draft if draft is not None and not isinstance(draft, JsonResponse) else flow.graph
    outputs = [node["id"] for node in ran.get("nodes", []) if node.get("type") == "output"]
    refusal = draft if isinstance(draft, JsonResponse) else None
    if refusal is None and output is not None and output not in outputs:
        refusal = _error(400, f"node '{output}' is not an output of this flow; its outputs are: {', '.join(outputs)}")
    if refusal is not None:
        if streamed is not None:
            streamed.discard()
        return refusal
    node = output or outputs[0]
    if streamed is not None:
        try:
            started = await start_streamed(request, flow, streamed, draft)
        except service.UploadRejected as rejected:
            return _error(rejected.status, str(rejected), **rejected.headers)
    else:
        started = await _start(request, flow, image, defer_store=True, draft=draft)
    if isinstance(started, JsonResponse):
        return started
    execution, conductor, stored = started
    chunks = runtime.follow_output(conductor, node)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    writer = conductor.outputs.get(node)
    if first and _cut_short(streamed):
        # The whole upload is here and its JPEG stops early: the decoder is about to fail. Answer
        # that failure (422) rather than a 200 whose body breaks off.
        await conductor.finished.wait()
        if conductor.status != "succeeded":
            first = b""
    if not first:
        await conductor.finished.wait()
        if stored is not None and (reason := await asyncio.shield(stored)):
            broke = streamed.upload.failure if streamed is not None else None  # over the limit: 413, …
            status = broke.status if broke else 400 if streamed is not None and streamed.refusal else 507
            return _error(status, reason, **{"X-Execution-Id": str(execution.id)})
        if conductor.status != "succeeded":
            headers = {"X-Execution-Id": str(execution.id)}
            if conductor.status == "cancelled":
                status = 499
            elif conductor.unavailable:  # Redis, or every worker, is away: try again later
                status, headers["Retry-After"] = 503, "5"
            else:
                status = 422
            return _error(status, conductor.error or f"the execution was {conductor.status}", **headers)

    async def stream():
        if first:
            yield first
        async for chunk in chunks:
            yield chunk
        # The response ends with the input on disk. Shielded: a response cancelled when the client (or the
        # server's limit) ends the body must not cancel the storing, or a refused upload's end is never recorded.
        if stored is not None and (reason := await asyncio.shield(stored)):
            raise runtime.RunFailed(reason)
        if writer is not None and not writer.complete:
            raise runtime.RunFailed(conductor.error or "the execution ended before its output was complete")

    content_type = writer.content_type if writer else "application/octet-stream"
    response = StreamingHttpResponse(stream(), content_type=content_type)
    response["X-Execution-Id"] = str(execution.id)
    extension = writer.path.suffix if writer else ""
    response["Content-Disposition"] = output_disposition("inline", flow.name, node, extension)
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"
    return response


@router.get("/executions", response={200: ExecutionsOut, **ERRORS}, summary="The caller's executions, newest first")
async def list_executions(
    request,
    flow: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    rows = Execution.objects.filter(owner=request.auth).select_related("owner").prefetch_related("outputs")
    if flow is not None:
        key = _uuid(flow)
        if key is None:
            return {"executions": []}
        rows = rows.filter(flow_id=key)
    if status:
        rows = rows.filter(status__in=status.split(","))
    limit = max(1, min(limit, 500))

    @sync_to_async
    def page():
        return [service.execution_payload(execution) for execution in rows[offset : offset + limit]]

    return {"executions": await page()}


@router.get("/executions/{execution_id}", response={200: ExecutionOut, **ERRORS}, summary="One execution")
async def get_execution(request, execution_id: str):
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    return await _payload(execution)


@router.get(
    "/executions/{execution_id}/output",
    summary="Download a result",
    description="409 while the execution is not finished, or when it did not succeed. With `follow=1` on a "
    "running execution, streams the output as it is written (a live preview), ending when it is complete.",
    response={**ERRORS, 409: ErrorOut},
    openapi_extra=_binary("the result image: an attachment, or with `follow=1` a stream", OUTPUT_TYPES),
)
async def download_output(request, execution_id: str, node: str | None = None, follow: bool = False):
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    if follow and execution.status not in FINISHED:
        following = await _follow_running_output(execution, node)
        if following is not None:
            return following
    if execution.status not in FINISHED:
        return _error(409, f"the execution is {execution.status}; its output is ready when it has succeeded")
    outputs = [output async for output in execution.outputs.filter(complete=True)]
    if execution.status != Execution.Status.SUCCEEDED or not outputs:
        return _error(409, f"the execution {execution.status}; it has no output")
    if node is None:
        if len(outputs) > 1:
            return _error(
                400,
                "this execution has several outputs; name one with ?node= ("
                + ", ".join(output.node for output in outputs)
                + ")",
            )
        chosen = outputs[0]
    else:
        chosen = next((output for output in outputs if output.node == node), None)
        if chosen is None:
            return _error(404, f"no output node '{node}' in this execution")
    extension = mimetypes.guess_extension(chosen.content_type) or ""
    try:
        stored = chosen.file.open("rb")
    except FileNotFoundError:  # removed behind the database's back
        return _error(404, f"the output of node '{chosen.node}' is not stored")
    response = FileResponse(stored, as_attachment=True, content_type=chosen.content_type)
    response["Content-Disposition"] = output_disposition("attachment", execution.flow_name, chosen.node, extension)
    response["X-Content-Type-Options"] = "nosniff"
    return response


async def _follow_running_output(execution: Execution, node: str | None) -> StreamingHttpResponse | None:
    """Stream a running execution's output as it is written (a live preview), when it runs here."""
    conductor = runtime.local_run(str(execution.id))
    if conductor is None:
        return None
    await runtime.wait_prepared(conductor)
    outputs = list(conductor.outputs)
    chosen = node or (outputs[0] if len(outputs) == 1 else None)
    writer = conductor.outputs.get(chosen) if chosen else None
    if writer is None:
        return None
    response = StreamingHttpResponse(runtime.follow_output(conductor, chosen), content_type=writer.content_type)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(
    "/executions/{execution_id}/input",
    summary="The uploaded image of an execution",
    response=ERRORS,
    openapi_extra=_binary("the uploaded image", INPUT_TYPES),
)
async def download_input(request, execution_id: str):
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    await service.input_stored(execution)  # a /run just started writes its upload after its first band
    await execution.arefresh_from_db(fields=["input_file"])  # a broken upload is not kept
    content_type = mimetypes.types_map.get(f".{execution.input_format.lower()}", "application/octet-stream")
    if execution.input_format.upper() == "JPEG":
        content_type = "image/jpeg"
    try:
        stored = execution.input_file.open("rb") if execution.input_file else None
    except FileNotFoundError:
        stored = None
    if stored is None:  # removed (pruned, a failed run's cleanup) or never written
        return _error(404, "the input of this execution is not stored")
    response = FileResponse(stored, content_type=content_type)
    response["Content-Disposition"] = input_disposition(execution.input_name or "input")
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get(
    "/executions/{execution_id}/nodes/{node}",
    response={200: NodePreviewOut, **ERRORS, 409: ErrorOut},
    summary="Inspect one node of a finished run",
    description="What the node produced in the run: its size and mode, and the URL of a downscaled preview "
    "(made the first time it is asked for, then kept). 409 when the run did not succeed or its input is gone.",
)
async def inspect_node(request, execution_id: str, node: str):
    found = await _node_preview(request, execution_id, node)
    if isinstance(found, JsonResponse):
        return found
    return {**found[1], "url": f"/api/executions/{execution_id}/nodes/{node}/preview"}


async def _node_preview(request, execution_id: str, node: str):
    """Return the preview file and facts of a node of the caller's execution, or the error answer."""
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    try:
        return await asyncio.to_thread(previews.node_preview, execution, node)
    except previews.NoPreview as reason:
        return _error(409, str(reason))


@router.get(
    "/executions/{execution_id}/nodes/{node}/preview",
    summary="The downscaled output image of one node",
    response={**ERRORS, 409: ErrorOut},
    openapi_extra=_binary("a PNG at most 480 px on its longer side", ("image/png",)),
)
async def node_preview_image(request, execution_id: str, node: str):
    found = await _node_preview(request, execution_id, node)
    if isinstance(found, JsonResponse):
        return found
    response = FileResponse(found[0].open("rb"), content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@router.post("/executions/{execution_id}/cancel", response={202: ExecutionOut, **ERRORS}, summary="Stop a run")
async def cancel_execution(request, execution_id: str):
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    if execution.status not in FINISHED:
        stopped_here = await runtime.cancel(str(execution.id))
        if not stopped_here:
            await _await_end_or_mark_cancelled(execution)
        await execution.arefresh_from_db()
    return Status(202, await _payload(execution))


async def _await_end_or_mark_cancelled(execution: Execution) -> None:
    """Give the run's conductor elsewhere a second to stop; if none answers, record the cancel."""
    for _ in range(20):
        await asyncio.sleep(0.05)
        await execution.arefresh_from_db()
        if execution.status in FINISHED:
            return
    await Execution.objects.filter(pk=execution.pk, status__in=["queued", "running"]).aupdate(
        status=Execution.Status.CANCELLED, finished_at=timezone.now(), error=None
    )


@router.post(
    "/executions/{execution_id}/rerun",
    response={201: ExecutionOut, **ERRORS, 409: ErrorOut, 413: ErrorOut, 429: ErrorOut},
    summary="Run again with the same input",
    description="Runs the flow's current version on the same input (the execution's own frozen graph "
    "when the flow was deleted, or with `?graph=original`).",
)
async def rerun_execution(request, execution_id: str, graph: str = "current"):
    execution = await _owned(Execution, request.auth, execution_id)
    if execution is None:
        return _error(404, "no such execution")
    await service.input_stored(execution)
    if not execution.input_file or not await asyncio.to_thread(
        execution.input_file.storage.exists, execution.input_file.name
    ):
        return _error(409, "the input of this execution is no longer stored")
    flow = await Flow.objects.filter(pk=execution.flow_id).afirst() if execution.flow_id else None
    use_flow = flow is not None and graph != "original"
    try:
        header = await asyncio.to_thread(runtime.probe, execution.input_file.path, runtime.limits().max_pixels)
    except runtime.ImageRejected as rejected:
        return _error(400, str(rejected))
    try:
        await service.admit_run(flow.graph if use_flow else execution.graph, header, request.auth)
    except service.UploadRejected as rejected:
        return _error(rejected.status, str(rejected), **rejected.headers)
    new = await sync_to_async(service.create_execution)(
        owner=request.auth,
        flow=flow,
        graph=flow.graph if use_flow else execution.graph,
        flow_name=flow.name if use_flow else execution.flow_name,
        flow_version=flow.version if use_flow else execution.flow_version,
        input_from=execution,
        header=header,
    )
    await service.launch(new, header)
    return Status(201, await _payload(new))
