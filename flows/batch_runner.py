"""Run a batch's items a few at a time, under the same limits as any run; cancel a batch.

A driver (one asyncio task per batch, in the server process that took it) keeps at most
`BATCH_CONCURRENCY` items started and unfinished: each is probed, given its execution and started
through `runtime.api.start` like any run, so the per-user slots and the server-wide admission
apply to it and a batch of a thousand never holds more than a few decoded images or waiting tasks.
The driver's heartbeat is the batch row's `heartbeat_at`; `flows.batch_resume` takes over the
batches whose driver died.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows import executions
from flows.batches import status_counts
from flows.models import Batch, BatchItem, Execution
from runtime import api as runtime
from runtime import events
from runtime.bridge import TRANSIENT_ERRORS

log = logging.getLogger("tileflow.batches")

PUBLISH_INTERVAL = 0.25
UNFINISHED = ("queued", "running")

_driving: dict[str, asyncio.Task] = {}


def window() -> int:
    """Return how many items of one batch may be started and unfinished at once."""
    config = settings.TILEFLOW
    return max(1, min(config["BATCH_CONCURRENCY"], config["MAX_CONCURRENT_RUNS_PER_USER"]))


def item_limits() -> runtime.RunLimits:
    """Return the limits of an item's run: those of any unattended run, with larger tiles.

    Nobody waits for an item's first band, so it trades the first rows' latency for fewer, larger
    tiles and no short first rows (a 2 MP photo is 4 source tiles instead of 24 at 512 with short rows,
    its half-size result 1 instead of 10): less per-tile work, the same pixels (tiled results equal
    whole-image ones at any tile size and grid).
    """
    limits = runtime.unattended_limits()
    tile_size = max(limits.tile_size, settings.TILEFLOW["BATCH_TILE_SIZE"])
    return dataclasses.replace(limits, tile_size=tile_size, small_image_tiles=0)  # 2048-px tiles: no faster


def drive(batch_id) -> asyncio.Task:
    """Drive a batch from this process's event loop (once: a second call returns the same task)."""
    key = str(batch_id)
    task = _driving.get(key)
    if task is None or task.done():
        task = asyncio.get_running_loop().create_task(BatchDriver(key).run(), name=f"batch-{key}")
        _driving[key] = task
        task.add_done_callback(lambda done: _driving.pop(key, None) if _driving.get(key) is done else None)
    return task


def driving(batch_id) -> bool:
    task = _driving.get(str(batch_id))
    return task is not None and not task.done()


class BatchDriver:
    """Admit a batch's items a window at a time, record each end, publish counts, end the batch."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.layer = get_channel_layer()
        self.group = events.batch_group(batch_id)
        self.active: dict[asyncio.Task, int] = {}
        self.conductors: dict[int, runtime.Conductor] = {}
        self.sent: dict[str, int] = {}
        self.published_at = 0.0

    async def run(self) -> None:
        batch = await Batch.objects.filter(pk=self.batch_id).afirst()
        if batch is None or batch.finished:
            return
        await self._beat(start=True)
        beat = max(0.5, settings.TILEFLOW["HEARTBEAT_SECONDS"])
        # The row is read and written once a heartbeat, not once an item: it is the other servers' sign of
        # life and where a cancel is asked for (cancel() also ends the queued and running items itself).
        beaten, checked = time.monotonic(), -beat
        cancelling = False
        try:
            while True:
                if not cancelling and time.monotonic() - checked >= beat:
                    checked = time.monotonic()
                    cancelling = await self._cancel_requested()
                if cancelling:
                    for conductor in self.conductors.values():
                        conductor.cancel()
                while not cancelling and len(self.active) < window():
                    item = await sync_to_async(_claim_next)(self.batch_id)
                    if item is None:
                        break
                    self.active[asyncio.create_task(self._run_item(batch, item))] = item.pk
                if not self.active:
                    break
                done, _ = await asyncio.wait(self.active, timeout=beat, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self.active.pop(task)
                if time.monotonic() - beaten >= beat:
                    beaten = time.monotonic()
                    if not await self._beat():
                        log.warning("batch %s was taken over by another server; this one stops", self.batch_id)
                        return
                await self._publish(final=False)
        except asyncio.CancelledError:
            for task in self.active:
                task.cancel()
            raise
        await self._finish(cancelling)

    async def _run_item(self, batch: Batch, item: BatchItem) -> None:
        """Run one item to its end and record it; never raises for the item's own failure."""
        try:
            prepared = await sync_to_async(_prepare_item, thread_sensitive=False)(batch, item)
            if prepared is None:
                return
            execution, header = prepared
            spec = dataclasses.replace(executions.run_spec(execution, header), limits=item_limits())
            recorder = ItemRecorder(execution.id, item.pk)
            conductor = await runtime.start(spec, owner=str(execution.owner_id), recorder=recorder)
            self.conductors[item.pk] = conductor
            await conductor.finished.wait()
            if not recorder.ended:  # the final save did not reach the execution's row
                await _end_item(item.pk, conductor.status, conductor.error)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug of ours: the item fails with the reason, the batch goes on
            log.exception("batch %s item %s failed unexpectedly", self.batch_id, item.pk)
            await _end_item(item.pk, "failed", f"internal error: {type(error).__name__}: {error}")
        finally:
            self.conductors.pop(item.pk, None)

    async def _cancel_requested(self) -> bool:
        return await Batch.objects.filter(pk=self.batch_id, cancel_requested=True).aexists()

    async def _beat(self, *, start: bool = False) -> bool:
        """Record that this process drives the batch; False when another server has taken it."""
        rows = Batch.objects.filter(pk=self.batch_id)
        fields = {"heartbeat_at": timezone.now()}
        if start:
            fields.update(runner=executions.RUNNER)
            await rows.filter(status="queued").aupdate(status="running")
        else:
            rows = rows.filter(runner=executions.RUNNER)
        return bool(await rows.aupdate(**fields))

    async def _publish(self, *, final: bool) -> dict[str, int]:
        if not final and time.monotonic() - self.published_at < PUBLISH_INTERVAL:
            return {}
        self.published_at = time.monotonic()
        tally = await sync_to_async(status_counts)(self.batch_id)
        progress = {key: tally[key] for key in ("succeeded", "failed", "cancelled", "total")}
        if final or progress != self.sent:
            self.sent = progress
            await self._send({"type": events.BATCH_PROGRESS, **progress, "final": final})
        return tally

    async def _finish(self, cancelled: bool) -> None:
        status = await sync_to_async(close_batch)(self.batch_id, cancelled)
        await self._publish(final=True)
        if status is not None:
            await self._send({"type": events.BATCH_STATUS, "status": status})

    async def _send(self, message: dict) -> None:
        try:
            await self.layer.group_send(self.group, message)
        except TRANSIENT_ERRORS as error:
            log.warning("batch progress not published: %s", error)


def _claim_next(batch_id: str) -> BatchItem | None:
    """Take the next queued item (the first by index) for this driver; None when none is left."""
    while True:
        with transaction.atomic():
            item = BatchItem.objects.filter(batch_id=batch_id, status="queued").order_by("index").first()
            if item is None:
                return None
            claimed = BatchItem.objects.filter(pk=item.pk, status="queued").update(
                status="running", attempts=item.attempts + 1, started_at=timezone.now(), finished_at=None
            )
        if claimed:  # else a cancel took it meanwhile
            item.attempts += 1
            return item


def _prepare_item(batch: Batch, item: BatchItem) -> tuple[Execution, runtime.SourceHeader] | None:
    """Probe the item's stored input and give it its execution; None when it cannot run (the item is failed).

    One call off the event loop for what an item needs before its run starts.
    """
    try:
        header = runtime.probe(Path(settings.MEDIA_ROOT) / item.input_file, settings.TILEFLOW["MAX_PIXELS"])
    except runtime.ImageRejected as rejected:
        _item_ended(item.pk, "failed", str(rejected))
        return None
    except OSError as error:
        _item_ended(item.pk, "failed", f"the stored input cannot be read: {error.strerror or error}")
        return None
    return _create_execution(batch, item, header), header


def _create_execution(batch: Batch, item: BatchItem, header: runtime.SourceHeader) -> Execution:
    """Store the item's execution (its input is the item's stored file) and link it."""
    with transaction.atomic():
        # The flow may have been deleted since the batch started: its items still run its frozen graph.
        flow_id = Batch.objects.filter(pk=batch.pk).values_list("flow_id", flat=True).first()
        execution = Execution.objects.create(
            owner_id=batch.owner_id,
            flow_id=flow_id,
            graph=batch.graph,
            flow_name=batch.flow_name,
            flow_version=batch.flow_version,
            input_file=item.input_file,
            input_name=os.path.basename(item.name)[:255],
            input_size=item.size,
            input_width=header.size.width,
            input_height=header.size.height,
            input_format=header.format,
        )
        BatchItem.objects.filter(pk=item.pk).update(execution=execution)
    return execution


class ItemRecorder(executions.ExecutionRecorder):
    """Save an item's run; its final save ends the item too, in one transaction with the execution's end.

    So an item and its execution never disagree, and an item costs one write less.
    """

    def __init__(self, execution_id, item_id: int) -> None:
        super().__init__(execution_id)
        self.item_id = item_id

    def end_with(self, snapshot: dict) -> None:
        _item_ended(self.item_id, snapshot["status"], snapshot["error"])


def _item_ended(item_id: int, status: str, error: str | None) -> None:
    BatchItem.objects.filter(pk=item_id, status="running").update(
        status=status, error=error if status == "failed" else None, finished_at=timezone.now()
    )


async def _end_item(item_id: int, status: str, error: str | None) -> None:
    await sync_to_async(_item_ended)(item_id, status, error)


def close_batch(batch_id: str, cancelled: bool) -> str | None:
    """Give the batch its final status once no item is unfinished; return it (None if not over)."""
    with transaction.atomic():
        if cancelled:
            BatchItem.objects.filter(batch_id=batch_id, status="queued").update(
                status="cancelled", finished_at=timezone.now()
            )
        tally = status_counts(batch_id)
        if tally["queued"] or tally["running"]:
            return None
        if cancelled or Batch.objects.filter(pk=batch_id, cancel_requested=True).exists():
            status = "cancelled"
        elif tally["failed"]:
            status = "failed"
        elif tally["cancelled"]:
            status = "cancelled"
        else:
            status = "succeeded"
        updated = Batch.objects.filter(pk=batch_id, status__in=UNFINISHED).update(
            status=status, finished_at=timezone.now()
        )
    return status if updated else None


# -- cancelling ---------------------------------------------------------------------------------


async def cancel(batch: Batch) -> None:
    """Stop a batch: queued items are cancelled at once, running ones are asked to stop."""
    await Batch.objects.filter(pk=batch.pk).aupdate(cancel_requested=True)
    await BatchItem.objects.filter(batch_id=batch.pk, status="queued").aupdate(
        status="cancelled", finished_at=timezone.now()
    )
    running = [
        str(execution)
        async for execution in BatchItem.objects.filter(batch_id=batch.pk, status="running")
        .exclude(execution=None)
        .values_list("execution_id", flat=True)
    ]
    for execution_id in running:
        await runtime.cancel(execution_id)
    task = _driving.get(str(batch.pk))
    if task is not None and not task.done():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        return
    from flows.batch_resume import end_orphan_cancelled  # resuming builds on this module

    await sync_to_async(end_orphan_cancelled)(batch.pk)
