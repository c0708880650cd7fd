"""Blobs in a real Redis: what a placed run's input and output bytes travel as."""

from __future__ import annotations

import asyncio
import os
import tracemalloc

import pytest
import redis

from runtime.blobs import BlobStore
from runtime.placement import regrouped
from tests.support.services import redis_server


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as server:
        yield server.url


async def test_pieces_put_in_one_round_trip_come_back_whole_and_in_order(redis_url):
    blobs = BlobStore(redis_url)
    try:
        data = bytes(range(256)) * 12_000  # 3 MB
        view = memoryview(data)
        pieces = [[view[start : start + 768 * 1024]] for start in range(0, len(data), 768 * 1024)]
        keys = await blobs.put_many(pieces, ttl=60)
        assert len(set(keys)) == len(pieces) == 4
        assert b"".join([await blobs.get(key) for key in keys]) == data
        assert await blobs.exists(*keys)
        assert 0 < await blobs.client.ttl(keys[0]) <= 60
        assert await blobs.put_many([[memoryview(b"")]], ttl=60) and await blobs.take(keys[-1]) == bytes(pieces[-1][0])
        assert not await blobs.exists(*keys)  # taken means gone
    finally:
        await blobs.close()


async def test_a_value_is_put_from_the_buffers_it_is_made_of_without_joining_them(redis_url):
    """An upload arrives in pieces (64 KB off a fast socket, bytes off a slow one): a blob is sent as they are."""
    data = os.urandom(8 << 20)
    view = memoryview(data)
    sizes = [1, 7, 65_536, 300_000, 3, 2 << 20]  # tiny, large, larger than a write step
    pieces, start = [], 0
    while start < len(data):
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(view[start : start + size])
        start += size
    groups = regrouped(pieces, 768 * 1024)
    blobs = BlobStore(redis_url)
    try:
        await blobs.ping()  # the connection is made before memory is counted
        tracemalloc.start()
        try:
            keys = await blobs.put_many(groups, ttl=60)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20, f"{peak} bytes allocated to send 8 MB: it was joined or buffered whole"
        assert b"".join([await blobs.get(key) for key in keys]) == data
        assert [len(await blobs.get(key)) for key in keys[:-1]] == [768 * 1024] * (len(keys) - 1)
    finally:
        await blobs.close()


async def test_a_refused_put_raises_the_servers_error_and_the_next_one_works(redis_url):
    blobs = BlobStore(redis_url)
    try:
        await blobs.client.config_set("maxmemory", "2mb")
        await blobs.client.config_set("maxmemory-policy", "noeviction")
        big = memoryview(os.urandom(1 << 20))
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            await blobs.put_many([[big]] * 8, ttl=60)  # refused part way: replies were left unread
        await blobs.client.config_set("maxmemory", "0")
        keys = await blobs.put_many([[b"after", b" the refusal"]], ttl=60)
        assert await blobs.get(keys[0]) == b"after the refusal"  # not a reply left over from before
        assert await blobs.client.ping()
    finally:
        await blobs.close()


def test_pieces_are_regrouped_into_blobs_of_a_size_as_views_of_the_same_bytes():
    data = bytes(range(10)) * 10
    pieces = [memoryview(data)[0:30], memoryview(data)[30:31], memoryview(data)[31:100]]
    groups = regrouped(pieces, 40)
    assert [sum(len(part) for part in group) for group in groups] == [40, 40, 20]
    assert b"".join(b"".join(group) for group in groups) == data
    assert all(part.obj is data for group in groups for part in group)  # views: nothing copied
    assert regrouped([], 40) == [[]]  # an empty input is one empty blob


def test_one_shared_store_a_loop_serves_every_run_of_the_process(redis_url):
    """A store of its own for each placed run made two or three redis-py connections a run."""

    class Layer:
        hosts = [{"address": redis_url}]

    def connections_made() -> int:  # Redis' own count, asked on a connection of its own (counted too)
        with redis.Redis.from_url(redis_url) as client:
            return client.info("stats")["total_connections_received"]

    async def twice() -> tuple[BlobStore, BlobStore]:
        first = BlobStore.shared(Layer())
        await first.put(b"x", ttl=5)
        second = BlobStore.shared(Layer())
        assert second is first
        made = connections_made()
        for _ in range(5):  # what runs one after another do: no connection made again
            await second.put(b"y", ttl=5)
        assert connections_made() == made + 1  # the second count's own connection, no other
        return first, second

    one, _ = asyncio.run(twice())
    other, _ = asyncio.run(twice())  # a redis.asyncio client belongs to its loop: another loop, another store
    assert other is not one
