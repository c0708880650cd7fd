"""Dispatcher alone: readiness, plan order, the in-flight bound, duplicates and leases."""

from __future__ import annotations

import asyncio

import pytest

from runtime import events
from runtime.control import RunFailed
from runtime.dispatch import Dispatcher
from runtime.plan import compile_plan
from runtime.recording import RunRecord
from runtime.registry import ImageInfo
from runtime.spec import RunLimits
from runtime.store import TileStore
from runtime.testing import chain, make_image
from runtime.tiles import Size, Tile


class SentLayer:
    """A layer that keeps what is sent to it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def send(self, channel: str, message: dict) -> None:
        self.sent.append((channel, message))


def setup(limits: RunLimits) -> tuple[Dispatcher, SentLayer, TileStore, RunRecord]:
    plan = compile_plan(chain(("grayscale", {})), ImageInfo(Size(128, 96), "RGB"), tile_size=limits.tile_size)
    stores = {node: TileStore(node, plan.nodes[node].output, limits.tile_size) for node in plan.stores}
    record = RunRecord("dispatch")
    record.plan(plan.order, plan.totals)
    layer = SentLayer()
    return Dispatcher("dispatch", plan, stores, limits, layer, record), layer, stores[plan.source], record


def fill(source: TileStore, dispatcher: Dispatcher, indexes: list[int]) -> None:
    image = make_image(128, 96)
    for index in indexes:
        box = source.tile_box(index)
        source.put(index, Tile.from_image(box, image.crop(box.as_tuple())))
    dispatcher.arrived(source, indexes)


def answer(message: dict, attempt: int | None = None) -> dict:
    return {
        "type": events.TILE_DONE,
        "segment": message["segment"],
        "index": message["index"],
        "attempt": attempt or message["attempt"],
    }


async def test_tasks_go_out_when_their_region_is_in_first_rows_first_and_bounded():
    dispatcher, layer, source, record = setup(RunLimits(tile_size=32, max_in_flight=3))
    await dispatcher.dispatch("reply")
    assert layer.sent == []  # nothing decoded yet
    fill(source, dispatcher, list(reversed(range(source.count))))
    await dispatcher.dispatch("reply")
    assert [message["index"] for _, message in layer.sent] == [0, 1, 2]
    assert {channel for channel, _ in layer.sent} == {events.lane_channel("default")}
    assert dispatcher.in_flight == 3 and dispatcher.ready == source.count - 3
    assert record.nodes["grayscale0"].started is not None


async def test_the_first_answer_counts_and_a_second_is_a_duplicate():
    dispatcher, layer, source, record = setup(RunLimits(tile_size=32, max_in_flight=2))
    fill(source, dispatcher, list(range(source.count)))
    await dispatcher.dispatch("reply")
    first = layer.sent[0][1]
    task = dispatcher.done(answer(first))
    assert task is not None and task.index == first["index"]
    assert dispatcher.done(answer(first)) is None
    assert record.duplicates == 1 and dispatcher.in_flight == 1


async def test_a_task_not_answered_within_its_lease_is_sent_again_then_fails_the_run():
    dispatcher, layer, source, record = setup(
        RunLimits(tile_size=128, max_in_flight=1, lease_seconds=0.3, max_attempts=2)
    )
    fill(source, dispatcher, list(range(source.count)))
    await dispatcher.dispatch("reply")
    await dispatcher.renew()
    assert len(layer.sent) == 1  # within its lease
    await asyncio.sleep(0.4)  # past 1¼ leases
    await dispatcher.renew()
    assert [message["attempt"] for _, message in layer.sent] == [1, 2] and record.retries == 1
    await asyncio.sleep(0.4)
    with pytest.raises(RunFailed, match="not answered after 2 attempts") as failure:
        await dispatcher.renew()
    assert failure.value.node == "grayscale0"


async def test_an_acknowledged_start_gives_the_task_a_lease_from_then():
    dispatcher, layer, source, record = setup(RunLimits(tile_size=128, max_in_flight=1, lease_seconds=0.5))
    fill(source, dispatcher, list(range(source.count)))
    await dispatcher.dispatch("reply")
    await asyncio.sleep(0.65)
    dispatcher.taken(answer(layer.sent[0][1]))  # started just now, after a wait in the lane
    await asyncio.sleep(0.1)  # past 1¼ leases from the send, within a lease of the start
    await dispatcher.renew()
    assert len(layer.sent) == 1 and record.acknowledged == 1


async def test_after_a_reconnection_every_task_in_flight_is_sent_again_at_once():
    dispatcher, layer, source, record = setup(RunLimits(tile_size=32, max_in_flight=3, max_attempts=1))
    fill(source, dispatcher, list(range(source.count)))
    await dispatcher.dispatch("reply")
    dispatcher.done(answer(layer.sent[0][1]))
    await dispatcher.resend_all()  # within every lease, and past the one attempt they were allowed
    resent = layer.sent[3:]
    assert sorted(message["index"] for _, message in resent) == [1, 2]
    assert all(message["attempt"] == 2 for _, message in resent) and record.retries == 2
