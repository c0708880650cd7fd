"""What `console/` and `flows/` may call: the catalog, starting, following and cancelling runs.

Runs execute where they start: `start` creates the run's conductor as a task of the calling
process's event loop (Daphne's, in the console). Step work goes through the channel layer to the
lane workers: inside this process for the embedded default, `manage.py runworker` processes when
`REDIS_URL` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from runtime import admission, events, roster
from runtime.admission import MemoryBudget, OwnQueueFull, QueueFull, RunCost, RunTooLarge
from runtime.blobs import BlobStore
from runtime.bridge import TRANSIENT_ERRORS, is_local
from runtime.conductor import Conductor, RunFailed, RunLimits, RunRecorder, RunSpec
from runtime.decode import ImageDamaged, ImageRejected, SourceHeader, probe
from runtime.inspection import UnknownNode, node_image
from runtime.memory import FREE_MEMORY
from runtime.placement import PlacedRun
from runtime.progress import GroupPublisher, RunObserver
from runtime.reconnect import LayerUnreachable, retry_layer, unreachable_reason
from runtime.registry import registry
from runtime.upload import UploadBroken, UploadStream
from runtime.worker import TaskRunner, default_threads, serve_lane

__all__ = [
    "Conductor",
    "ImageDamaged",
    "ImageRejected",
    "MemoryBudget",
    "OwnQueueFull",
    "QueueFull",
    "RunCost",
    "RunFailed",
    "RunLimits",
    "RunRecorder",
    "RunSpec",
    "RunTooLarge",
    "SourceHeader",
    "UnknownNode",
    "UploadBroken",
    "UploadStream",
    "admit",
    "cancel",
    "catalog",
    "follow_output",
    "limits",
    "local_run",
    "memory_budget",
    "node_image",
    "probe",
    "start",
    "unattended_limits",
    "wait_prepared",
]

log = logging.getLogger("tileflow.runtime")

CANCEL_PATIENCE_SECONDS = 2.0  # the caller records the cancel itself when no conductor answers


def catalog() -> list[dict[str, Any]]:
    """Return the step catalog of CONTRACT §3 (`GET /api/steps`)."""
    return registry.catalog()


def limits() -> RunLimits:
    """Return the run limits configured in settings.TILEFLOW."""
    config = settings.TILEFLOW
    return RunLimits(
        tile_size=config["TILE_SIZE"],
        max_in_flight=config["MAX_TILES_IN_FLIGHT"],
        lease_seconds=config["TILE_LEASE_SECONDS"],
        max_attempts=config["TILE_MAX_ATTEMPTS"],
        max_pixels=config["MAX_PIXELS"],
        heartbeat_seconds=config["HEARTBEAT_SECONDS"],
        small_image_tiles=config["SMALL_IMAGE_TILES"],
    )


def unattended_limits() -> RunLimits:
    """Return the limits of a run nobody watches as it goes (a batch item, a trigger's run).

    Nobody waits for its first band, so its grids have no short first rows (fewer tiles, tasks and
    bands for the same pixels) and a short run is saved once, when it ends (a 2 MP batch item: ~25%
    less CPU, docs/benchmarks.md figure 10).
    """
    return dataclasses.replace(limits(), interactive=False)


Run = Conductor | PlacedRun  # a run conducted here, or placed on a worker and followed from here


@dataclass(slots=True)
class LocalRun:
    conductor: Run
    owner: str
    task: asyncio.Task | None = None
    waiting_for: str | None = "slot"  # while queued here: "slot" (its owner's), "memory", None once started


_runs: dict[str, LocalRun] = {}
_user_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {owner: Semaphore}
_embedded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> (runner, worker task)
_budget: MemoryBudget | None = None


def memory_budget() -> MemoryBudget:
    """Return this process's memory budget (TILEFLOW_MEMORY_BUDGET_BYTES, TILEFLOW_MAX_QUEUED_RUNS)."""
    global _budget
    config = settings.TILEFLOW
    capacity = config["MEMORY_BUDGET_BYTES"] or admission.default_capacity()
    if _budget is None or (_budget.capacity, _budget.max_queued) != (capacity, config["MAX_QUEUED_RUNS"]):
        if _budget is not None and (_budget.in_use or _budget.waiting):
            return _budget  # settings changed under running work (tests): keep the budget they hold
        _budget = MemoryBudget(capacity, config["MAX_QUEUED_RUNS"])
    return _budget


def queued_runs() -> int:
    """Return how many runs of this process wait to start (for a per-user slot, for memory or for a worker)."""
    return sum(1 for run in _runs.values() if run.conductor.status == "queued")


def _waiting_reasons() -> dict[str, int]:
    """Return how many queued runs of this process wait for what (their owner's slot, memory, a worker)."""
    reasons = {"slot": 0, "memory": 0, "worker": 0}
    for run in _runs.values():
        if run.conductor.status == "queued":
            reasons[run.waiting_for or "worker"] += 1  # started, still queued: a placed run nobody took yet
    return reasons


def _check_owner_queue(owner: str) -> None:
    """Refuse a run of `owner` when that many of their runs wait for their slots already (OwnQueueFull)."""
    config = settings.TILEFLOW
    limit = config.get("MAX_QUEUED_RUNS_PER_USER") or max(1, config["MAX_QUEUED_RUNS"] // 4)
    waiting = sum(1 for run in _runs.values() if run.owner == owner and run.waiting_for == "slot")
    if waiting >= limit:
        running = config["MAX_CONCURRENT_RUNS_PER_USER"]
        raise OwnQueueFull(waiting, limit, running, memory_budget().retry_after(waiting, running))


async def admit(
    graph: dict[str, Any], header: SourceHeader, run_limits: RunLimits | None = None, *, owner: str | None = None
) -> RunCost | None:
    """Refuse, before anything is stored, a run that could never start or would queue past the limit.

    Raises RunTooLarge (the run alone exceeds the budget) or QueueFull (`retry_after` seconds); returns
    the run's cost under `run_limits` (the configured ones by default), which the run's spec may carry
    (`RunSpec.cost`) so that `start` does not estimate it again. `start` applies the budget itself: this
    only answers early, for callers that can still say no (an HTTP request). `owner`: whose run it is
    (as `start` takes it); a run its owner cannot start yet counts as one more waiting, and is refused
    (OwnQueueFull) when `MAX_QUEUED_RUNS_PER_USER` of its owner's runs wait for their slots already: one
    user cannot fill the queue that every user's runs wait in.
    """
    try:
        # Plans the run: ~1 ms for 24 MP, 10-40 ms for 144 MP.
        cost = await asyncio.to_thread(admission.estimate_under, run_limits or limits(), graph, header)
    except ValueError:
        return None  # a graph that cannot be planned: its run fails with the reason before any pixel
    slot_free = owner is None or not _slot(owner).locked()
    if not slot_free:
        _check_owner_queue(owner)
    memory_budget().check(cost.total, queued=queued_runs(), slot_free=slot_free, reasons=_waiting_reasons())
    return cost


def _slot(owner: str) -> asyncio.Semaphore:
    per_loop = _user_slots.setdefault(asyncio.get_running_loop(), {})
    if owner not in per_loop:
        per_loop[owner] = asyncio.Semaphore(settings.TILEFLOW["MAX_CONCURRENT_RUNS_PER_USER"])
    return per_loop[owner]


def ensure_embedded_workers(layer=None) -> TaskRunner | None:
    """Start this process's in-process lane worker, once per event loop (Daphne has no lifespan)."""
    if not settings.TILEFLOW["EMBEDDED_WORKERS"]:
        return None
    loop = asyncio.get_running_loop()
    started = _embedded.get(loop)
    if started is not None and not started[1].done():
        return started[0]
    runner = TaskRunner(settings.TILEFLOW["WORKER_THREADS"] or None)
    worker = loop.create_task(serve_lane(layer or get_channel_layer(), events.lane_channel("default"), runner))
    _embedded[loop] = (runner, worker)
    return runner


async def start(
    spec: RunSpec,
    *,
    owner: str,
    recorder: RunRecorder | None = None,
    observers: tuple[RunObserver, ...] = (),
    layer=None,
) -> Run:
    """Start a run in the background; return its conductor.

    The run is "queued" until its owner has a free slot (MAX_CONCURRENT_RUNS_PER_USER) and then until
    its memory fits in the server's budget, first come first served; one that alone exceeds the
    budget fails with the figures. Cancelling a queued run ends it at once.

    With the Redis layer (and TILEFLOW_PLACEMENT "worker") the run is conducted on a worker and
    the returned stand-in follows it: the same status, outputs, events and cancel.
    """
    layer = layer or get_channel_layer()
    ensure_embedded_workers(layer)
    config = settings.TILEFLOW
    if not is_local(layer) and config["PLACEMENT"] == "worker":
        conductor = PlacedRun(
            spec,
            layer,
            runs_layer=runs_layer(layer),
            recorder=recorder,
            observers=observers,
            lease_seconds=config["RUN_LEASE_SECONDS"],
            max_attempts=config["TILE_MAX_ATTEMPTS"],
            no_worker_seconds=config["NO_WORKER_SECONDS"],
        )
    else:
        if not is_local(layer):  # its tiles cross Redis: twice the tile is four times the message
            spec = dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, small_image_tiles=0), cost=None)
        publisher = GroupPublisher(layer, spec.execution)
        conductor = Conductor(spec, layer, recorder=recorder, observers=(publisher, *observers))
    slot = _slot(owner)
    budget = memory_budget()
    placed = isinstance(conductor, PlacedRun)  # its worker holds the pixels, under the worker's own budget
    local = LocalRun(conductor, owner)

    async def run() -> None:
        grant = None
        try:
            async with slot:
                local.waiting_for = "memory"
                cost = None if placed else spec.cost or await asyncio.to_thread(admission.spec_cost, spec)
                grant = await budget.acquire(cost.total) if cost is not None else None
                local.waiting_for = None
                await conductor.run()
        except asyncio.CancelledError:
            if conductor.status == "queued":  # cancelled while waiting for a slot or for memory
                await conductor.cancel_queued()
        except RunTooLarge as refused:
            await conductor.fail_queued(str(refused))
        finally:
            _runs.pop(spec.execution, None)
            if grant is not None:
                try:
                    await _give_back(conductor, grant.cost)
                finally:
                    grant.release()

    local.task = asyncio.get_running_loop().create_task(run())
    _runs[spec.execution] = local
    return conductor


def runs_layer(layer):
    """Return the layer of the runs lane: its own alias when configured (a longer expiry), else `layer`."""
    return get_channel_layer("runs") if "runs" in settings.CHANNEL_LAYERS else layer


async def _give_back(conductor: Run, run_bytes: int) -> None:
    """Wait until the run's decoder let go of its image, then return what the run freed to the kernel when due."""
    closed = conductor.reader.closed if isinstance(conductor, Conductor) else None  # placed: decoded elsewhere
    if closed is not None:
        await asyncio.wrap_future(closed)
    await asyncio.to_thread(FREE_MEMORY.run_ended, run_bytes, others_running=bool(_runs))


def local_run(execution_id: str) -> Run | None:
    """Return the conductor of a run of this process, if it is still going."""
    run = _runs.get(str(execution_id))
    return run.conductor if run else None


async def cancel(execution_id: str, *, layer=None) -> bool:
    """Stop a run wherever it runs; return True when this process stopped it."""
    execution_id = str(execution_id)
    run = _runs.get(execution_id)
    embedded = _embedded.get(asyncio.get_running_loop())
    if embedded is not None:
        embedded[0].cancel(execution_id)
    if run is not None:
        if run.conductor.status == "queued":
            run.task.cancel()  # still waiting for a slot: nothing of it runs yet
        else:
            run.conductor.cancel()
        await run.conductor.finished.wait()
        return True
    layer = layer or get_channel_layer()
    try:  # the run's conductor is elsewhere: tell it through the layer, if the layer answers soon
        await retry_layer(
            lambda: layer.group_send(events.run_control_group(execution_id), {"type": events.RUN_CANCEL}),
            layer=layer,
            patience=CANCEL_PATIENCE_SECONDS,
            what="a cancel",
        )
    except LayerUnreachable as unreachable:
        log.warning("execution %s: cancel not sent: %s", execution_id, unreachable)
    return False


async def wait_prepared(conductor: Run) -> None:
    """Wait until the run's output files exist, or it ended before (check `conductor.status`)."""
    await conductor.prepared.wait()


async def follow_output(conductor: Run, node: str) -> AsyncIterator[bytes]:
    """Yield an output's bytes as they are written, from the first; stop early if the run fails."""
    await conductor.prepared.wait()
    writer = conductor.outputs.get(node)
    if writer is None:
        return
    async for chunk in writer.follow():
        yield chunk


async def workers(*, layer=None) -> list[dict[str, Any]]:
    """Return the workers serving this installation: host, threads, runs in progress, last heartbeat.

    Embedded: this process's own lane worker. Redis: every worker's roster entry (runtime.roster).
    Raise `WorkersUnknown` when Redis does not answer.
    """
    layer = layer or get_channel_layer()
    if is_local(layer):  # the embedded worker (started with the first run, always there to start)
        if not settings.TILEFLOW["EMBEDDED_WORKERS"]:
            return []
        threads = settings.TILEFLOW["WORKER_THREADS"] or default_threads()
        return [roster.entry(threads=threads, runs=len(_runs), capacity=len(_runs), embedded=True)]
    try:
        async with asyncio.timeout(WORKERS_PATIENCE):
            return await roster.listed(BlobStore.shared(layer))
    except (TimeoutError, *TRANSIENT_ERRORS) as error:
        raise WorkersUnknown(unreachable_reason(layer, error)) from error


class WorkersUnknown(Exception):
    """The workers cannot be listed: the channel layer (Redis) does not answer."""


WORKERS_PATIENCE = 2.0  # seconds a listing of the workers may wait for Redis


async def health(*, layer=None) -> str | None:
    """Return what keeps runs from working (the channel layer, the workers), or None when all is well."""
    layer = layer or get_channel_layer()
    if is_local(layer):
        return None
    blobs = BlobStore.shared(layer)
    try:
        async with asyncio.timeout(2):
            await blobs.ping()
            listed = await roster.listed(blobs)
    except (TimeoutError, *TRANSIENT_ERRORS):
        return "the channel layer (Redis) is unreachable"
    if not listed:
        return "no worker is running"
    return None


def local_run_ids() -> list[str]:
    """Return the ids of the runs this process is conducting."""
    return list(_runs)
