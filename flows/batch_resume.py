"""Take over the batches of a server that stopped mid-batch, so none stays "running" for ever.

A supervisor (in every server, at start-up and every few seconds) claims unfinished batches whose
driver is gone (its process died on this host, or its heartbeat stopped): items that never started
run; items whose run was interrupted run again (once) from their stored input; items that ended keep
their result. The claim is a conditional update of the batch row, so one server takes each batch.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from flows import executions
from flows.batch_runner import UNFINISHED, close_batch, drive, driving
from flows.models import Batch, BatchItem, Execution

log = logging.getLogger("tileflow.batches")

# An item whose run was interrupted by a server's death runs again, this many times in all.
MAX_ATTEMPTS = 2
INTERRUPTED = "interrupted: the server running this batch stopped before the item finished"

_supervisor: dict[int, asyncio.Task] = {}  # id(loop) -> supervisor task


def _cutoff():
    return timezone.now() - timedelta(seconds=max(10.0, settings.TILEFLOW["HEARTBEAT_SECONDS"] * 5))


def end_orphan_cancelled(batch_id) -> None:
    """End a cancelled batch here when nobody drives it any more (its server is gone)."""
    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is not None and batch.runner != executions.RUNNER and _orphaned(batch, _cutoff()):
        requeue_interrupted(batch_id)
        close_batch(str(batch_id), True)


def _orphaned(batch: Batch, cutoff) -> bool:
    if not batch.runner:
        return False  # created moments ago; its server starts driving it at once
    if batch.runner == executions.RUNNER:
        return not driving(batch.pk)
    return executions._runner_gone(batch.runner) or (batch.heartbeat_at or batch.created_at) < cutoff


def claim_orphans() -> list[str]:
    """Take over the unfinished batches whose driver is gone; return their ids, ready to drive."""
    cutoff = _cutoff()
    claimed = []
    candidates = Batch.objects.filter(status__in=UNFINISHED).only("id", "runner", "heartbeat_at", "created_at")
    for batch in candidates:
        if driving(batch.pk) or not _orphaned(batch, cutoff):
            continue
        taken = Batch.objects.filter(pk=batch.pk, runner=batch.runner, heartbeat_at=batch.heartbeat_at).update(
            runner=executions.RUNNER, heartbeat_at=timezone.now()
        )
        if taken:
            requeue_interrupted(batch.pk)
            claimed.append(str(batch.pk))
    if claimed:
        log.warning("resuming %d batch(es) whose server stopped: %s", len(claimed), ", ".join(claimed))
    return claimed


def requeue_interrupted(batch_id) -> None:
    """Settle the items a dead driver left running: keep what ended, run the rest again (once)."""
    now = timezone.now()
    for item in BatchItem.objects.filter(batch_id=batch_id, status="running").select_related("execution"):
        execution = item.execution
        ended = execution is not None and execution.status in Execution.FINISHED
        interrupted = ended and execution.status == "failed" and (execution.error or "").startswith("interrupted")
        if ended and not interrupted:
            BatchItem.objects.filter(pk=item.pk).update(
                status=execution.status,
                error=execution.error if execution.status == "failed" else None,
                finished_at=execution.finished_at or now,
            )
            continue
        if execution is not None and not ended:
            Execution.objects.filter(pk=execution.pk, status__in=UNFINISHED).update(
                status="failed", finished_at=now, error=INTERRUPTED
            )
        if item.attempts < MAX_ATTEMPTS:
            BatchItem.objects.filter(pk=item.pk).update(status="queued", started_at=None)
        else:
            BatchItem.objects.filter(pk=item.pk).update(status="failed", error=INTERRUPTED, finished_at=now)


async def supervise(interval: float | None = None) -> None:
    """Claim and drive orphaned batches now and every few heartbeats, for as long as the loop runs."""
    interval = interval or max(2.0, settings.TILEFLOW["HEARTBEAT_SECONDS"] * 2)
    while True:
        try:
            for batch_id in await sync_to_async(_claim_orphans_fresh)():
                drive(batch_id)
        except Exception:
            log.exception("batch supervision failed")
        await asyncio.sleep(interval)


def _claim_orphans_fresh() -> list[str]:
    close_old_connections()
    return claim_orphans()


def ensure_supervisor() -> None:
    """Start this event loop's supervisor once."""
    loop = asyncio.get_running_loop()
    task = _supervisor.get(id(loop))
    if task is None or task.done():
        _supervisor[id(loop)] = loop.create_task(supervise(), name="batch-supervisor")


def start_supervisor_with_server() -> bool:
    """Under Daphne, start the supervisor as soon as its event loop runs (Daphne has no lifespan)."""
    if "twisted.internet.reactor" not in sys.modules:
        return False
    from twisted.internet import reactor

    # Startup triggers fire before the asyncio loop runs; callLater lands in the running loop.
    reactor.callWhenRunning(reactor.callLater, 0, ensure_supervisor)
    return True
