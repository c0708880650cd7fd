"""The roster of workers: each Redis worker writes a short-lived entry with every heartbeat.

An entry names the worker (host:pid), its threads, the runs it conducts and can conduct, and when
it last beat; it expires after `ENTRY_TTL` seconds without a beat, so a dead worker leaves the
roster by itself. The console reads it for `GET /api/workers` and `GET /api/health`, and a run
nobody has taken yet watches it (`Absence`) to tell a client when no worker is there to take it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

from runtime.blobs import BlobStore

ROSTER_PREFIX = "tileflow:worker:"
ENTRY_TTL = 10  # seconds


def entry(*, threads: int, runs: int, capacity: int, embedded: bool = False, draining: bool = False) -> dict[str, Any]:
    """Return this process's roster entry as of now."""
    return {
        "name": f"{socket.gethostname()}:{os.getpid()}",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": threads,
        "runs": runs,
        "capacity": capacity,
        "embedded": embedded,
        "draining": draining,  # stopping: finishes its runs, takes no new ones
        "last_heartbeat": datetime.now(UTC).isoformat(),
    }


async def beat(blobs: BlobStore, worker: dict[str, Any]) -> None:
    """Write (renew) a worker's entry."""
    await blobs.client.set(ROSTER_PREFIX + worker["name"], json.dumps(worker), ex=ENTRY_TTL)


async def leave(blobs: BlobStore, name: str) -> None:
    await blobs.client.delete(ROSTER_PREFIX + name)


async def listed(blobs: BlobStore) -> list[dict[str, Any]]:
    """Return every worker that beat within ENTRY_TTL seconds, by name."""
    keys = [key async for key in blobs.client.scan_iter(match=ROSTER_PREFIX + "*", count=500)]
    values = await blobs.client.mget(keys) if keys else []
    return sorted((json.loads(value) for value in values if value), key=lambda worker: worker["name"])


class Absence:
    """How long no worker at all has been in the roster, as seen by one waiting run.

    A run waits in the lane while any worker is listed, busy or draining. It gives up only once the
    roster has been empty for `patience` seconds in a row, counted from the last time a worker was
    seen (or from the start of the wait): a restart whose new worker comes up after the old one left
    is a gap, not a reason to fail the runs that wait for it. The roster is read at most every
    `every` seconds; read errors count as neither present nor absent.
    """

    def __init__(self, blobs: BlobStore, patience: float, *, every: float = 2.0, now: float | None = None) -> None:
        self.blobs = blobs
        self.patience = patience
        self.every = min(every, patience / 4)
        self.seen = self.read = time.monotonic() if now is None else now

    async def lasted(self, now: float | None = None) -> float | None:
        """Return the seconds the roster has been empty once that reaches `patience`, else None."""
        now = time.monotonic() if now is None else now
        if now - self.read < self.every:
            return None
        self.read = now
        if await listed(self.blobs):
            self.seen = now
            return None
        return now - self.seen if now - self.seen >= self.patience else None
