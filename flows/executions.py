"""Executions: start runs from uploads, record their progress, show them as the API's objects.

The runtime knows nothing of the database: `ExecutionRecorder` is the bridge that saves what the
conductor reports, and `execution_payload` merges a live run's counts into the stored row, so the
REST answer, the websocket snapshot and the pages agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows.media import remove_input, remove_outputs
from flows.models import Execution, ExecutionOutput, Flow
from runtime import api as runtime
from runtime import pagecache
from runtime.upload import UploadStream

log = logging.getLogger("tileflow.executions")

RUNNER = f"{socket.gethostname()}:{os.getpid()}"


class UploadRejected(Exception):
    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def check_upload(upload: UploadedFile | None) -> None:
    """Refuse a missing, empty or oversized upload before anything is stored."""
    if upload is None:
        raise UploadRejected("no image: send the file in the multipart field 'image'")
    limit = settings.TILEFLOW["MAX_UPLOAD_BYTES"]
    if upload.size > limit:
        raise UploadRejected(f"the upload is {upload.size} bytes; the limit is {limit} bytes", status=413)
    if upload.size == 0:
        raise UploadRejected("the uploaded file is empty")


def probe_upload(upload: UploadedFile) -> runtime.SourceHeader:
    """Read the upload's header (format, size, orientation) and refuse what we cannot run."""
    upload.seek(0)
    try:
        return runtime.probe(upload.file, settings.TILEFLOW["MAX_PIXELS"])
    except runtime.ImageRejected as rejected:
        raise UploadRejected(str(rejected)) from rejected
    finally:
        upload.seek(0)


async def admit_run(graph: dict, header: runtime.SourceHeader, owner) -> runtime.RunCost | None:
    """Refuse a run the memory budget could never start (413) or that would wait past the queue's limit (429).

    Return its cost under the configured limits (for `launch`), or None if it cannot be planned.
    """
    try:
        return await runtime.admit(graph, header, owner=str(owner.pk))
    except runtime.RunTooLarge as refused:
        raise UploadRejected(str(refused), status=413) from refused
    except runtime.QueueFull as full:
        raise UploadRejected(str(full), status=429, headers={"Retry-After": str(full.retry_after)}) from full


def create_execution(**fields) -> Execution:
    """Store a queued execution with its frozen graph and its input file (`build_execution` says which)."""
    with transaction.atomic():
        execution = build_execution(**fields)
        execution.save()
    return execution


def insert_execution(execution: Execution) -> None:
    """Store an execution `build_execution` made."""
    execution.save(force_insert=True)


def build_execution(
    *,
    owner,
    flow: Flow | None,
    graph: dict,
    flow_name: str,
    flow_version: int,
    draft: bool = False,
    upload: UploadedFile | None = None,
    input_from: Execution | None = None,
    streamed_name: str | None = None,
    header: runtime.SourceHeader,
) -> Execution:
    """Return a queued execution with its frozen graph and its input file, not saved yet.

    An upload held in memory is only given its name here: `store_input` writes it while the run,
    started from the same bytes, decodes them (writing 10 MB took ~20 ms before the first tile).
    So is an upload still arriving (`streamed_name`: the client's file name), written once it is whole.
    No database is read: a run may start while its row is being written (`flows.streamed_run`).
    """
    execution = Execution(
        owner=owner,
        flow=flow,
        graph=graph,
        flow_name=flow_name,
        flow_version=flow_version,
        draft=draft,
        input_width=header.size.width,
        input_height=header.size.height,
        input_format=header.format,
    )
    if upload is not None or streamed_name is not None:
        execution.input_name = os.path.basename((upload.name if upload else streamed_name) or "")[:255]
        execution.input_size = upload.size if upload else 0  # a streamed upload's, once it is whole
        field = execution.input_file
        name = field.field.generate_filename(execution, f"{execution.id}.{header.format.lower()}")
        if upload is None or in_memory(upload):
            field.name = field.storage.get_available_name(name)
        else:  # a large upload Django spooled to a temporary file: the storage moves it
            field.name = field.storage.save(name, upload)
    else:
        execution.input_name = input_from.input_name
        execution.input_size = input_from.input_size
        execution.input_file.name = input_from.input_file.name
    return execution


def in_memory(upload: UploadedFile) -> bool:
    return not hasattr(upload, "temporary_file_path") and hasattr(upload.file, "getvalue")


def store_input(execution: Execution, pieces: Sequence[bytes | memoryview]) -> None:
    """Write an in-memory upload (the pieces it is held in) to the name `create_execution` gave it."""
    path = Path(execution.input_file.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as target:  # "x": never overwrite; the name is the execution's own id
        target.writelines(pieces)
        pagecache.settle(target)


def forget_input(execution: Execution) -> None:
    """Remove the stored input of a run whose image was broken (nothing of it is kept), unless a rerun uses it."""
    remove_input(execution)
    Execution.objects.filter(pk=execution.pk).update(input_file="")


def fail_after_the_end(execution: Execution, reason: str) -> None:
    """Record a finished run as failed for `reason` (its upload broke off after the image was done), outputs gone."""
    with transaction.atomic():
        Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.FAILED, error=reason)
        ExecutionOutput.objects.filter(execution_id=execution.pk).delete()
    remove_outputs(execution.pk)


# In-memory uploads being written by this process, by execution id (see `store_input_soon`).
_storing: dict[str, asyncio.Task] = {}
STORE_DEFER_SECONDS = 0.2


def store_input_soon(
    execution: Execution, pieces: Sequence[bytes | memoryview], conductor: runtime.Conductor, *, defer: bool
) -> asyncio.Task:
    """Write an in-memory upload (its pieces) to its name in a thread, while its run (started from them) goes on.

    With `defer`, the write waits until the run's first band is out (or STORE_DEFER_SECONDS): writing
    10 MB takes ~20 ms of a core, which `/run`'s first byte waited for. The task returns None, or the
    reason the upload could not be stored, having then stopped the run and recorded the failure.
    `input_stored` waits for it, for callers that need the file.
    """

    async def store() -> str | None:
        try:
            if defer:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STORE_DEFER_SECONDS):
                        await conductor.first_output.wait()
            await asyncio.to_thread(store_input, execution, pieces)
        except OSError as error:
            conductor.cancel()
            await conductor.finished.wait()
            reason = f"the upload could not be stored: {error.strerror or error}"
            await Execution.objects.filter(pk=execution.pk).aupdate(status=Execution.Status.FAILED, error=reason)
            return reason
        finally:
            _storing.pop(str(execution.id), None)
        return None

    task = asyncio.create_task(store())
    _storing[str(execution.id)] = task
    return task


async def input_stored(execution: Execution) -> None:
    """Wait until this process has written the execution's upload, if it is still writing it."""
    task = _storing.get(str(execution.id))
    if task is not None:
        await asyncio.shield(task)


def run_spec(
    execution: Execution,
    header: runtime.SourceHeader | None = None,
    input_data: bytes | None = None,
    input_stream: UploadStream | None = None,
    limits: runtime.RunLimits | None = None,
    cost: runtime.RunCost | None = None,
) -> runtime.RunSpec:
    return runtime.RunSpec(
        execution=str(execution.id),
        graph=execution.graph,
        input_path=Path(execution.input_file.path),
        output_dir=Path(settings.MEDIA_ROOT) / "outputs" / str(execution.id),
        limits=limits or runtime.limits(),
        header=header,
        input_data=input_data,
        input_stream=input_stream,
        cost=cost if limits is None else None,  # estimated under the configured limits
    )


async def launch(
    execution: Execution,
    header: runtime.SourceHeader | None = None,
    input_data: bytes | None = None,
    input_stream: UploadStream | None = None,
    limits: runtime.RunLimits | None = None,
    cost: runtime.RunCost | None = None,
    inserted: asyncio.Future | None = None,
    **start_options,
) -> runtime.Conductor:
    """Start the run of an execution in this process (`header`, `input_data`: its input's, if at hand;
    `input_stream`: its input while it still arrives; `limits`: other than the configured ones; `cost`:
    what `admit_run` returned; `inserted`: done once the execution's row is written, when it was not yet)."""
    return await runtime.start(
        run_spec(execution, header, input_data, input_stream, limits, cost),
        owner=str(execution.owner_id),
        recorder=ExecutionRecorder(execution.id, inserted),
        **start_options,
    )


class ExecutionRecorder:
    """Save a conductor's snapshots to its execution row (also the run's heartbeat)."""

    def __init__(self, execution_id, inserted: asyncio.Future | None = None) -> None:
        self.execution_id = execution_id
        self.ended = False  # the final save reached the row
        self._inserted = inserted  # a run that started while its row was being written saves after it

    def end_with(self, snapshot: dict[str, Any]) -> None:
        """Record more of the run's end in the final save's transaction (nothing here; batch items do)."""

    async def save(self, snapshot: dict[str, Any], *, final: bool) -> None:
        if self._inserted is not None:
            try:
                await asyncio.shield(self._inserted)
            except Exception:  # the row was never written (the request failed with it): nothing to save to
                return
        await sync_to_async(self._save, thread_sensitive=False)(snapshot, final)

    def _save(self, snapshot: dict[str, Any], final: bool) -> None:
        media = Path(settings.MEDIA_ROOT)
        fields = {
            "status": snapshot["status"],
            "error": snapshot["error"],
            "started_at": parse_datetime(snapshot["started_at"]) if snapshot["started_at"] else None,
            "first_output_at": parse_datetime(snapshot["first_output_at"]) if snapshot["first_output_at"] else None,
            "finished_at": parse_datetime(snapshot["finished_at"]) if final and snapshot["finished_at"] else None,
            "nodes": snapshot["nodes"],
            "timeline": snapshot["timeline"],
            "retries": snapshot["retries"],
            "duplicates": snapshot.get("duplicates", 0),
            "workers": snapshot.get("workers", {}),
            "heartbeat_at": timezone.now(),
            "runner": RUNNER,
        }
        with transaction.atomic():
            rows = Execution.objects.filter(pk=self.execution_id)
            if not final:  # never overwrite an end someone else recorded (a sweep, a cancel)
                rows = rows.exclude(status__in=Execution.FINISHED)
            if not rows.update(**fields):
                return
            keep = snapshot["status"] == "succeeded" or not final
            outputs = snapshot["outputs"]
            if not keep:
                nodes = [output["node"] for output in outputs]
                ExecutionOutput.objects.filter(execution_id=self.execution_id, node__in=nodes).delete()
            elif outputs:  # one INSERT … ON CONFLICT for all of them (a save is made often, and mostly Python)
                ExecutionOutput.objects.bulk_create(
                    [
                        ExecutionOutput(
                            execution_id=self.execution_id,
                            node=output["node"],
                            file=_media_name(Path(output["path"]), media),
                            content_type=output["content_type"],
                            size=output["size"],
                            complete=output["complete"],
                        )
                        for output in outputs
                    ],
                    update_conflicts=True,
                    unique_fields=["execution", "node"],
                    update_fields=["file", "content_type", "size", "complete"],
                )
            if final:
                self.end_with(snapshot)
                self.ended = True
        if not keep:  # the conductor removed its partial files; the folder they were in goes too
            remove_outputs(self.execution_id)


def _media_name(path: Path, media: Path) -> str:
    return str(path.relative_to(media)) if path.is_relative_to(media) else str(path)


def _runner_gone(runner: str) -> bool:
    """Tell whether a conductor named host:pid on this host is no longer alive."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or runner == RUNNER:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def mark_interrupted(*, older_than: float | None = None) -> int:
    """Fail runs whose conductor is gone (its process died, or it stopped beating); return how many."""
    seconds = older_than if older_than is not None else max(10.0, settings.TILEFLOW["HEARTBEAT_SECONDS"] * 5)
    cutoff = timezone.now() - timedelta(seconds=seconds)
    unfinished = [Execution.Status.QUEUED, Execution.Status.RUNNING]
    live = set(runtime.local_run_ids())
    count = 0
    for execution in Execution.objects.filter(status__in=unfinished).only("id", "runner", "heartbeat_at", "created_at"):
        if str(execution.id) in live:
            continue
        last_sign = execution.heartbeat_at or execution.created_at
        gone = _runner_gone(execution.runner)
        if last_sign >= cutoff and not gone:
            continue
        marked = Execution.objects.filter(pk=execution.pk, status__in=unfinished).update(
            status=Execution.Status.FAILED,
            finished_at=timezone.now(),
            error="interrupted: the server running this execution stopped before it finished",
        )
        count += marked
        ExecutionOutput.objects.filter(execution=execution).delete()
        if marked and gone:  # its partial files: nobody will finish them (a silent runner elsewhere may, once
            remove_outputs(execution.pk)  # it is back: `media.remove_orphans` takes those after a grace)
    if count:
        log.warning("marked %d interrupted execution(s) as failed", count)
    return count


def _node_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": entry.get("status", "pending"),
        "done": entry.get("done", 0),
        "total": entry.get("total", 0),
        **{key: entry.get(key) for key in ("busy_ms", "started_ms", "finished_ms")},
    }


def execution_payload(execution: Execution, outputs: list[ExecutionOutput] | None = None) -> dict[str, Any]:
    """Return the API's execution object (CONTRACT §3), live counts merged in when it runs here."""
    live = runtime.local_run(str(execution.id))
    snapshot = live.snapshot() if live is not None else {}
    if snapshot and snapshot["status"] in Execution.FINISHED and not live.finished.is_set():
        # The end is not saved yet (nor its outputs): show it when a download would work.
        snapshot = {**snapshot, "status": Execution.Status.RUNNING.value, "error": None, "finished_at": None}

    def moment(key: str) -> str | None:
        if snapshot:
            return snapshot.get(key)
        value = getattr(execution, key)
        return value.isoformat() if value else None

    nodes = snapshot.get("nodes") or execution.nodes or {}
    for node in execution.graph.get("nodes", []):
        nodes.setdefault(node["id"], {"status": "pending", "done": 0, "total": 0})
    started, first_output, finished = (
        parse_datetime(moment(key)) if moment(key) else None for key in ("started_at", "first_output_at", "finished_at")
    )
    base = f"/api/executions/{execution.id}"
    if outputs is None:
        outputs = list(execution.outputs.all())
    return {
        "id": str(execution.id),
        "flow": str(execution.flow_id) if execution.flow_id else None,
        "flow_name": execution.flow_name,
        "flow_version": execution.flow_version,
        "draft": execution.draft,
        "owner": execution.owner.get_username(),
        "status": snapshot.get("status") or execution.status,
        "created_at": execution.created_at.isoformat(),
        "started_at": moment("started_at"),
        "first_output_at": moment("first_output_at"),
        "finished_at": moment("finished_at"),
        "duration_ms": int((finished - started).total_seconds() * 1000) if started and finished else None,
        "time_to_first_output_ms": int((first_output - started).total_seconds() * 1000)
        if started and first_output
        else None,
        "error": snapshot.get("error") if snapshot else execution.error,
        "retries": snapshot.get("retries", execution.retries),
        "duplicates": snapshot.get("duplicates", execution.duplicates),
        "workers": snapshot.get("workers") or execution.workers or {},
        "nodes": {node: _node_entry(entry) for node, entry in nodes.items()},
        "timeline": snapshot.get("timeline") or execution.timeline or {},
        "graph": execution.graph,
        "input": {
            "name": execution.input_name,
            "size": execution.input_size,
            "width": execution.input_width,
            "height": execution.input_height,
            "format": execution.input_format,
            "url": f"{base}/input",
        },
        "outputs": [
            {
                "node": output.node,
                "url": f"{base}/output?node={output.node}",
                "content_type": output.content_type,
                "size": output.size,
                "complete": output.complete,
            }
            for output in outputs
        ],
    }
