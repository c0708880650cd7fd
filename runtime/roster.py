"""The roster of workers: each Redis worker writes a short-lived entry with every heartbeat.

An entry names the worker (host:pid), its threads, the runs it conducts and can conduct, and when
it last beat; it expires after a few missed beats (`entry_ttl`: 3.5 s for the default 0.75 s beat,
about a run's lease), so a dead or silent worker leaves the roster, and `/api/health`, by itself.
The console reads it for `GET /api/workers` and `GET /api/health`, and a run nobody has taken yet
watches it (`Absence`) to tell a client when no worker is there to take it.
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
ENTRY_TTL = 3.5  # seconds an entry outlives its worker's last beat, at least
TTL_BEATS = 4  # ... and at least this many beats: one slow beat on a loaded machine is not a death


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


def entry_ttl(every: float) -> float:
    """Return how long an entry renewed every `every` seconds lives after its last beat."""
    return max(ENTRY_TTL, TTL_BEATS * every)


async def beat(blobs: BlobStore, worker: dict[str, Any], *, every: float = 0.75) -> None:
    """Write (renew) a worker's entry, which it renews every `every` seconds."""
    ttl = round(entry_ttl(every) * 1000)
    await blobs.client.set(ROSTER_PREFIX + worker["name"], json.dumps(worker), px=ttl)


async def leave(blobs: BlobStore, name: str) -> None:
    await blobs.client.delete(ROSTER_PREFIX + name)


async def listed(blobs: BlobStore) -> list[dict[str, Any]]:
    """Return every worker whose entry has not expired (it beat within `entry_ttl`), by name."""
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
