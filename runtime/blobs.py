"""Bulk bytes of placed runs (inputs, encoded outputs) kept in Redis under keys of their own.

Why not in channel messages: channels_redis receives a message at least once by copying it into
a backup sorted set and popping it from there again (`_brpop_with_clean`), so every byte sent
through it crosses Redis twice each way. A blob is written once (SET) and read once (GET, or
GETDEL for a chunk only one console reads); the channel message that names it stays small.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref

import redis.asyncio as redis

BLOB_PREFIX = "tileflow:blob:"
INPUT_TTL = 86_400  # seconds: an input waits with its offer, however long the lane is
CHUNK_TTL = 600  # seconds: an output chunk is read within moments, or asked for again


class BlobStore:
    """Put and take byte strings in the Redis of a channel layer."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.client = redis.Redis.from_url(address, socket_timeout=30)

    @classmethod
    def of_layer(cls, layer) -> BlobStore:
        """Return a store of its own (closed by its owner) on the (first) Redis server of a channels_redis layer."""
        return cls(address_of(layer))

    @classmethod
    def shared(cls, layer) -> BlobStore:
        """Return the running event loop's store on the layer's Redis, for every run of the process; not closed.

        A redis-py connection costs ~1.5 ms of CPU to make (it reads its own package's metadata
        each time): a store of its own for each placed run made two or three of them a run.
        """
        stores = _SHARED.setdefault(asyncio.get_running_loop(), {})
        address = address_of(layer)
        store = stores.get(address)
        if store is None:
            store = stores[address] = cls(address)
        return store

    async def put(self, data: bytes, *, ttl: int = CHUNK_TTL) -> str:
        key = _new_key()
        await self.client.set(key, data, ex=ttl)
        return key

    async def put_many(self, pieces: list[bytes | memoryview], *, ttl: int = CHUNK_TTL) -> list[str]:
        """Put every piece in one round trip (a pipeline, not a transaction); return their keys in order."""
        keys = [_new_key() for _ in pieces]
        async with self.client.pipeline(transaction=False) as pipeline:
            for key, piece in zip(keys, pieces, strict=True):
                pipeline.set(key, piece, ex=ttl)
            await pipeline.execute()
        return keys

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(key)

    async def take(self, key: str) -> bytes | None:
        """Return the blob and delete it (None when it expired or Redis lost it)."""
        return await self.client.getdel(key)

    async def exists(self, *keys: str) -> bool:
        """Tell whether every key is there (Redis restarted empty forgets them)."""
        return await self.client.exists(*keys) == len(keys)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self.client.delete(*keys)

    async def ping(self) -> bool:
        return await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


# Per event loop (a redis.asyncio client belongs to the loop it first ran on), then per address.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BlobStore]] = weakref.WeakKeyDictionary()


def address_of(layer) -> str:
    """Return the address of a channels_redis layer's (first) Redis server."""
    host = layer.hosts[0]
    return host["address"] if isinstance(host, dict) else host


def _new_key() -> str:
    return BLOB_PREFIX + uuid.uuid4().hex
