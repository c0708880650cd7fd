"""Start a `/run` from its request body while the body still arrives, so output leaves before the upload ends.

The view gets the body as a stream (`console.handler`: Daphne starts the application when the
headers are in). `receive_streamed` takes the image out of it as it comes (`flows.streamed_upload`)
and probes the header as soon as the header's bytes are in (format, size, pixel limit: refusals
before any pixel, as for a buffered upload). `start_streamed` then starts the run on the arriving
bytes while the execution's row is written: the band decoder reads them as they come. When the
upload is whole it is stored, as a buffered one is. An upload that breaks off or is malformed fails
the run with the reason (`runtime.upload`), and nothing is kept: no input file is written, and the
run removes its partial outputs.

Only a streamable image (a baseline JPEG without rotation) is decoded while it arrives; for other
formats the probe itself waits for the whole body, which it reads to the end to refuse truncation
first, as before. Text fields of a multipart body (a draft `graph`) count when they come before the
image, as browsers and HTTP libraries send them in the order they were added.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from console.limits import body_refusal
from flows import executions as service
from flows.media import remove_outputs
from flows.models import Execution, Flow
from flows.streamed_upload import SEVERAL_IMAGES, MalformedUpload, MultipartImage, image_source, receive_image
from runtime import api as runtime

# A reader waits this long for the next piece of an upload before the run fails as stalled.
STALL_SECONDS = 60.0
LATE_GRAPH = (
    "the multipart field 'graph' came after 'image': /run starts on the image as it arrives, so send the graph first"
)


@dataclass
class StreamedUpload:
    """An upload whose header is read and whose bytes still arrive."""

    header: Any  # runtime.SourceHeader
    upload: Any  # runtime.UploadStream
    parser: MultipartImage | None
    pump: asyncio.Task

    @property
    def late_graph(self) -> bool:
        """Tell whether a draft graph came after the image: too late for the run, which is refused (400)."""
        return self.parser is not None and "graph" in self.parser.late_fields

    @property
    def refusal(self) -> str | None:
        """Why the body, as far as it came, cannot be one run (a late graph, a second image), or None.

        Seen before the run starts, the request is refused (400); after, the started run fails with it.
        """
        if self.late_graph:
            return LATE_GRAPH
        if self.parser is not None and self.parser.several_images:
            return SEVERAL_IMAGES
        return None

    @property
    def fields(self) -> dict[str, str]:
        """Return the text fields sent before the image (none for a raw body)."""
        return dict(self.parser.fields) if self.parser is not None else {}

    def discard(self) -> None:
        """Stop reading the body (the request is refused)."""
        self.pump.cancel()


async def receive_streamed(request) -> StreamedUpload:
    """Start taking the image out of the request's body stream; return once its header is read.

    Raise `service.UploadRejected` for a body that is not an image Tileflow accepts.
    """
    try:
        parser = image_source(request.META.get("CONTENT_TYPE", ""))
    except MalformedUpload as malformed:
        raise service.UploadRejected(str(malformed), status=415) from malformed
    limits = settings.TILEFLOW
    upload = runtime.UploadStream(timeout=STALL_SECONDS)
    refusal = functools.partial(body_refusal, request.scope)
    pump = asyncio.create_task(receive_image(request.body_stream, parser, upload, limits["MAX_UPLOAD_BYTES"], refusal))
    try:
        header = await asyncio.to_thread(runtime.probe, upload, limits["MAX_PIXELS"], complete=False)
    except (runtime.ImageRejected, runtime.UploadBroken) as rejected:
        pump.cancel()
        raise service.UploadRejected(str(rejected), status=getattr(rejected, "status", 400)) from rejected
    return StreamedUpload(header, upload, parser, pump)


async def start_streamed(
    request, flow: Flow, streamed: StreamedUpload, draft: dict | None
) -> tuple[Execution, Any, asyncio.Task]:
    """Start a run of `flow` (or of `draft`) on the streamed upload; return it, its conductor and the storing task.

    Raise `service.UploadRejected` when the run is refused (the memory budget, the queue).
    """
    graph = draft if draft is not None else flow.graph
    try:
        cost = await service.admit_run(graph, streamed.header, request.auth)
    except service.UploadRejected:
        streamed.discard()
        raise
    facts = streamed.parser.facts if streamed.parser is not None else None
    execution = service.build_execution(
        owner=request.auth,
        flow=flow,
        graph=graph,
        flow_name=flow.name,
        flow_version=flow.version,
        draft=draft is not None,
        streamed_name=(facts.filename if facts else "") or f"upload.{streamed.header.format.lower()}",
        header=streamed.header,
    )
    # The run starts while its row is written (a commit: 1-9 ms here); its saves wait for the row,
    # and so does the answer, which names the execution.
    inserted = asyncio.ensure_future(sync_to_async(service.insert_execution)(execution))
    conductor = await service.launch(
        execution, streamed.header, input_stream=streamed.upload, cost=cost, inserted=inserted
    )
    try:
        await asyncio.shield(inserted)  # a request cancelled meanwhile leaves the row to be written, and ended
    except BaseException:
        streamed.discard()
        conductor.cancel()
        await asyncio.shield(conductor.finished.wait())
        await asyncio.to_thread(remove_outputs, execution.id)  # a run done by then leaves nothing either
        raise
    return execution, conductor, asyncio.create_task(_store_when_whole(execution, conductor, streamed))


async def _store_when_whole(execution: Execution, conductor, streamed: StreamedUpload) -> str | None:
    """Store the upload once it is whole; return None, or why the run failed for its upload.

    An upload that broke off (over the limit, stalled, its client gone) fails the run with its
    reason even if the image in it was already whole and done: nothing is kept. So does an image
    the decoder found broken (a truncated JPEG): its stored input is removed again.
    """
    await streamed.pump
    if refusal := streamed.refusal:  # seen once the run had started: it ran the saved graph, or the first image
        await _fail_for_the_upload(execution, conductor, refusal)
        return refusal
    if not streamed.upload.complete:
        failure = streamed.upload.failure
        reason = failure.reason if failure is not None else "the upload did not complete"
        await _fail_for_the_upload(execution, conductor, reason)
        return reason
    pieces = streamed.upload.pieces()  # as they arrived, not joined: 7.7 MB is ~5 ms of CPU in fresh pages
    await Execution.objects.filter(pk=execution.pk).aupdate(input_size=streamed.upload.size)
    reason = await service.store_input_soon(execution, pieces, conductor, defer=True)
    if reason is None:
        await conductor.finished.wait()
        if _source_failed(execution, conductor):
            await sync_to_async(service.forget_input)(execution)
    return reason


def _source_failed(execution: Execution, conductor) -> bool:
    sources = {node["id"] for node in execution.graph.get("nodes", []) if node.get("type") == "source"}
    nodes = conductor.snapshot().get("nodes", {})
    return conductor.status == "failed" and any(nodes.get(node, {}).get("status") == "failed" for node in sources)


async def _fail_for_the_upload(execution: Execution, conductor, reason: str) -> None:
    """End the run as failed for its upload, whatever it had done, and keep none of its outputs."""
    if not conductor.finished.is_set():
        conductor.cancel()
        await conductor.finished.wait()
    await sync_to_async(service.fail_after_the_end)(execution, reason)
