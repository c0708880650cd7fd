"""The conductor: one per execution, in the process where the run started. It owns the run.

It decodes the source band by band into a tile store, sends each task to its lane as soon as the
region it reads is present (first output rows first, at most `max_in_flight` at once), takes the
results back on its own channel, feeds them to the stores downstream and to the output encoders,
and drops every tile no pending consumer still needs. A task not answered within its lease is
sent again (work is idempotent, results are keyed by (segment, index), duplicates are dropped),
up to `max_attempts` times. The lease counts from the task's start on a worker, not from its send:
time queued in a busy lane is not held against it (see `_deadline`).

All of the run's state is touched only from the conductor's own event-loop task; decoding and
encoding run in threads of their own and report back through `self._inbox`.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from runtime import events
from runtime.bridge import (
    LOCAL,
    TAKEN_AFTER,
    TRANSIENT_ERRORS,
    ChainLink,
    is_local,
    send_waiting,
    task_message,
    tile_from_wire,
)
from runtime.decode import ImageRejected, SourceHeader, decode_rows, probe
from runtime.encoders import make_encoder
from runtime.outputs import OutputWriter
from runtime.plan import Plan, Task, compile_plan
from runtime.progress import RunObserver
from runtime.registry import ImageInfo
from runtime.steps.source import shrink_on_load, shrunk_size
from runtime.store import TileStore
from runtime.tiles import Box, Tile

log = logging.getLogger("tileflow.conductor")

TIMELINE_LIMIT = 5000  # entries kept per node; counts and busy times stay exact beyond it
STARTED_SAVE_DELAY = 0.2  # seconds: "running" is saved with the first band, or after this at the latest


class RunFailed(Exception):
    """The run cannot succeed; the message is what the user reads, `node` the node it happened at."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class RunCancelled(Exception):
    """Someone asked the run to stop.

    An event, not only Task.cancel(): Python 3.11's wait_for can swallow a cancellation that
    arrives as the awaited result does, and the conductor waits on a busy inbox all the time.
    """


@dataclass(frozen=True, slots=True)
class RunLimits:
    tile_size: int = 512
    max_in_flight: int = 8
    lease_seconds: float = 30.0
    max_attempts: int = 3
    max_pixels: int = 150_000_000
    heartbeat_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    execution: str
    graph: dict[str, Any]
    input_path: Path
    output_dir: Path
    limits: RunLimits = RunLimits()
    header: SourceHeader | None = None  # the input's header when the caller has probed it already
    # The input's bytes when the caller holds them: the run decodes them while the file is being stored.
    input_data: bytes | None = None


class RunRecorder(Protocol):
    async def save(self, snapshot: dict[str, Any], *, final: bool) -> None: ...


@dataclass(slots=True)
class NodeState:
    total: int = 0
    done: int = 0
    busy: float = 0.0
    started: float | None = None
    finished: float | None = None
    failed: bool = False
    timeline: list[list[int]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.total and self.done >= self.total:
            return "done"
        return "running" if self.started is not None else "pending"


@dataclass(slots=True)
class Lease:
    attempt: int
    deadline: float  # monotonic; binding once a worker acknowledged the start (`started`)
    message: dict[str, Any]
    lane: str = "default"
    sent: float = 0.0  # monotonic time this attempt was sent
    started: bool = False


@dataclass(slots=True)
class OutputFeed:
    node: str
    store: TileStore
    writer: OutputWriter
    next_row: int = 0
    task: asyncio.Task | None = None
    complete: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class Conductor:
    def __init__(
        self, spec: RunSpec, layer, *, recorder: RunRecorder | None = None, observers: tuple[RunObserver, ...] = ()
    ) -> None:
        self.spec = spec
        self.layer = layer
        self._codec = LOCAL if is_local(layer) else None  # in-process workers take tiles as objects
        self.recorder = recorder
        self.observers = observers
        self.status = "queued"
        self.error: str | None = None
        self.started_at: datetime | None = None
        self.first_output_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.retries = 0
        self.duplicates = 0
        self.workers: dict[str, int] = {}  # tiles done per worker (host:pid), duplicates not counted
        self.input: dict[str, Any] = {}
        self.plan: Plan | None = None
        self.nodes: dict[str, NodeState] = {}
        self.outputs: dict[str, OutputWriter] = {}
        self.prepared = asyncio.Event()  # set once outputs exist, or the run ended before that
        self.finished = asyncio.Event()
        self.first_output = asyncio.Event()  # set with the first output band, or when the run ends
        self._started_saved = False
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._stores: dict[str, TileStore] = {}
        self._feeds: list[OutputFeed] = []
        self._tasks: dict[tuple[int, int], Task] = {}
        self._order: dict[tuple[int, int], int] = {}
        self._missing: dict[tuple[int, int], int] = {}
        self._waiting: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._ready: list[tuple[int, tuple[int, int]]] = []
        self._in_flight: dict[tuple[int, int], Lease] = {}
        # Per lane: the latest send time of this run's tasks known to have left the lane (started or
        # answered), and when one last did. Lanes are FIFO, so every task sent earlier has left too.
        self._lanes: dict[str, tuple[float, float]] = {}
        self.acknowledged = 0  # tile.taken messages received: the cost of leases counted from the start
        self._done: set[tuple[int, int]] = set()
        self._chains: dict[int, list[ChainLink]] = {}
        self._decode_thread = ThreadPoolExecutor(1, thread_name_prefix="tileflow-decode")
        self._bands: Iterator | None = None
        self._pulls = 0  # bands asked of the decode thread and not delivered yet
        self._decoded_image: Image.Image | None = None  # the image the last band came from (decode thread)
        self._decoded = False
        self._t0 = time.time()
        self._channel = ""
        self._background: set[asyncio.Task] = set()
        self._cancel_requested = False
        self._failed_node: str | None = None

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run to the end; return the final status. Never raises for a failed or cancelled run."""
        self._t0 = time.time()
        self.started_at = _now()
        self.status = "running"
        receiver = heartbeat = None
        try:
            self._channel = await self.layer.new_channel("tileflow.conductor.")
            await self.layer.group_add(events.run_control_group(self.spec.execution), self._channel)
            receiver = asyncio.create_task(self._receive())
            self._spawn(self._save_started())
            heartbeat = asyncio.create_task(self._heartbeat())
            await self._prepare()
            await self._drive()
            self.status = "succeeded"
        except (asyncio.CancelledError, RunCancelled):
            self.status = "cancelled"
        except RunFailed as failure:
            self.status, self.error = "failed", str(failure)
            self._failed_node = failure.node
        except Exception as error:  # a bug of ours: the run fails with the reason, the server lives on
            log.exception("execution %s failed unexpectedly", self.spec.execution)
            self.status, self.error = "failed", f"internal error: {type(error).__name__}: {error}"
        finally:
            await self._close(receiver, heartbeat)
        return self.status

    async def _close(self, receiver: asyncio.Task | None, heartbeat: asyncio.Task | None) -> None:
        self.finished_at = _now()
        for task in (receiver, heartbeat, *[feed.task for feed in self._feeds], *self._background):
            if task is not None and not task.done():
                task.cancel()
        if self.status != "succeeded":
            for writer in self.outputs.values():
                writer.abort(remove=True)
            if self._failed_node is not None:
                self.nodes.setdefault(self._failed_node, NodeState()).failed = True
        self._decode_thread.submit(self._close_bands)
        self._decode_thread.shutdown(wait=False)
        self.prepared.set()
        self.first_output.set()
        try:
            if self._channel:
                await self.layer.group_discard(events.run_control_group(self.spec.execution), self._channel)
        except TRANSIENT_ERRORS:
            pass
        await self._save(final=True)
        for observer in self.observers:
            for name, state in self.nodes.items():
                observer.progress(name, state.done, state.total)
            await observer.status(self.status, self.error)
        self.finished.set()

    def cancel(self) -> None:
        """Ask the run to stop: it ends as "cancelled" at its next step, within milliseconds."""
        self._cancel_requested = True
        self._inbox.put_nowait(("cancel", None))

    def _close_bands(self) -> None:
        close = getattr(self._bands, "close", None)
        if close is not None:
            close()
        self._decoded_image = None  # in the decode thread: unmapping a 24 MP target takes ~8 ms

    async def _prepare(self) -> None:
        limits = self.spec.limits
        loop = asyncio.get_running_loop()
        try:
            source = io.BytesIO(self.spec.input_data) if self.spec.input_data else self.spec.input_path
            header = self.spec.header or await loop.run_in_executor(
                self._decode_thread, probe, source, limits.max_pixels
            )
        except ImageRejected as rejected:
            raise RunFailed(str(rejected), self._source_id()) from rejected
        self.input = {
            "width": header.size.width,
            "height": header.size.height,
            "format": header.format,
            "mode": header.mode,
        }
        try:
            # Shrink-on-load (asked for per flow) needs the streaming JPEG decoder.
            shrink, graph = shrink_on_load(self.spec.graph, header.size) if header.streamable else (1, self.spec.graph)
            source_info = ImageInfo(shrunk_size(header.size, shrink), header.mode)
            plan = compile_plan(graph, source_info, tile_size=limits.tile_size)
        except ValueError as error:
            raise RunFailed(str(error)) from error
        self.plan = plan
        self.nodes = {node: NodeState(total=plan.totals.get(node, 0)) for node in plan.order}
        self._stores = {node: TileStore(node, plan.nodes[node].output, limits.tile_size) for node in plan.stores}
        for segment in plan.segments:
            self._chains[segment.id] = [self._link(node) for node in segment.chain]
        for order, task in enumerate(plan.tasks):
            key = (task.segment, task.index)
            store = self._stores[plan.segments[task.segment].input_store]
            indexes = store.indexes(task.region)
            store.retain(indexes)
            self._tasks[key] = task
            self._order[key] = order
            self._missing[key] = len(indexes)
            for index in indexes:
                self._waiting.setdefault((store.node, index), []).append(key)
        for node in plan.outputs:
            self._open_output(node)
        bands = self._stores[plan.source].bounds  # a band per source tile row: short ones first
        self._bands = await loop.run_in_executor(
            self._decode_thread,
            lambda: iter(decode_rows(self.spec.input_data or self.spec.input_path, header, bands, shrink)),
        )
        self.prepared.set()

    def _source_id(self) -> str | None:
        return next((node["id"] for node in self.spec.graph.get("nodes", []) if node.get("type") == "source"), None)

    def _link(self, node: str) -> ChainLink:
        node_plan = self.plan.nodes[node]
        return ChainLink(
            node,
            node_plan.type,
            node_plan.params.model_dump(mode="json"),
            node_plan.input.size.width,
            node_plan.input.size.height,
            node_plan.input.mode,
        )

    def _open_output(self, node: str) -> None:
        node_plan = self.plan.nodes[node]
        store = self._stores[node_plan.inputs[0]]
        params = node_plan.params
        encoder = make_encoder(params.format, store.info.size, store.info.mode, quality=params.quality)
        writer = OutputWriter(node, self.spec.output_dir / f"{node}.{encoder.extension}", encoder)
        store.retain(range(store.count))
        self.outputs[node] = writer
        self._feeds.append(OutputFeed(node, store, writer))

    async def _drive(self) -> None:
        limits = self.spec.limits
        tick = max(0.05, min(1.0, limits.lease_seconds / 4))
        last_lease_check = time.monotonic()
        while not all(feed.complete for feed in self._feeds):
            if self._cancel_requested:
                raise RunCancelled()
            self._pull_band()
            await self._dispatch()
            event = await self._next_event(tick)
            if event is not None:
                await self._handle(event)
            if time.monotonic() - last_lease_check >= tick:
                last_lease_check = time.monotonic()
                await self._renew_leases()

    # -- events ---------------------------------------------------------------------------------

    async def _next_event(self, timeout: float) -> tuple[str, Any] | None:
        """Return the next inbox event, or None after `timeout` seconds.

        Not `asyncio.wait_for`: in Python 3.11 it drops a cancellation of this task that arrives
        together with the event, and the run then went on alone (a server shutting down cancels the
        run's task, and its workers with it). `asyncio.timeout` keeps the two apart.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._inbox.get()
        except TimeoutError:
            return None

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self._channel)
            except TRANSIENT_ERRORS as error:
                log.warning("conductor %s: channel layer unreachable (%s)", self.spec.execution, error)
                await asyncio.sleep(0.5)
                continue
            if message.get("type") == events.RUN_CANCEL:
                self.cancel()
                return
            if message.get("execution") == self.spec.execution:
                self._inbox.put_nowait(("result", message))

    async def _handle(self, event: tuple[str, Any]) -> None:
        kind, payload = event
        if kind == "result":
            if payload["type"] == events.TILE_FAILED:
                raise RunFailed(f"node '{payload['node']}' failed: {payload['error']}", payload["node"])
            if payload["type"] == events.TILE_TAKEN:
                self._task_taken(payload)
            else:
                self._task_done(payload)
        elif kind == "band":
            self._pulls -= 1
            self._source_band(payload)
        elif kind == "decoded":
            self._pulls -= 1
            self._decoded = True
            self._check_source_complete()
        elif kind == "cancel":
            raise RunCancelled()
        elif kind == "failed":
            raise payload
        elif kind == "output":
            pass  # an output feed moved on; the loop condition looks at it

    def _pull_band(self) -> None:
        """Decode ahead only while too few tasks are ready: a slow pipeline slows the decoder."""
        # Two asked at once: the decode thread goes on to the next band without waiting for this loop.
        while self._pulls < 2 and self._may_pull():
            self._pull_one()

    def _may_pull(self) -> bool:
        if self._decoded or self._bands is None:
            return False
        if len(self._ready) >= self.spec.limits.max_in_flight:
            return False
        source = self._stores[self.plan.source]
        busy = self._in_flight or any(feed.task is not None and not feed.task.done() for feed in self._feeds)
        # Enough decoded and waiting: decoding more would only hold memory.
        return not (busy and len(source) > (self.spec.limits.max_in_flight + 2) * source.columns)

    def _pull_one(self) -> None:
        source = self._stores[self.plan.source]
        self._pulls += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._decode_thread, self._decode_next, source)

        def deliver(done: asyncio.Future) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if isinstance(error, ImageRejected):
                self._inbox.put_nowait(("failed", RunFailed(str(error), self.plan.source)))
            elif error is not None:
                self._inbox.put_nowait(
                    ("failed", RunFailed(f"the image could not be decoded: {error}", self.plan.source))
                )
            elif done.result() is None:
                self._inbox.put_nowait(("decoded", None))
            else:
                self._inbox.put_nowait(("band", done.result()))

        future.add_done_callback(deliver)

    def _decode_next(self, store: TileStore) -> list[tuple[int, Tile]] | None:
        """Decode the next band into tiles (parts of the decoded image, cut by their readers), in the decode thread."""
        item = next(self._bands, None)
        if item is None:
            return None
        # Held until the run ends, so the decoder's full-size image is freed here, not by the event loop
        # dropping the last source tile cut from it.
        self._decoded_image = item[2]
        return store.cut_rows(*item)

    def _source_band(self, pieces: list[tuple[int, Tile]]) -> None:
        source = self.plan.source
        store = self._stores[source]
        added = [index for index, tile in pieces if store.put(index, tile)]
        state = self.nodes[source]
        if state.started is None:
            state.started = time.time()
        state.done += len(added)
        self._progress(source)
        self._arrived(store, added)

    def _check_source_complete(self) -> None:
        store = self._stores[self.plan.source]
        if self.nodes[self.plan.source].done < store.count:
            raise RunFailed(
                f"the image ended early: {self.nodes[self.plan.source].done} of {store.count} "
                "tiles decoded (is the file truncated?)",
                self.plan.source,
            )
        self.nodes[self.plan.source].finished = time.time()

    def _arrived(self, store: TileStore, indexes: list[int]) -> None:
        for index in indexes:
            for key in self._waiting.pop((store.node, index), ()):
                self._missing[key] -= 1
                if self._missing[key] == 0:
                    heapq.heappush(self._ready, (self._order[key], key))
        for feed in self._feeds:
            if feed.store is store and (feed.task is None or feed.task.done()):
                feed.task = asyncio.create_task(self._feed(feed))

    async def _dispatch(self) -> None:
        limits = self.spec.limits
        while self._ready and len(self._in_flight) < limits.max_in_flight:
            _, key = heapq.heappop(self._ready)
            task = self._tasks[key]
            segment = self.plan.segments[task.segment]
            store = self._stores[segment.input_store]
            message = task_message(
                execution=self.spec.execution,
                reply=self._channel,
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
            now = time.time()
            for node in segment.chain:
                if self.nodes[node].started is None:
                    self.nodes[node].started = now
            await send_waiting(self.layer, events.lane_channel(segment.lane), message)

    def _task_done(self, message: dict[str, Any]) -> None:
        key = (message["segment"], message["index"])
        if key in self._done or key not in self._in_flight:
            self.duplicates += 1
            return
        self._left_lane(self._in_flight.pop(key), message["attempt"])
        self._done.add(key)
        worker = str(message.get("worker", "?"))
        self.workers[worker] = self.workers.get(worker, 0) + 1
        task = self._tasks[key]
        segment = self.plan.segments[task.segment]
        input_store = self._stores[segment.input_store]
        input_store.release(input_store.indexes(task.region))
        last = segment.chain[-1]
        tile = self._assemble(last, task.out_box, [tile_from_wire(values) for values in message["tiles"]])
        offset = message["started"]
        for node in segment.chain:
            busy = float(message["busy"].get(node, 0.0))
            state = self.nodes[node]
            state.done += 1
            state.busy += busy
            if len(state.timeline) < TIMELINE_LIMIT:
                start_ms = int((offset - self._t0) * 1000)
                state.timeline.append([start_ms, start_ms + max(1, int(busy * 1000))])
            offset += busy
            if state.done >= state.total:
                state.finished = time.time()
            self._progress(node)
        store = self._stores[last]
        if store.put(task.index, tile):
            self._arrived(store, [task.index])

    def _assemble(self, node: str, out_box: Box, tiles: list[Tile]) -> Tile:
        """Return the tile a chain produced for `out_box` from what its last step wrote."""
        mode = self.plan.nodes[node].output.mode
        for tile in tiles:
            if tile.mode != mode:
                raise RunFailed(f"node '{node}' wrote a tile in mode {tile.mode}, but its output is {mode}", node)
        if len(tiles) == 1 and tiles[0].box == out_box:
            return tiles[0]
        canvas = Image.new(mode, (out_box.width, out_box.height))
        for tile in tiles:
            part = tile.box.intersect(out_box)
            if not part.empty:
                canvas.paste(
                    tile.view().crop(part.relative_to(tile.box).as_tuple()),
                    (part.x0 - out_box.x0, part.y0 - out_box.y0),
                )
        return Tile.from_image(out_box, canvas)

    @property
    def _unacknowledged(self) -> float:
        """Return how long after its send a task never acknowledged may take: a lease after its latest start."""
        # A worker acknowledges every task it starts after waiting TAKEN_AFTER leases or more.
        return (1 + TAKEN_AFTER) * self.spec.limits.lease_seconds

    def _task_taken(self, message: dict[str, Any]) -> None:
        """A worker starts a task that waited in the lane: its lease starts now."""
        lease = self._in_flight.get((message["segment"], message["index"]))
        if lease is None:
            return  # answered already (the acknowledgement travelled alongside the work)
        self.acknowledged += 1
        lease.started = True
        lease.deadline = time.monotonic() + self.spec.limits.lease_seconds
        self._left_lane(lease, message["attempt"])

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
            return max(lease.deadline, moved + self.spec.limits.lease_seconds)
        return lease.deadline

    async def _renew_leases(self) -> None:
        limits = self.spec.limits
        now = time.monotonic()
        for key, lease in list(self._in_flight.items()):
            if self._deadline(lease) > now:
                continue
            task = self._tasks[key]
            node = self.plan.segments[task.segment].chain[-1]
            if lease.attempt >= limits.max_attempts:
                raise RunFailed(
                    f"tile {task.index} of node '{node}' was not answered after {lease.attempt} attempts "
                    f"of {limits.lease_seconds:g} s each (no worker, or workers keep dying)",
                    node,
                )
            lease.attempt += 1
            lease.sent, lease.started = now, False
            lease.deadline = now + self._unacknowledged
            lease.message = {**lease.message, "attempt": lease.attempt, "sent": time.time()}
            self.retries += 1
            log.warning(
                "execution %s: re-sending tile %s of node '%s' (attempt %d)",
                self.spec.execution,
                task.index,
                node,
                lease.attempt,
            )
            await send_waiting(self.layer, events.lane_channel(self.plan.segments[task.segment].lane), lease.message)

    # -- outputs --------------------------------------------------------------------------------

    async def _feed(self, feed: OutputFeed) -> None:
        """Encode the complete bands of one output in order; finish the file after the last."""
        store, state = feed.store, self.nodes[feed.node]
        try:
            while feed.next_row < store.rows and store.row_complete(feed.next_row):
                row = feed.next_row
                band = store.band_maker(row)  # joined in the writer's thread, off the event loop
                store.release(store.row_indexes(row))
                if state.started is None:
                    state.started = time.time()
                started = time.time()
                await feed.writer.write_band(band)
                feed.next_row += 1
                state.done += store.columns
                state.busy += time.time() - started
                if len(state.timeline) < TIMELINE_LIMIT:
                    start_ms = int((started - self._t0) * 1000)
                    state.timeline.append([start_ms, int((time.time() - self._t0) * 1000)])
                self._progress(feed.node)
                if self.first_output_at is None:
                    self.first_output_at = _now()
                    self.first_output.set()
                    if self._started_saved:  # else the pending first save records it
                        self._spawn(self._save(final=False))
            if feed.next_row >= store.rows and not feed.complete:
                await feed.writer.finish()
                state.finished = time.time()
                feed.complete = True
                self._inbox.put_nowait(("output", feed.node))
        except OSError as error:
            self._inbox.put_nowait(
                ("failed", RunFailed(f"output '{feed.node}' could not be written: {error}", feed.node))
            )
        except Exception as error:
            log.exception("output %s of %s failed", feed.node, self.spec.execution)
            self._inbox.put_nowait(
                ("failed", RunFailed(f"output '{feed.node}' could not be encoded: {error}", feed.node))
            )

    # -- progress and persistence ---------------------------------------------------------------

    def _progress(self, node: str) -> None:
        state = self.nodes[node]
        for observer in self.observers:
            observer.progress(node, state.done, state.total)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.spec.limits.heartbeat_seconds)
            await self._join_control()
            await self._save(final=False)

    async def _join_control(self) -> None:
        """Join (again) the run's control group, so a cancel sent from any server reaches this conductor."""
        # Redis forgets groups when it restarts without persistence (and after group_expiry): joining
        # with every heartbeat costs one ZADD + EXPIRE and restores the membership within a beat.
        try:
            await self.layer.group_add(events.run_control_group(self.spec.execution), self._channel)
        except TRANSIENT_ERRORS as error:
            log.debug("execution %s: control group not joined (%s)", self.spec.execution, error)

    async def _save_started(self) -> None:
        """Save "running" once the first band is out, or after STARTED_SAVE_DELAY if it takes longer.

        The save is a database write in a thread, mostly Python: made at once it competed with the
        first band for the GIL and the cores (first byte of /run, A/B with the input's deferred
        store: 62 -> 51 ms).
        """
        try:
            async with asyncio.timeout(STARTED_SAVE_DELAY):
                await self.first_output.wait()
        except TimeoutError:
            pass
        self._started_saved = True
        await self._save(final=False)

    async def _save(self, *, final: bool) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.save(self.snapshot(), final=final)
        except Exception:
            log.exception("execution %s: progress not saved", self.spec.execution)

    def snapshot(self) -> dict[str, Any]:
        """Return the run's state as plain data (what the recorder saves and the API shows)."""

        def ms(moment: float | None) -> int | None:
            return None if moment is None else int((moment - self._t0) * 1000)

        return {
            "status": self.status,
            "error": self.error,
            "started_at": _iso(self.started_at),
            "first_output_at": _iso(self.first_output_at),
            "finished_at": _iso(self.finished_at),
            "retries": self.retries,
            "duplicates": self.duplicates,
            "workers": dict(self.workers),
            "input": self.input,
            "nodes": {
                name: {
                    "status": state.status,
                    "done": state.done,
                    "total": state.total,
                    "busy_ms": int(state.busy * 1000),
                    "started_ms": ms(state.started),
                    "finished_ms": ms(state.finished),
                }
                for name, state in self.nodes.items()
            },
            "timeline": {name: list(state.timeline) for name, state in self.nodes.items() if state.timeline},
            "outputs": [
                {
                    "node": node,
                    "path": str(writer.path),
                    "content_type": writer.content_type,
                    "size": writer.size,
                    "complete": writer.complete,
                }
                for node, writer in self.outputs.items()
            ],
        }
