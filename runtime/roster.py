"""The roster of workers: each Redis worker writes a short-lived entry with every heartbeat.

An entry names the worker (host:pid), its threads, the runs it conducts and can conduct, and when
it last beat; it expires after `ENTRY_TTL` seconds without a beat, so a dead worker leaves the
roster by itself. The console reads it for `GET /api/workers` and `GET /api/health`.
"""

from __future__ import annotations

import json
import os
import socket
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
