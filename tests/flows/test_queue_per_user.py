"""A user's waiting runs are capped (TILEFLOW_MAX_QUEUED_RUNS_PER_USER): one user cannot fill the queue of all."""

from __future__ import annotations

import asyncio

import pytest

from flows.models import ApiToken, Flow
from tests.scale import slow_steps  # noqa: F401 - registers "slow"
from tests.support.runs import TokenClient, image_bytes, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

SLOW = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "wait", "type": "slow", "params": {"seconds": 0.1}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "wait"}, {"from": "wait", "to": "out"}],
}


@pytest.fixture
def limits(settings):
    settings.TILEFLOW = {
        **settings.TILEFLOW,
        "TILE_SIZE": 64,
        "SMALL_IMAGE_TILES": 0,
        "MAX_CONCURRENT_RUNS_PER_USER": 1,
        "MAX_QUEUED_RUNS": 3,
        "MAX_QUEUED_RUNS_PER_USER": 2,
    }


async def started(http: TokenClient, flow: Flow):
    return await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(640, 640))})


async def running(http: TokenClient, execution_id: str) -> None:
    for _ in range(200):
        if (await http.get(f"/api/executions/{execution_id}")).json()["status"] == "running":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{execution_id} never ran")


async def test_one_user_filling_his_queue_is_refused_while_another_user_still_queues(limits, user, other_user):
    alice = TokenClient(await asyncio.to_thread(lambda: ApiToken.issue(user, name="a")[1]))
    bob = TokenClient(await asyncio.to_thread(lambda: ApiToken.issue(other_user, name="b")[1]))
    flow_a = await Flow.objects.acreate(owner=user, name="slow", graph=SLOW)
    flow_b = await Flow.objects.acreate(owner=other_user, name="slow", graph=SLOW)
    ids: list[tuple[TokenClient, str]] = []
    try:
        first = await started(alice, flow_a)
        assert first.status_code == 201, first.json()
        ids.append((alice, first.json()["id"]))
        await running(alice, first.json()["id"])
        for _ in range(2):  # alice's own slot is taken: these wait for it
            queued = await started(alice, flow_a)
            assert queued.status_code == 201 and queued.json()["status"] == "queued", queued.json()
            ids.append((alice, queued.json()["id"]))

        refused = await started(alice, flow_a)  # the server's queue has room, alice's has none
        assert refused.status_code == 429, refused.json()
        assert int(refused.headers["Retry-After"]) >= 1
        error = refused.json()["error"]
        assert "you have 2 runs waiting for a run slot of your own" in error, error
        assert "TILEFLOW_MAX_QUEUED_RUNS_PER_USER" in error and "at most 2" in error

        bobs = await started(bob, flow_b)  # bob is not refused because of alice
        assert bobs.status_code == 201, bobs.json()
        ids.append((bob, bobs.json()["id"]))
        await running(bob, bobs.json()["id"])
        waits = await started(bob, flow_b)
        assert waits.status_code == 201 and waits.json()["status"] == "queued", waits.json()
        ids.append((bob, waits.json()["id"]))

        full = await started(bob, flow_b)  # now the server's queue is full: it says what its runs wait for
        assert full.status_code == 429, full.json()
        assert "3 runs are waiting for their owner's run slot (at most 3 may wait)" in full.json()["error"]
    finally:
        for client, execution_id in ids:
            await client.post(f"/api/executions/{execution_id}/cancel")
