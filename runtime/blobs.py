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
from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.connection import Connection, ConnectionPool, parse_url

BLOB_PREFIX = "tileflow:blob:"
INPUT_TTL = 86_400  # seconds: an input waits with its offer, however long the lane is
CHUNK_TTL = 600  # seconds: an output chunk is read within moments, or asked for again
LARGE_PART = 8 * 1024  # bytes from which a part of a command is written as it is, not joined to others
WRITE_STEP = 256 * 1024  # bytes of a large part handed to the socket at a time

Buffer = bytes | memoryview


class BlobStore:
    """Put and take byte strings in the Redis of a channel layer."""

    def __init__(self, address: str) -> None:
        self.address = address
        options = parse_url(address)
        base = options.pop("connection_class", Connection)  # TCP, TLS or a Unix socket, as the address says
        pool = ConnectionPool(connection_class=_unjoined(base), socket_timeout=30, **options)
        self.client = redis.Redis.from_pool(pool)

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

    async def put_many(self, values: Sequence[Sequence[Buffer]], *, ttl: int = CHUNK_TTL) -> list[str]:
        """Put every value, each given as the buffers it is made of, in one round trip; return their keys in order.

        A value's buffers go to the socket as they are (the pieces an upload arrived in: never joined),
        which redis-py's commands cannot do (each takes a value as one buffer), so the SETs are written
        here in Redis' protocol: `SET key value EX ttl`, the value's length first, then its bytes.
        """
        keys = [_new_key() for _ in values]
        expiry = b"%d" % ttl
        command: list[Buffer] = []
        for key, parts in zip(keys, values, strict=True):
            name = key.encode()
            size = sum(len(part) for part in parts)
            command.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(name), name, size))
            command.extend(parts)
            command.append(b"\r\n$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(expiry), expiry))
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(command)
            for _ in keys:
                await connection.read_response()  # OK, or raises the server's error
        except BaseException:
            await connection.disconnect()  # replies may be left unread: the connection is not reused
            raise
        finally:
            await pool.release(connection)
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


class UnjoinedWrites:
    """A redis-py connection that hands a command's large parts to the socket from the caller's buffers.

    redis-py sends a command through `StreamWriter.writelines`, which on Python 3.11 joins every part
    into one new bytes object, and the transport then copies whatever the socket does not take at once:
    two copies of a 7.7 MB input put into Redis, ~10 ms of CPU a run in fresh pages on this machine, a
    fifth of what a console spends on a placed run. Here small parts are joined (they are headers), a
    large one is written as it is, a step at a time once the transport has room again, so the kernel
    reads it where it lies and at most a step's overflow is copied. redis-py calls this with a socket
    timeout set (the store sets one).
    """

    async def _send_packed_command(self, command) -> None:
        writer = self._writer
        small: list[bytes] = []
        for part in command:
            if len(part) < LARGE_PART:
                small.append(part)
                continue
            if small:
                writer.write(b"".join(small))
                small.clear()
            view = memoryview(part)
            for start in range(0, len(view), WRITE_STEP):
                writer.write(view[start : start + WRITE_STEP])
                await writer.drain()
        if small:
            writer.write(b"".join(small))
        await writer.drain()


def _unjoined(base: type[Connection]) -> type[Connection]:
    return type(f"Unjoined{base.__name__}", (UnjoinedWrites, base), {})


def address_of(layer) -> str:
    """Return the address of a channels_redis layer's (first) Redis server."""
    host = layer.hosts[0]
    return host["address"] if isinstance(host, dict) else host


def _new_key() -> str:
    return BLOB_PREFIX + uuid.uuid4().hex
