"""Driving batches: a server that died mid-batch has its batch taken over, ended items kept, the rest run."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from flows import batch_resume, batch_runner, batches
from flows.models import Batch, BatchItem, Execution, Flow
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


def dead_runner() -> str:
    """Return host:pid of a process of this host that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def stored_input(batch_id, index: int) -> str:
    path = batches.batch_dir(batch_id) / "inputs" / f"{index:05d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(240, 160, seed=index))
    return batches.media_name(path)


@pytest.fixture
def orphan(user) -> Batch:
    """A batch whose server died: one item done, one running (attempt 1), one running for the 2nd time, two queued."""
    flow = Flow.objects.create(owner=user, name="cw", graph=COMPRESS_AND_WATERMARK)
    runner = dead_runner()
    batch = Batch.objects.create(
        owner=user, flow=flow, flow_name=flow.name, graph=flow.graph, status="running", runner=runner,
        heartbeat_at=timezone.now(),
    )  # fmt: skip

    def execution(status: str, **fields) -> Execution:
        return Execution.objects.create(owner=user, flow=flow, graph=flow.graph, status=status, runner=runner, **fields)

    done = execution("succeeded", finished_at=timezone.now())
    states = [
        ("succeeded", done, 1),
        ("running", execution("running"), 1),
        ("running", execution("running"), 2),
        ("queued", None, 0),
        ("queued", None, 0),
    ]
    for index, (status, run, attempts) in enumerate(states):
        BatchItem.objects.create(
            batch=batch, index=index, name=f"p{index}.jpg", input_file=stored_input(batch.id, index),
            status=status, execution=run, attempts=attempts,
        )  # fmt: skip
    return batch


async def test_a_dead_servers_batch_is_taken_over_and_finished(orphan):
    claimed = await sync_to_async(batch_resume.claim_orphans)()
    assert claimed == [str(orphan.id)]
    driver = batch_runner.drive(orphan.id)
    assert await sync_to_async(batch_resume.claim_orphans)() == []  # driven here now
    await asyncio.wait_for(driver, 60)

    await orphan.arefresh_from_db()
    items = [item async for item in BatchItem.objects.filter(batch=orphan).select_related("execution")]
    assert [item.status for item in items] == ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    assert items[1].attempts == 2 and items[1].execution.status == "succeeded"
    assert "interrupted" in items[2].error and items[2].attempts == 2
    assert orphan.status == "failed" and orphan.finished_at is not None
    assert orphan.runner == batch_resume.executions.RUNNER
    interrupted = await Execution.objects.filter(status="failed", error__startswith="interrupted").acount()
    assert interrupted == 2  # the two runs the dead server had going


async def test_a_batch_with_a_live_driver_is_left_alone(orphan):
    await Batch.objects.filter(pk=orphan.pk).aupdate(runner=f"{socket.gethostname()}:1", heartbeat_at=timezone.now())
    assert await sync_to_async(batch_resume.claim_orphans)() == []
    stale = timezone.now() - timezone.timedelta(minutes=5)
    await Batch.objects.filter(pk=orphan.pk).aupdate(runner="another-host:42", heartbeat_at=stale)
    assert await sync_to_async(batch_resume.claim_orphans)() == [str(orphan.id)]


async def test_cancelling_an_orphaned_batch_ends_it(orphan, http):
    response = await http.post(f"/api/batches/{orphan.id}/cancel")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "cancelled"
    assert (body["succeeded"], body["failed"], body["cancelled"]) == (1, 1, 3)
    assert await Execution.objects.filter(status="running").acount() == 0


@pytest.fixture
def long_batch(user) -> Batch:
    """A queued batch of 400 small photos, long enough to outlast a few heartbeats (~3 s here)."""
    flow = Flow.objects.create(owner=user, name="cw", graph=COMPRESS_AND_WATERMARK)
    batch = Batch.objects.create(owner=user, flow=flow, flow_name=flow.name, graph=flow.graph, status="queued")
    for index in range(400):
        name, stored = f"p{index}.jpg", stored_input(batch.id, index)
        BatchItem.objects.create(batch=batch, index=index, name=name, input_file=stored)
    return batch


async def test_a_driver_beats_while_it_drives_and_stops_once_another_server_took_the_batch(long_batch, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "HEARTBEAT_SECONDS": 0.5}
    driver = batch_runner.drive(long_batch.id)
    while not await BatchItem.objects.filter(batch=long_batch, status="succeeded").aexists():
        await asyncio.sleep(0.02)
    first = (await Batch.objects.aget(pk=long_batch.pk)).heartbeat_at
    await asyncio.sleep(1.2)
    assert (await Batch.objects.aget(pk=long_batch.pk)).heartbeat_at > first  # renewed while items run
    await Batch.objects.filter(pk=long_batch.pk).aupdate(runner="another-host:42")
    await asyncio.wait_for(driver, 10)  # gives up within a heartbeat or so
    left = await BatchItem.objects.filter(batch=long_batch, status="queued").acount()
    assert left > 0, left  # not run to the end regardless
    batch = await Batch.objects.aget(pk=long_batch.pk)
    assert batch.runner == "another-host:42" and batch.finished_at is None
