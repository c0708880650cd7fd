"""The stream bridge's wire: task and result messages, and sending that waits instead of dropping.

Messages are plain dicts of str keys, ints, floats, lists and `bytes`, so the in-memory layer's
deepcopy is cheap and msgpack carries them to Redis unchanged. A tile is identified everywhere by
(execution, segment, index); `attempt` tells a re-dispatched task from the first.

Tile pixels may cross the wire compressed (settings.TILEFLOW["WIRE_CODEC"], Redis layer only): a
tile on the wire is [box, mode, data] raw, or [box, mode, data, codec] encoded, so either side
reads both. Measured on 560² photo tiles, zlib-ng level 1 saves 1-15 % at ~8 ms a tile, which
costs more than it saves on loopback Redis; it pays for flat, synthetic images and slow links.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from runtime import events
from runtime.tiles import Box, Tile

CODECS = ("none", "zlib-ng")
LOCAL = "local"  # not a setting: what the in-process layer uses, the tile object itself
# A worker acknowledges a task (tile.taken) when it starts it after waiting at least this share of
# its lease; the conductor gives a task never acknowledged (1 + TAKEN_AFTER) leases from its send.
TAKEN_AFTER = 0.25
ZLIB_LEVEL = 1  # the fastest level: the point is fewer bytes per Redis hop, not the smallest

log = logging.getLogger("tileflow.bridge")

try:  # The Redis layer's connection errors are not OSErrors.
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
        OSError,
        ConnectionError,
        TimeoutError,
        RedisConnectionError,
        RedisTimeoutError,
    )
except ImportError:  # pragma: no cover - redis is a pinned dependency
    TRANSIENT_ERRORS = (OSError, ConnectionError, TimeoutError)


def box_to_wire(box: Box) -> list[int]:
    return [box.x0, box.y0, box.x1, box.y1]


def box_from_wire(values: list[int]) -> Box:
    return Box(*values)


def is_local(layer) -> bool:
    """Tell whether `layer` carries messages only inside this process, so tiles need not become bytes."""
    return isinstance(layer, InMemoryChannelLayer)


def wire_codec() -> str:
    """Return the configured tile codec of the wire ("none" when unset or outside Django)."""
    try:
        from django.conf import settings

        return settings.TILEFLOW.get("WIRE_CODEC", "none")
    except Exception:  # settings not configured: plain runtime use, raw tiles
        return "none"


def _compress(data: bytes) -> bytes:
    from zlib_ng import zlib_ng

    return zlib_ng.compress(data, ZLIB_LEVEL)


def _decompress(data: bytes) -> bytes:
    from zlib_ng import zlib_ng

    return zlib_ng.decompress(data)


def tile_to_wire(tile: Tile, codec: str | None = None) -> Tile | list[Any]:
    """Return `tile` as wire values, its pixels encoded with `codec` (default: the configured one)."""
    codec = codec or wire_codec()
    if codec == LOCAL:
        return tile  # immutable; the in-memory layer's deepcopy returns it as is: no pixel is copied
    if codec == "none":
        return [box_to_wire(tile.box), tile.mode, tile.data]
    if codec == "zlib-ng":
        return [box_to_wire(tile.box), tile.mode, _compress(tile.data), codec]
    raise ValueError(f"unknown wire codec {codec!r}; known: {', '.join(CODECS)}")


def tile_from_wire(values: Tile | list[Any]) -> Tile:
    """Return the tile of wire values, raw or encoded."""
    if isinstance(values, Tile):
        return values
    box, mode, data, *codec = values
    if codec and codec[0] != "none":
        if codec[0] != "zlib-ng":
            raise ValueError(f"tile encoded with unknown wire codec {codec[0]!r}")
        data = _decompress(data)
    return Tile(box_from_wire(box), mode, bytes(data))


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What a worker needs to rebuild one step of a chain: its node, type, params and input image."""

    node: str
    type: str
    params: dict[str, Any]
    width: int
    height: int
    mode: str

    def to_wire(self) -> list[Any]:
        return [self.node, self.type, self.params, self.width, self.height, self.mode]

    @classmethod
    def from_wire(cls, values: list[Any]) -> ChainLink:
        return cls(*values)


def task_message(
    *,
    execution: str,
    reply: str,
    segment: int,
    index: int,
    attempt: int,
    chain: list[ChainLink],
    boxes: tuple[Box, ...],
    tile: Tile,
    codec: str | None = None,
    lease: float | None = None,
) -> dict[str, Any]:
    """Return a task message; with `lease`, it carries its send time so a worker can tell how long it waited."""
    message = {
        "type": events.TILE_TASK,
        "execution": execution,
        "reply": reply,
        "segment": segment,
        "index": index,
        "attempt": attempt,
        "chain": [link.to_wire() for link in chain],
        "boxes": [box_to_wire(box) for box in boxes],
        "tile": tile_to_wire(tile, codec),
    }
    if lease is not None:
        message.update(sent=time.time(), lease=lease)
    return message


def taken_message(task: dict[str, Any], worker: str) -> dict[str, Any] | None:
    """Return the tile.taken acknowledgement a task starting now needs, or None when it waited too little."""
    lease, sent = task.get("lease"), task.get("sent")
    if lease is None or sent is None or time.time() - sent < TAKEN_AFTER * lease:
        return None
    return {
        "type": events.TILE_TAKEN,
        "execution": task["execution"],
        "segment": task["segment"],
        "index": task["index"],
        "attempt": task["attempt"],
        "worker": worker,
    }


async def send_waiting(layer, channel: str, message: dict[str, Any], *, patience: float = 30.0) -> None:
    """Send `message`, waiting while the channel is full or the layer is briefly unreachable.

    A full channel is backpressure: we wait as long as it takes. A broken connection (Redis
    restarting) is retried for `patience` seconds, then the error goes to the caller.
    """
    delay = 0.002
    unreachable_for = 0.0
    while True:
        try:
            await layer.send(channel, message)
            return
        except ChannelFull:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        except TRANSIENT_ERRORS as error:
            if unreachable_for >= patience:
                raise
            log.warning("channel layer unreachable (%s); retrying", error)
            await asyncio.sleep(0.5)
            unreachable_for += 0.5
