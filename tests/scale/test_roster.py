"""The roster in a real Redis: workers' entries, and how long a waiting run has seen none."""

from __future__ import annotations

import asyncio

import pytest

from runtime import roster
from runtime.blobs import BlobStore
from tests.support.services import redis_server

pytestmark = pytest.mark.redis


@pytest.fixture
def blobs(tmp_path):
    with redis_server(tmp_path) as server:
        yield BlobStore(server.url)


async def test_entries_are_listed_by_name_until_they_leave(blobs):
    try:
        assert await roster.listed(blobs) == []
        for name in ("b:2", "a:1"):
            await roster.beat(blobs, {**roster.entry(threads=2, runs=0, capacity=1), "name": name})
        assert [worker["name"] for worker in await roster.listed(blobs)] == ["a:1", "b:2"]
        assert 0 < await blobs.client.pttl(roster.ROSTER_PREFIX + "a:1") <= roster.ENTRY_TTL * 1000
        await roster.leave(blobs, "a:1")
        assert [worker["name"] for worker in await roster.listed(blobs)] == ["b:2"]
    finally:
        await blobs.close()


async def test_an_entry_not_renewed_for_a_few_beats_is_gone_within_four_seconds(blobs):
    """A killed worker must not look alive for long: a run's lease is 3 s, a beat 0.75 s."""
    try:
        assert roster.entry_ttl(0.75) == 3.5 and roster.entry_ttl(2.0) == 8.0  # four beats, at least 3.5 s
        await roster.beat(blobs, {**roster.entry(threads=1, runs=0, capacity=1), "name": "w:1"}, every=0.75)
        assert [worker["name"] for worker in await roster.listed(blobs)] == ["w:1"]
        await asyncio.sleep(3.0)  # four beats missed
        assert [worker["name"] for worker in await roster.listed(blobs)] == ["w:1"]
        await asyncio.sleep(0.7)
        assert await roster.listed(blobs) == []
    finally:
        await blobs.close()


async def test_a_waiting_run_gives_up_only_after_no_worker_for_its_whole_patience(blobs):
    """A restart (the old worker gone, the new one not up yet) is a gap, not the end of the wait."""
    worker = {**roster.entry(threads=1, runs=0, capacity=1), "name": "w:1"}
    try:
        absence = roster.Absence(blobs, patience=4.0, now=100.0)
        assert absence.every == 1.0
        assert await absence.lasted(100.5) is None  # read at most every second
        await roster.beat(blobs, worker)
        assert await absence.lasted(101.0) is None  # seen at 101
        await roster.leave(blobs, worker["name"])  # stopped: its entry is gone at once
        for now in (102.0, 103.0, 104.0, 104.9):
            assert await absence.lasted(now) is None, now  # less than 4 s since one was seen
        await roster.beat(blobs, worker)  # the new one is up
        assert await absence.lasted(106.0) is None  # seen at 106: the 4 s count again from here
        await roster.leave(blobs, worker["name"])
        assert await absence.lasted(109.0) is None
        assert await absence.lasted(110.0) == pytest.approx(4.0)
    finally:
        await blobs.close()


async def test_with_no_worker_from_the_start_the_wait_counts_from_its_beginning(blobs):
    try:
        absence = roster.Absence(blobs, patience=15.0, now=0.0)
        assert absence.every == 2.0
        assert await absence.lasted(14.0) is None
        assert await absence.lasted(16.0) == pytest.approx(16.0)
    finally:
        await blobs.close()
