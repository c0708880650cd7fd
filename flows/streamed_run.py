"""Start a `/run` from its request body while the body still arrives, so output leaves before the upload ends.

The view gets the body as a stream (`console.handler`: Daphne starts the application when the
headers are in). `start_streamed` takes the image out of it as it comes (`flows.streamed_upload`),
probes the header as soon as the header's bytes are in (format, size, pixel limit: refusals before
any pixel, as for a buffered upload), creates the execution and starts the run on the arriving bytes:
the band decoder reads them as they come. When the upload is whole it is stored, as a buffered one
is. An upload that breaks off or is malformed fails the run with the reason (`runtime.upload`), and
nothing is kept: no input file is written, and the run removes its partial outputs.

Only a streamable image (a baseline JPEG without rotation) is decoded while it arrives; for other
formats the probe itself waits for the whole body, which it reads to the end to refuse truncation
first, as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from flows import executions as service
from flows.models import Execution, Flow
from flows.streamed_upload import MalformedUpload, image_source, receive_image
from runtime import api as runtime

# A reader waits this long for the next piece of an upload before the run fails as stalled.
STALL_SECONDS = 60.0


async def start_streamed(request, flow: Flow) -> tuple[Execution, Any, asyncio.Task]:
    """Start a run of `flow` on the request's streamed body; return it, its conductor and the storing task.

    Raise `service.UploadRejected` for what is refused before the run starts.
    """
    try:
        parser = image_source(request.META.get("CONTENT_TYPE", ""))
    except MalformedUpload as malformed:
        raise service.UploadRejected(str(malformed), status=415) from malformed
    limits = settings.TILEFLOW
    upload = runtime.UploadStream(timeout=STALL_SECONDS)
    pump = asyncio.create_task(receive_image(request.body_stream, parser, upload, limits["MAX_UPLOAD_BYTES"]))
    try:
        header = await asyncio.to_thread(runtime.probe, upload, limits["MAX_PIXELS"], complete=False)
        await service.admit_run(flow.graph, header)
    except (runtime.ImageRejected, runtime.UploadBroken) as rejected:
        pump.cancel()
        raise service.UploadRejected(str(rejected), status=getattr(rejected, "status", 400)) from rejected
    except service.UploadRejected:
        pump.cancel()
        raise
    filename = parser.facts.filename if parser is not None else ""
    execution = await sync_to_async(service.create_execution)(
        owner=request.auth,
        flow=flow,
        graph=flow.graph,
        flow_name=flow.name,
        flow_version=flow.version,
        streamed_name=filename or f"upload.{header.format.lower()}",
        header=header,
    )
    conductor = await service.launch(execution, header, input_stream=upload)
    return execution, conductor, asyncio.create_task(_store_when_whole(execution, conductor, upload, pump))


async def _store_when_whole(execution: Execution, conductor, upload, pump: asyncio.Task) -> str | None:
    """Store the upload once it is whole (None, or why it could not be stored); a broken one is not kept."""
    await pump
    if not upload.complete:
        return None  # the run fails with the upload's reason; there is nothing to store
    data = upload.getvalue()
    await Execution.objects.filter(pk=execution.pk).aupdate(input_size=len(data))
    return await service.store_input_soon(execution, data, conductor, defer=True)
