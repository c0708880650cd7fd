"""Admission: the server-wide budget of decoded bytes that runs draw on, and the queue of runs waiting for it.

A run's cost is estimated from its plan before any pixel is decoded (`estimate`): the decoder's
full-size image, plus what the plan keeps in its stores and in flight. A run starts only when its
cost fits in what the budget has left; otherwise it waits, first come first served (a large run at
the head is not overtaken by small ones, so it cannot starve). A run that alone exceeds the whole
budget can never start and is refused at once (`RunTooLarge`); when too many runs wait already,
new ones are turned away with a time to retry after (`QueueFull`).

`MemoryBudget` is plain Python with a lock: one per process, usable from any event loop or thread
(a console, or a worker process that conducts runs). Nothing here knows Django.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import io
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from runtime.colour import working_space
from runtime.decode import ImageRejected, SourceHeader, probe
from runtime.plan import Plan, compile_plan
from runtime.registry import ImageInfo, TileKind
from runtime.spec import RunLimits, RunSpec
from runtime.steps.source import shrink_on_load, shrunk_size
from runtime.targets import TARGETS
from runtime.tiles import Size

MB = 1024 * 1024
DEFAULT_FRACTION = 0.25  # of physical memory (or of the cgroup's limit, when lower), when no budget is set

# Bytes a pixel takes in memory, as Pillow stores each mode (RGB is padded to 4, two bands take 4 too).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}


def pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, 4)


@dataclass(frozen=True, slots=True)
class RunCost:
    """What a run is expected to hold at its peak, in bytes: the decoded source, and the work around it."""

    decode: int
    working: int

    @property
    def total(self) -> int:
        return self.decode + self.working


def estimate(
    graph: dict[str, Any],
    header: SourceHeader,
    *,
    tile_size: int,
    max_in_flight: int,
    short_rows: bool = True,
    small_image_tiles: int = 0,
) -> RunCost:
    """Return the memory a run of `graph` on an image described by `header` holds at its peak.

    What the conductor holds, from its plan (see docs/architecture.md, "Decode memory"):

    - The decoder's image: full size. A streamed JPEG's target, 4 bytes a pixel (shrunk on load when
      the flow allows); Pillow's own image for every other format, in the mode it opens (a palette
      is 1 byte a pixel), twice while an EXIF orientation is applied (the transposed copy is made
      before the original goes). A large target whose source store only tasks read gives its rows
      back behind the readers (`runtime.targets`): it holds the rows between them and the decoder,
      the source store's window below and one row more for the page its boundary cuts.
    - The source store: the decoder runs ahead until `max_in_flight + 2` rows of tiles wait, and two
      more bands are asked of it; a non-streamed source's bands are copies, as are a streamed gray or
      colour-converted JPEG's (whose large target gives each band back once copied); a streamed
      JPEG's other tiles are parts of its target (nothing more). Every other store: what the order of the tasks makes it
      hold at most (`_stores_peak`). All of a store when a whole-image step reads it.
    - In flight: each task's region is copied for its worker and every step of its chain makes a
      tile of its own: the `max_in_flight` largest tasks count.
    - Encoders: a band joined and encoded in parts (three band-sized buffers; six for PNG, whose
      rows are filtered and compressed on two threads), and the whole picture for WebP, which buffers it.

    Checked against the peak resident memory of one run (docs/benchmarks.md, figure M): within
    0.94-1.33 of it for PNG and JPEG sources of 24-144 MP through resize, rotate, blur, fan-out and
    every encoder; an estimate is rounded up, never tuned to a single case. A large JPEG whose rows go
    back is counted at the most its decoder may run ahead, which a fast pipeline stays well behind:
    2.0 times the measured peak for 96 MP through resize → watermark → JPEG. A gray JPEG, 24 MP and
    54 MP through the same chain: 0.99 and 1.27 of its measured peak (it was counted at 1 byte a pixel
    with no copies: a third of its peak).
    """
    shrink, graph = shrink_on_load(graph, header.size) if header.streamable else (1, graph)
    size = shrunk_size(header.size, shrink)
    grid = RunLimits(tile_size=tile_size, interactive=short_rows, small_image_tiles=small_image_tiles).grid(size)
    tile_size, short_rows = grid
    plan = compile_plan(graph, ImageInfo(size, header.mode), tile_size=tile_size, short_rows=short_rows)
    if not header.streamable:  # as Pillow opens it (a palette: 1 byte a pixel)
        decode = size.width * size.height * pixel_bytes(header.source_mode or header.mode)
        if header.orientation != 1:
            decode *= 2
        return RunCost(decode=decode, working=_working_bytes(plan, max_in_flight, streamed=False))
    # A streamed JPEG decodes into an RGB or RGBX target, 4 bytes a pixel whatever the source's mode.
    decode = size.width * size.height * TARGET_PIXEL_BYTES
    copied = _bands_copied(graph, header)
    if decode >= TARGETS.release_from:
        if copied:  # each band goes back once copied out: the decoder is at most a band ahead of the copy
            decode = min(decode, _target_rows_bytes(size, 2, tile_size))
        elif _gives_rows_back(plan):
            decode = min(decode, _target_rows_bytes(size, _source_window(max_in_flight) + 1, tile_size))
    return RunCost(decode=decode, working=_working_bytes(plan, max_in_flight, streamed=not copied))


TARGET_PIXEL_BYTES = 4  # a streamed JPEG's decode target (`runtime.decode`): RGB or RGBX


def _bands_copied(graph: dict[str, Any], header: SourceHeader) -> bool:
    """Tell whether a streamed JPEG's bands are copies (gray, converted colour), not parts of its target."""
    space = working_space(graph, header.icc_profile, header.source_mode, header.mode)
    return header.mode != "RGB" or space.converted


def _target_rows_bytes(size: Size, rows: int, tile_size: int) -> int:
    return size.width * min(rows * tile_size, size.height) * TARGET_PIXEL_BYTES


def _source_window(max_in_flight: int) -> int:
    """Rows of source tiles waiting at most: the decoder runs `max_in_flight + 2` rows ahead, two more bands asked."""
    return max_in_flight + 2 + 2


def _gives_rows_back(plan: Plan) -> bool:
    """Tell whether the conductor gives the source's target rows back: tiled tasks are its only readers."""
    return plan.source not in _whole_read(plan) and plan.read_by_tasks_only(plan.source)


def _whole_read(plan: Plan) -> set[str]:
    """Return the stores a whole-image step reads: they hold all their rows until it is done."""
    return {
        segment.input_store
        for segment in plan.segments
        if plan.nodes[segment.chain[0]].step.kind is TileKind.WHOLE_IMAGE
    }


def _rows_bytes(info: ImageInfo, rows: int, tile_size: int) -> int:
    return info.size.width * min(rows * tile_size, info.size.height) * pixel_bytes(info.mode)


def _working_bytes(plan: Plan, max_in_flight: int, *, streamed: bool) -> int:
    whole_read = _whole_read(plan)
    total = 0
    for store in plan.stores:
        info = plan.nodes[store].output
        if store in whole_read:
            rows = len(plan.grid(store))
        elif store == plan.source:  # a streamed JPEG's tiles are parts of its target, unless its bands are copies
            rows = 0 if streamed else _source_window(max_in_flight)
        else:
            continue  # below: how much of it the order of the tasks makes it hold
        total += _rows_bytes(info, rows, plan.tile_size)
    total += _stores_peak(plan, max_in_flight, skip=whole_read)
    in_flight = []
    for task in plan.tasks:
        segment = plan.segments[task.segment]
        region = task.region.width * task.region.height * pixel_bytes(plan.nodes[segment.input_store].output.mode)
        made = sum(
            box.width * box.height * pixel_bytes(plan.nodes[node].output.mode)
            for node, box in zip(segment.chain, task.boxes, strict=True)
        )
        in_flight.append(region + made)
    total += sum(sorted(in_flight, reverse=True)[:max_in_flight])
    for output in plan.outputs:
        node = plan.nodes[output]
        total += (6 if node.params.format == "png" else 3) * _rows_bytes(node.output, 1, plan.tile_size)
        if node.params.format == "webp":
            total += node.output.size.width * node.output.size.height * 4
    return total


def _stores_peak(plan: Plan, max_in_flight: int, *, skip: set[str]) -> int:
    """Return the most bytes the stores after the source hold at once, replaying the plan's task order.

    A tile is kept from the task that makes it until its last reader is done: the tasks that read it
    (later in the order) and, for an output's store, the encoder, which takes whole rows in order. A
    rotation fills its store column by column, so it holds the whole image before its first row can
    be encoded; a resize holds about one row. Tasks in flight finish out of order: `max_in_flight`
    tiles more per store, at most the whole store.
    """
    refs = plan.reference_counts()
    boxes = {store: plan.grid(store) for store in plan.stores if store != plan.source and store not in skip}
    sizes = {store: pixel_bytes(plan.nodes[store].output.mode) for store in boxes}
    present: dict[str, set[int]] = {store: set() for store in boxes}
    feeds = {plan.nodes[output].inputs[0]: 0 for output in plan.outputs if plan.nodes[output].inputs[0] in boxes}
    columns = {store: -(-plan.nodes[store].output.size.width // plan.tile_size) for store in boxes}
    held = peak = 0

    def tile_bytes(store: str, index: int) -> int:
        box = boxes[store][index]
        return box.width * box.height * sizes[store]

    def release(store: str, index: int) -> None:
        nonlocal held
        refs[store][index] -= 1
        if refs[store][index] <= 0 and index in present[store]:
            present[store].discard(index)
            held -= tile_bytes(store, index)

    for task in plan.tasks:
        segment = plan.segments[task.segment]
        if segment.input_store in boxes:
            for index in plan.needed_tiles(task):
                release(segment.input_store, index)
        store = segment.chain[-1]
        if store not in boxes:
            continue
        present[store].add(task.index)
        held += tile_bytes(store, task.index)
        peak = max(peak, held)
        if store in feeds:
            width = columns[store]
            while feeds[store] * width < len(boxes[store]) and all(
                index in present[store] for index in range(feeds[store] * width, (feeds[store] + 1) * width)
            ):
                for index in range(feeds[store] * width, (feeds[store] + 1) * width):
                    release(store, index)
                feeds[store] += 1
    lag = sum(
        min(max_in_flight * plan.tile_size**2, info.size.width * info.size.height) * sizes[store]
        for store, info in ((store, plan.nodes[store].output) for store in boxes)
    )  # never more than the whole store
    return peak + lag


class RunTooLarge(Exception):
    """The run alone needs more than the whole budget: it could never start."""

    def __init__(self, needed: int, capacity: int) -> None:
        super().__init__(
            f"this run needs about {math.ceil(needed / MB)} MB of memory to decode and process the image, "
            f"more than the server's whole budget of {capacity // MB} MB (TILEFLOW_MEMORY_BUDGET_BYTES): "
            "send a smaller image"
        )
        self.needed = needed
        self.capacity = capacity


WAITING_FOR = {
    "memory": "for memory",
    "slot": "for their owner's run slot",
    "worker": "for a worker",
}  # what a queued run waits for, as a refusal says it


def waiting_for(reasons: dict[str, int]) -> str:
    """Say what runs wait for: "for memory", or "(3 for memory, 29 for their owner's run slot)"."""
    parts = [(reason, count) for reason, count in reasons.items() if count]
    if len(parts) == 1:
        return WAITING_FOR[parts[0][0]]
    return "(" + ", ".join(f"{count} {WAITING_FOR[reason]}" for reason, count in parts) + ")"


class QueueFull(Exception):
    """Too many runs wait already; `retry_after` is a guess, in whole seconds, of when to try again.

    `reasons`: how many of the waiting runs wait for what (`WAITING_FOR`), memory by default.
    """

    def __init__(
        self,
        waiting: int,
        limit: int,
        retry_after: int,
        *,
        reasons: dict[str, int] | None = None,
        text: str | None = None,
    ) -> None:
        super().__init__(
            text
            or f"the server is busy: {waiting} runs are waiting {waiting_for(reasons or {'memory': waiting})} "
            f"(at most {limit} may wait); try again in {retry_after} s"
        )
        self.waiting = waiting
        self.limit = limit
        self.retry_after = retry_after


class OwnQueueFull(QueueFull):
    """One user has as many runs waiting for their own run slots as one user may (the others are still admitted)."""

    def __init__(self, waiting: int, limit: int, running: int, retry_after: int) -> None:
        super().__init__(
            waiting,
            limit,
            retry_after,
            text=f"you have {waiting} runs waiting for a run slot of your own (you may run {running} at a time, "
            f"TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER; at most {limit} of one user's runs may wait, "
            f"TILEFLOW_MAX_QUEUED_RUNS_PER_USER); try again in {retry_after} s",
        )


@dataclass(slots=True)
class _Waiter:
    cost: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    granted: bool = False


class Grant:
    """Memory held by one run; `release()` gives it back (once, whatever calls it twice)."""

    def __init__(self, budget: MemoryBudget, cost: int) -> None:
        self.budget = budget
        self.cost = cost
        self.since = time.monotonic()
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.budget._release(self)


class MemoryBudget:
    """A number of bytes that runs hold while they run, handed out first come first served."""

    def __init__(self, capacity: int, max_queued: int) -> None:
        if capacity < 1:
            raise ValueError(f"a memory budget must be at least one byte, not {capacity}")
        self.capacity = capacity
        self.max_queued = max_queued
        self.in_use = 0
        self.running = 0
        self._lock = threading.Lock()
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._mean_hold = 5.0  # seconds a grant is held, a moving average (for Retry-After)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiters)

    def check(
        self, cost: int, *, queued: int | None = None, slot_free: bool = True, reasons: dict[str, int] | None = None
    ) -> None:
        """Refuse now what `acquire` would refuse or make wait too long: RunTooLarge, QueueFull.

        `queued`: the runs waiting before this one, when the caller counts more than this budget's own
        waiters (runs waiting for a per-user slot too), and `reasons` what they wait for (the refusal
        says it; memory by default). `slot_free`: whether the run's owner may start another run now;
        one that must wait for its owner's slot waits in the queue, memory or not.
        """
        if cost > self.capacity:
            raise RunTooLarge(cost, self.capacity)
        with self._lock:
            waiting = len(self._waiters) if queued is None else queued
            fits_now = slot_free and not self._waiters and self.in_use + cost <= self.capacity
            if waiting >= self.max_queued and not fits_now:
                raise QueueFull(waiting, self.max_queued, self._retry_after(waiting), reasons=reasons)

    async def acquire(self, cost: int) -> Grant:
        """Wait until `cost` bytes fit after every run that waited before; cancellable while it waits."""
        if cost > self.capacity:
            raise RunTooLarge(cost, self.capacity)
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self.in_use + cost <= self.capacity:
                return self._grant(cost)
            waiter = _Waiter(cost, loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                if waiter.granted:  # granted as the cancellation came: give it back
                    self._ungrant(cost)
                    self._wake()
                else:
                    self._waiters.remove(waiter)
                    self._wake()  # a large head leaving may let the next ones in
            raise
        return waiter.future.result()

    def _grant(self, cost: int) -> Grant:
        self.in_use += cost
        self.running += 1
        return Grant(self, cost)

    def _ungrant(self, cost: int) -> None:
        self.in_use -= cost
        self.running -= 1

    def _release(self, grant: Grant) -> None:
        with self._lock:
            self._ungrant(grant.cost)
            self._mean_hold = 0.8 * self._mean_hold + 0.2 * (time.monotonic() - grant.since)
            self._wake()

    def _wake(self) -> None:
        """Grant the waiters at the head that fit now, in order (called with the lock held)."""
        while self._waiters and self.in_use + self._waiters[0].cost <= self.capacity:
            waiter = self._waiters.popleft()
            waiter.granted = True
            grant = self._grant(waiter.cost)
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future, grant)

    def _retry_after(self, waiting: int) -> int:
        """Guess when a place in the queue frees: the runs ahead, drained by those running at a time."""
        return self.retry_after(waiting, self.running)

    def retry_after(self, waiting: int, running: int) -> int:
        """Guess when one of `waiting` runs starts, `running` of them at a time, from how long runs held memory."""
        return max(1, min(300, math.ceil(self._mean_hold * (waiting + 1) / max(1, running))))


def _resolve(future: asyncio.Future, grant: Grant) -> None:
    if not future.done():  # else its task was cancelled meanwhile, and `acquire` gave the grant back
        future.set_result(grant)


@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """Return the bytes of memory this process may use: physical memory, or its cgroup's limit when lower.

    Read once per process (the files cost ~0.4 ms, and every run start asks for the budget).
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def estimate_under(limits: RunLimits, graph: dict[str, Any], header: SourceHeader) -> RunCost:
    """Return `estimate` of a run of `graph` under `limits`."""
    return estimate(
        graph,
        header,
        tile_size=limits.tile_size,
        max_in_flight=limits.max_in_flight,
        short_rows=limits.interactive,
        small_image_tiles=limits.small_image_tiles,
    )


def default_capacity() -> int:
    return int(physical_memory() * DEFAULT_FRACTION)


def spec_cost(spec: RunSpec) -> RunCost | None:
    """Return a run's cost from its header (probed here if the caller had none); None if it cannot be read.

    A run whose input cannot be probed or planned fails in the conductor with the reason, before any
    pixel: it holds nothing worth budgeting.
    """
    try:
        header = spec.header or probe(
            io.BytesIO(spec.input_data) if spec.input_data else spec.input_path, spec.limits.max_pixels
        )
        return estimate_under(spec.limits, spec.graph, header)
    except (ImageRejected, OSError, ValueError):
        return None
