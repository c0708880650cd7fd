"""RunControl alone: what reaches a run's channel and control group lands in its inbox, in order."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from runtime import events
from runtime.control import RunControl


async def test_results_of_this_run_arrive_and_others_are_ignored():
    layer = InMemoryChannelLayer()
    control = RunControl(layer, "run-1")
    await control.open()
    try:
        await layer.send(control.channel, {"type": events.TILE_DONE, "execution": "run-2", "index": 0})
        await layer.send(control.channel, {"type": events.TILE_DONE, "execution": "run-1", "index": 7})
        kind, payload = await control.next_event(5)
        assert kind == "result" and payload["index"] == 7
        assert await control.next_event(0.05) is None  # run-2's message was dropped
    finally:
        await control.close()


async def test_a_cancel_sent_to_the_control_group_stops_the_run():
    layer = InMemoryChannelLayer()
    control = RunControl(layer, "run-3")
    await control.open()
    control.post("band", [])
    await layer.group_send(events.run_control_group("run-3"), {"type": events.RUN_CANCEL})
    assert await control.next_event(5) == ("band", [])  # queued events keep their order
    assert await control.next_event(5) == ("cancel", None)
    assert control.cancel_requested
    await control.close()
    assert events.run_control_group("run-3") not in layer.groups or not layer.groups[events.run_control_group("run-3")]


async def test_next_event_returns_none_after_its_timeout():
    control = RunControl(InMemoryChannelLayer(), "run-4")
    started = asyncio.get_running_loop().time()
    assert await control.next_event(0.05) is None
    assert asyncio.get_running_loop().time() - started >= 0.04
