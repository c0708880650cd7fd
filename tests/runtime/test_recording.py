"""RunRecord alone: counts, timeline and snapshot, observers, and when saves happen."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.control import RunFailed
from runtime.recording import STARTED_SAVE_DELAY, RunRecord


class Observer:
    def __init__(self) -> None:
        self.counts: list[tuple[str, int, int]] = []
        self.statuses: list[tuple[str, str | None]] = []

    def progress(self, node: str, done: int, total: int) -> None:
        self.counts.append((node, done, total))

    async def status(self, status: str, error: str | None) -> None:
        self.statuses.append((status, error))


class Saves:
    def __init__(self) -> None:
        self.saves: list[tuple[dict, bool]] = []

    async def save(self, snapshot: dict, *, final: bool) -> None:
        self.saves.append((snapshot, final))


def planned(**kwargs) -> RunRecord:
    record = RunRecord("rec", **kwargs)
    record.begin()
    record.plan(["in", "blur", "out"], {"in": 4, "blur": 4, "out": 4})
    return record


async def test_a_chain_counts_for_each_step_and_its_worker():
    observer = Observer()
    record = planned(observers=(observer,))
    record.starting(["blur"])
    record.chain_done(["blur"], {"blur": 0.02}, time.time(), "host:1")
    snapshot = record.snapshot()
    assert snapshot["nodes"]["blur"] == {**snapshot["nodes"]["blur"], "status": "running", "done": 1, "total": 4}
    assert snapshot["nodes"]["blur"]["busy_ms"] == 20 and snapshot["workers"] == {"host:1": 1}
    assert len(snapshot["timeline"]["blur"]) == 1
    assert observer.counts[-1] == ("blur", 1, 4)


async def test_a_source_that_delivered_fewer_tiles_than_planned_fails():
    record = planned()
    record.decoded("in", 3)
    with pytest.raises(RunFailed, match="3 of 4 tiles decoded") as failure:
        record.decode_finished("in", 4)
    assert failure.value.node == "in"
    record.decoded("in", 1)
    record.decode_finished("in", 4)
    assert record.snapshot()["nodes"]["in"]["status"] == "done"


async def test_running_is_saved_with_the_first_band_and_the_final_status_reaches_observers():
    saves, observer = Saves(), Observer()
    record = planned(recorder=saves, observers=(observer,))
    record.save_started_soon()
    await asyncio.sleep(0)
    record.band_written("out", 2, time.time())
    await asyncio.sleep(0.01)
    ((first, final),) = saves.saves
    assert first["status"] == "running" and first["first_output_at"] is not None and not final
    record.band_written("out", 2, time.time())  # later bands do not save each time
    record.status = "succeeded"
    record.end()
    await record.save(final=True)
    await record.publish_final()
    assert [final for _, final in saves.saves] == [False, True]
    assert observer.statuses == [("succeeded", None)]
    assert ("out", 4, 4) in observer.counts


async def test_a_slow_first_band_is_saved_as_running_after_the_delay():
    saves = Saves()
    record = planned(recorder=saves)
    started = time.monotonic()
    record.save_started_soon()
    while not saves.saves:
        await asyncio.sleep(0.01)
    assert time.monotonic() - started >= STARTED_SAVE_DELAY
    assert saves.saves[0][0]["first_output_at"] is None
    record.band_written("out", 1, time.time())  # the first band then gets a save of its own
    await asyncio.sleep(0.01)
    assert len(saves.saves) == 2 and saves.saves[1][0]["first_output_at"] is not None
    record.end()


async def test_a_run_nobody_watches_is_saved_once_when_it_ends_quickly():
    saves = Saves()
    record = planned(recorder=saves)
    record.save_started_soon(with_first_band=False)
    await asyncio.sleep(0)
    record.band_written("out", 4, time.time())  # its only band: no save of its own
    await asyncio.sleep(0.02)
    assert saves.saves == []
    record.status = "succeeded"
    record.end()
    await record.save(final=True)
    await asyncio.sleep(STARTED_SAVE_DELAY + 0.05)  # the pending "running" save was cancelled with the end
    ((only, final),) = saves.saves
    assert final and only["status"] == "succeeded" and only["first_output_at"] is not None


async def test_a_run_nobody_watches_that_lasts_is_saved_as_running_after_the_delay():
    saves = Saves()
    record = planned(recorder=saves)
    started = time.monotonic()
    record.save_started_soon(with_first_band=False)
    record.band_written("out", 1, time.time())
    while not saves.saves:
        await asyncio.sleep(0.01)
    assert time.monotonic() - started >= STARTED_SAVE_DELAY
    ((first, final),) = saves.saves
    assert first["status"] == "running" and first["first_output_at"] is not None and not final
    record.end()
