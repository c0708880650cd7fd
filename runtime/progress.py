"""Progress of a run: exact counts kept by the conductor, published coalesced.

Websocket clients get at most ~12 progress messages a second per node (`interval`, 80 ms: a tile
waits at most that long to be reported, while a fast node still costs few messages), and always
the final count of every node before the closing status message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from runtime import events
from runtime.bridge import TRANSIENT_ERRORS

log = logging.getLogger("tileflow.progress")


class RunObserver(Protocol):
    def progress(self, node: str, done: int, total: int) -> None: ...

    async def status(self, status: str, error: str | None) -> None: ...


class GroupPublisher:
    """Publish one execution's progress to its group, coalesced per node."""

    def __init__(self, layer, execution_id: str, *, interval: float = 0.08, announce_end: bool = True) -> None:
        self._layer = layer
        # False where another process records the end and announces it (a run placed on a worker).
        self._announce_end = announce_end
        self._group = events.execution_group(execution_id)
        self._interval = interval
        self._latest: dict[str, tuple[int, int]] = {}
        self._sent: dict[str, tuple[int, int]] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    def progress(self, node: str, done: int, total: int) -> None:
        self._latest[node] = (done, total)
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump())

    async def _flush(self) -> None:
        for node, (done, total) in list(self._latest.items()):
            if self._sent.get(node) == (done, total):
                continue
            self._sent[node] = (done, total)
            await self._send({"type": events.EXECUTION_PROGRESS, "node": node, "done": done, "total": total})

    async def _send(self, message: dict) -> None:
        try:
            await self._layer.group_send(self._group, message)
        except TRANSIENT_ERRORS as error:
            log.warning("progress not published: %s", error)

    async def _pump(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._flush()
            await asyncio.sleep(self._interval)

    async def status(self, status: str, error: str | None) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._flush()
        if self._announce_end:
            await self._send({"type": events.EXECUTION_STATUS, "status": status, "error": error})
