"""Batch calls of CONTRACT §7: create from many images or a zip, list, get, results zip, cancel."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, StreamingHttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from ninja import Router, Status
from ninja.errors import HttpError

from flows import batch_runner, batches
from flows.api_executions import ERRORS, _error, _owned, _uuid, content_disposition, unicode_filename
from flows.auth import bearer_auth, refuse_without_csrf
from flows.batch_results import stream_results
from flows.body_pipe import BodyPipe
from flows.models import Batch, Flow
from flows.schemas import BatchesOut, BatchOut, ErrorOut

router = Router(tags=["batches"])

BAD_BODY = (MultiPartParserError, TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig, UnicodeDecodeError)
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one or more images",
                        },
                        "path": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "optional, one per image in the same order: its relative path "
                            "(folders are kept in the results)",
                        },
                        "archive": {"type": "string", "format": "binary", "description": "one .zip of images"},
                    },
                }
            }
        },
    }
}


class BatchUploadAuth:
    """Authenticate as the API does, with the batch's upload handler in place before any body is read.

    The session's CSRF check parses the body, so the caller is known first (bearer or session, no
    body needed), then the body is parsed in a thread (each file straight to disk), then CSRF is checked.
    """

    is_async = True

    async def __call__(self, request: HttpRequest) -> Any:
        upload = batches.BatchUploadHandler(request)
        request.upload_handlers = [upload]
        request._batch_upload = upload
        try:
            user, by_session = await sync_to_async(self._caller)(request)
            if user is None:
                return None
            if getattr(request, "body_stream", None) is not None:
                await self._read_streamed(request)
            else:
                await asyncio.to_thread(self._read_body, request)
            if by_session:
                await sync_to_async(refuse_without_csrf)(request)
            return user
        except BAD_BODY as error:
            upload.discard()
            raise HttpError(400, f"the multipart body cannot be read: {error}") from error
        except BaseException:
            upload.discard()
            raise

    @staticmethod
    def _caller(request: HttpRequest) -> tuple[Any, bool]:
        user = bearer_auth(request)
        if user:
            return user, False
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user, True
        return None, False

    @staticmethod
    async def _read_streamed(request: HttpRequest) -> None:
        """Parse the body while it arrives (each file part written as it comes), as `request.POST` would after."""
        if not (request.content_type or "").startswith("multipart/form-data"):
            return  # refused by the view, which needs no body for that
        pipe = BodyPipe()
        pump = asyncio.create_task(pipe.pump(request.body_stream))
        meta = request.META
        if "CONTENT_LENGTH" not in meta:  # chunked: the parser reads until the body ends, bounded by the server
            meta = {**meta, "CONTENT_LENGTH": str(settings.TILEFLOW["BATCH_MAX_UPLOAD_BYTES"])}
        parser = MultiPartParser(meta, pipe, request.upload_handlers, request.encoding)
        try:
            request._post, request._files = await asyncio.to_thread(parser.parse)
        finally:
            pipe.close_reading()
            await pump

    @staticmethod
    def _read_body(request: HttpRequest) -> None:
        if (request.content_type or "").startswith("multipart/form-data"):
            request.POST  # noqa: B018 - parses the body: each file goes to disk through the batch's handler


FILE_FIELDS = (batches.IMAGE_FIELD, batches.ARCHIVE_FIELD)
TEXT_FIELDS = (batches.PATH_FIELD,)


def _parse(request: HttpRequest) -> tuple[list, list[str], Any]:
    """The images, their paths and the archive; a field the call does not take is refused, not ignored."""
    misplaced = sorted(set(request.POST) & set(FILE_FIELDS))
    if misplaced:
        raise batches.BatchRejected(f"'{misplaced[0]}' must be a file (multipart with a filename), not a text field")
    skipped = request._batch_upload.skipped  # files the upload handler did not store
    unknown = sorted((set(request.POST) - set(TEXT_FIELDS)) | (set(skipped) - set(FILE_FIELDS)))
    if unknown:
        raise batches.BatchRejected(
            f"unknown field {unknown[0]!r}: send 'image' files (each with an optional 'path') and/or one 'archive'"
        )
    if batches.ARCHIVE_FIELD in skipped:
        raise batches.BatchRejected("more than one 'archive': send at most one (more images go in it)")
    archives = request.FILES.getlist(batches.ARCHIVE_FIELD)
    images = request.FILES.getlist(batches.IMAGE_FIELD)
    return images, request.POST.getlist(batches.PATH_FIELD), archives[0] if archives else None


@router.post(
    "/flows/{flow_id}/batches",
    auth=BatchUploadAuth(),
    response={201: BatchOut, **ERRORS, 413: ErrorOut},
    summary="Run a flow over many images",
    description="Multipart: one or more `image` files (each optionally with a `path` field giving its relative "
    "path) and/or one `archive` (.zip). Answers 201 at once; items then run a few at a time.",
    openapi_extra=MULTIPART_BODY,
)
async def create_batch(request, flow_id: str):
    upload: batches.BatchUploadHandler = request._batch_upload
    flow = await _owned(Flow, request.auth, flow_id)
    if flow is None:
        upload.discard()
        return _error(404, "no such flow")
    content_type = request.content_type or ""
    if not content_type.startswith("multipart/form-data"):
        upload.discard()
        return _error(400, "send the images as multipart/form-data ('image' files and/or one 'archive')")
    try:
        images, paths, archive = await asyncio.to_thread(_parse, request)
    except batches.BatchRejected as rejected:
        upload.discard()
        return _error(rejected.status, str(rejected))
    except BAD_BODY as error:
        upload.discard()
        return _error(400, f"the multipart body cannot be read: {error}")
    try:
        items = await asyncio.to_thread(batches.prepare_items, upload, images, paths, archive)
        batch = await sync_to_async(batches.save_batch)(owner=request.auth, flow=flow, upload=upload, items=items)
    except BAD_BODY as error:
        upload.discard()
        return _error(400, f"the multipart body cannot be read: {error}")
    except batches.BatchRejected as rejected:
        return _error(rejected.status, str(rejected))
    batch_runner.drive(batch.pk)
    return Status(201, await _payload(batch))


@sync_to_async
def _payload(batch: Batch, *, with_items: bool = True) -> dict[str, Any]:
    batch.refresh_from_db()
    return batches.batch_payload(batch, with_items=with_items)


@router.get("/batches", response={200: BatchesOut, **ERRORS}, summary="The caller's batches, newest first")
async def list_batches(request, flow: str | None = None, limit: int = 50, offset: int = 0):
    rows = Batch.objects.filter(owner=request.auth)
    if flow is not None:
        key = _uuid(flow)
        if key is None:
            return {"batches": []}
        rows = rows.filter(flow_id=key)
    limit, offset = max(1, min(limit, 200)), max(0, offset)

    @sync_to_async
    def page():
        return [batches.batch_payload(batch, with_items=False) for batch in rows[offset : offset + limit]]

    return {"batches": await page()}


@router.get("/batches/{batch_id}", response={200: BatchOut, **ERRORS}, summary="One batch, with its items")
async def get_batch(request, batch_id: str):
    batch = await _owned(Batch, request.auth, batch_id)
    if batch is None:
        return _error(404, "no such batch")
    return await _payload(batch)


@router.get(
    "/batches/{batch_id}/results",
    summary="The outputs of a finished batch as one zip, streamed",
    description="Entries are named after the inputs (folders kept) with the output's extension, `-{node}` "
    "added when the flow has several outputs; `errors.json` lists the items that did not succeed. "
    "409 while the batch is not finished.",
    response={**ERRORS, 409: ErrorOut},
    openapi_extra={
        "responses": {
            200: {
                "description": "a zip of the outputs",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
async def batch_results(request, batch_id: str):
    batch = await _owned(Batch, request.auth, batch_id)
    if batch is None:
        return _error(404, "no such batch")
    if not batch.finished:
        return _error(409, f"the batch is {batch.status}; its results are ready when it has finished")
    response = StreamingHttpResponse(stream_results(batch), content_type="application/zip")
    response["Content-Disposition"] = results_disposition(batch)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def results_disposition(batch: Batch) -> str:
    """Return the Content-Disposition of a batch's results zip, named after its flow in any script."""
    suffix = f"-{str(batch.pk)[:8]}.zip"
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", batch.flow_name).strip("._") or "batch"
    name = unicode_filename(batch.flow_name) or fallback
    return content_disposition("attachment", f"{name}{suffix}", f"{fallback}{suffix}")


@router.post(
    "/batches/{batch_id}/cancel", response={202: BatchOut, **ERRORS}, summary="Stop the items not yet finished"
)
async def cancel_batch(request, batch_id: str):
    batch = await _owned(Batch, request.auth, batch_id)
    if batch is None:
        return _error(404, "no such batch")
    if not batch.finished:
        await batch_runner.cancel(batch)
    return Status(202, await _payload(batch))
