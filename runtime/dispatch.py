"""Dispatching and leasing tasks: which tasks are ready, sending them, and sending them again.

A task is ready when every tile of the region it reads has arrived in its input store; ready tasks
go out in plan order (the output's first rows first), at most `max_in_flight` at once. Each sent
task holds a lease; a task not answered within it is sent again (work is idempotent, results are
keyed by (segment, index), duplicates are dropped), up to `max_attempts` times. The lease counts
from the task's start on a worker, not from its send: time queued in a busy lane is not held
against it (see `Dispatcher._deadline`).
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass
from typing import Any

from runtime import events
from runtime.bridge import TAKEN_AFTER, ChainLink, send_waiting, task_message
from runtime.control import RunFailed
from runtime.plan import Plan, Task
from runtime.recording import RunRecord
from runtime.spec import RunLimits
from runtime.store import TileStore

log = logging.getLogger("tileflow.dispatch")

Key = tuple[int, int]  # (segment, tile index)


@dataclass(slots=True)
class Lease:
    attempt: int
    deadline: float  # monotonic; binding once a worker acknowledged the start (`started`)
    message: dict[str, Any]
    lane: str = "default"
    sent: float = 0.0  # monotonic time this attempt was sent
    started: bool = False


def chain_links(plan: Plan, chain: tuple[str, ...] | list[str]) -> list[ChainLink]:
    """Return what a worker needs to rebuild each step of `chain`."""
    links = []
    for node in chain:
        node_plan = plan.nodes[node]
        links.append(
            ChainLink(
                node,
                node_plan.type,
                node_plan.params.model_dump(mode="json"),
                node_plan.input.size.width,
                node_plan.input.size.height,
                node_plan.input.mode,
            )
        )
    return links


class Dispatcher:
    """Hold one run's tasks from ready to answered: readiness, sending, leases, duplicates."""

    def __init__(
        self,
        execution: str,
        plan: Plan,
        stores: dict[str, TileStore],
        limits: RunLimits,
        layer,
        record: RunRecord,
        *,
        codec: str | None = None,
    ) -> None:
        self._execution = execution
        self._plan = plan
        self._stores = stores
        self._limits = limits
        self._layer = layer
        self._record = record
        self._codec = codec
        self._chains = {segment.id: chain_links(plan, segment.chain) for segment in plan.segments}
        self._tasks: dict[Key, Task] = {}
        self._order: dict[Key, int] = {}
        self._missing: dict[Key, int] = {}
        self._waiting: dict[tuple[str, int], list[Key]] = {}
        self._ready: list[tuple[int, Key]] = []
        self._in_flight: dict[Key, Lease] = {}
        self._done: set[Key] = set()
        # Per lane: the latest send time of this run's tasks known to have left the lane (started or
        # answered), and when one last did. Lanes are FIFO, so every task sent earlier has left too.
        self._lanes: dict[str, tuple[float, float]] = {}
        for order, task in enumerate(plan.tasks):
            key = (task.segment, task.index)
            store = stores[plan.segments[task.segment].input_store]
            indexes = store.indexes(task.region)
            store.retain(indexes)
            self._tasks[key] = task
            self._order[key] = order
            self._missing[key] = len(indexes)
            for index in indexes:
                self._waiting.setdefault((store.node, index), []).append(key)

    @property
    def ready(self) -> int:
        return len(self._ready)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def arrived(self, store: TileStore, indexes: list[int]) -> None:
        """Tiles `indexes` of `store` are in: make the tasks that waited only for them ready."""
        for index in indexes:
            for key in self._waiting.pop((store.node, index), ()):
                self._missing[key] -= 1
                if self._missing[key] == 0:
                    heapq.heappush(self._ready, (self._order[key], key))

    async def dispatch(self, reply: str) -> None:
        """Send ready tasks, first in plan order, while fewer than `max_in_flight` are out."""
        limits = self._limits
        while self._ready and len(self._in_flight) < limits.max_in_flight:
            _, key = heapq.heappop(self._ready)
            task = self._tasks[key]
            segment = self._plan.segments[task.segment]
            store = self._stores[segment.input_store]
            message = task_message(
                execution=self._execution,
                reply=reply,
                segment=task.segment,
                index=task.index,
                attempt=1,
                chain=self._chains[task.segment],
                boxes=task.boxes,
                tile=store.region(task.region),
                codec=self._codec,
                lease=limits.lease_seconds,
            )
            sent = time.monotonic()
            self._in_flight[key] = Lease(1, sent + self._unacknowledged, message, segment.lane, sent)
            self._record.starting(segment.chain)
            await send_waiting(self._layer, events.lane_channel(segment.lane), message)

    def done(self, message: dict[str, Any]) -> Task | None:
        """Take a tile.done; return its task the first time, None for a duplicate (counted)."""
        key = (message["segment"], message["index"])
        if key in self._done or key not in self._in_flight:
            self._record.duplicates += 1
            return None
        self._left_lane(self._in_flight.pop(key), message["attempt"])
        self._done.add(key)
        task = self._tasks[key]
        input_store = self._stores[self._plan.segments[task.segment].input_store]
        input_store.release(input_store.indexes(task.region))
        return task

    def taken(self, message: dict[str, Any]) -> None:
        """A worker starts a task that waited in the lane: its lease starts now."""
        lease = self._in_flight.get((message["segment"], message["index"]))
        if lease is None:
            return  # answered already (the acknowledgement travelled alongside the work)
        self._record.acknowledged += 1
        lease.started = True
        lease.deadline = time.monotonic() + self._limits.lease_seconds
        self._left_lane(lease, message["attempt"])

    async def renew(self) -> None:
        """Send again every task whose lease ended; fail the run when one used all its attempts."""
        now = time.monotonic()
        await self._resend([key for key, lease in self._in_flight.items() if self._deadline(lease) <= now])

    async def resend_all(self) -> None:
        """Send every task in flight again, now: the layer came back and may have lost them."""
        await self._resend(list(self._in_flight), counted=False)

    async def _resend(self, keys: list[Key], *, counted: bool = True) -> None:
        limits = self._limits
        now = time.monotonic()
        for key in keys:
            lease = self._in_flight.get(key)
            if lease is None:
                continue
            task = self._tasks[key]
            node = self._plan.segments[task.segment].chain[-1]
            if counted and lease.attempt >= limits.max_attempts:
                raise RunFailed(
                    f"tile {task.index} of node '{node}' was not answered after {lease.attempt} attempts "
                    f"of {limits.lease_seconds:g} s each (no worker, or workers keep dying)",
                    node,
                )
            lease.attempt += 1
            lease.sent, lease.started = now, False
            lease.deadline = now + self._unacknowledged
            lease.message = {**lease.message, "attempt": lease.attempt, "sent": time.time()}
            self._record.retries += 1
            log.warning(
                "execution %s: re-sending tile %s of node '%s' (attempt %d)",
                self._execution,
                task.index,
                node,
                lease.attempt,
            )
            await send_waiting(self._layer, events.lane_channel(lease.lane), lease.message)

    @property
    def _unacknowledged(self) -> float:
        """Return how long after its send a task never acknowledged may take: a lease after its latest start."""
        # A worker acknowledges every task it starts after waiting TAKEN_AFTER leases or more.
        return (1 + TAKEN_AFTER) * self._limits.lease_seconds

    def _left_lane(self, lease: Lease, attempt: int) -> None:
        if attempt != lease.attempt:
            return  # an earlier copy, sent at a time no longer kept: it says nothing of the lane's order
        head, _ = self._lanes.get(lease.lane, (float("-inf"), 0.0))
        self._lanes[lease.lane] = (max(head, lease.sent), time.monotonic())

    def _deadline(self, lease: Lease) -> float:
        """Return when a task is overdue: a lease after its start, however long it queued.

        Acknowledged: a lease from the acknowledgement. Otherwise it either started within
        TAKEN_AFTER leases of its send (so `sent + _unacknowledged` is a lease after its start), or it
        still waits. While no later task of this run has left the lane and earlier ones keep leaving
        (started or answered within the last lease), it may be waiting behind them: the lane is busy,
        not lost, and the deadline moves on with them. A killed worker's task is caught either way:
        later tasks start elsewhere, or the earlier ones stop moving.
        """
        if lease.started:
            return lease.deadline
        head, moved = self._lanes.get(lease.lane, (float("-inf"), 0.0))
        if head < lease.sent:
            return max(lease.deadline, moved + self._limits.lease_seconds)
        return lease.deadline
