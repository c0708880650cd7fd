"""Blobs in a real Redis: what a placed run's input and output bytes travel as."""

from __future__ import annotations

import asyncio

import pytest
import redis

from runtime.blobs import BlobStore
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
        pieces = [view[start : start + 768 * 1024] for start in range(0, len(data), 768 * 1024)]
        keys = await blobs.put_many(pieces, ttl=60)
        assert len(set(keys)) == len(pieces) == 4
        assert b"".join([await blobs.get(key) for key in keys]) == data
        assert await blobs.exists(*keys)
        assert 0 < await blobs.client.ttl(keys[0]) <= 60
        assert await blobs.put_many([memoryview(b"")], ttl=60) and await blobs.take(keys[-1]) == bytes(pieces[-1])
        assert not await blobs.exists(*keys)  # taken means gone
    finally:
        await blobs.close()


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
