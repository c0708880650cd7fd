"""Step workers: receive tasks from a lane's channel, run the chain in threads, send the tiles back.

One receiver per lane channel per process (the in-memory layer breaks with two), which takes a
task only when a thread is free: tasks wait in the channel, where any worker process can take
them, instead of piling up in one process. Pillow releases the GIL while it resamples, blurs,
composites with a mask and encodes, so the threads keep every core busy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runtime import events
from runtime.bridge import (
    LOCAL,
    TRANSIENT_ERRORS,
    ChainLink,
    box_from_wire,
    is_local,
    send_waiting,
    taken_message,
    tile_from_wire,
    tile_to_wire,
)
from runtime.chain import run_chain
from runtime.registry import ImageInfo, Step, StepRegistry, registry
from runtime.tiles import Size

log = logging.getLogger("tileflow.worker")

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def default_threads() -> int:
    return os.cpu_count() or 2


class StepFailed(Exception):
    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"node '{node}': {reason}")
        self.node = node
        self.reason = reason


class TaskRunner:
    """Run tasks in a thread pool, keeping each run's step instances for the tiles that follow."""

    def __init__(self, threads: int | None = None, *, steps: StepRegistry = registry, cache_size: int = 256) -> None:
        self.threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tileflow-step")
        self._registry = steps
        self._instances: OrderedDict[tuple[str, str], Step] = OrderedDict()
        self._cache_size = cache_size
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    def cancel(self, execution: str) -> None:
        """Drop tasks of `execution` that have not started yet."""
        self._cancelled[execution] = None
        while len(self._cancelled) > 1024:
            self._cancelled.popitem(last=False)

    def _step(self, execution: str, link: ChainLink) -> Step:
        key = (execution, link.node)
        instance = self._instances.get(key)
        if instance is not None:
            self._instances.move_to_end(key)
            return instance
        step_class = self._registry.get(link.type)
        if step_class is None:
            raise StepFailed(link.node, f"unknown step type '{link.type}' on worker {WORKER_NAME}")
        try:
            params = step_class.Params.model_validate(link.params)
            instance = step_class(params, ImageInfo(Size(link.width, link.height), link.mode))
        except Exception as error:
            raise StepFailed(link.node, f"could not set up: {error}") from error
        self._instances[key] = instance
        while len(self._instances) > self._cache_size:
            self._instances.popitem(last=False)
        return instance

    def _run_sync(self, message: dict[str, Any], codec: str | None) -> dict[str, Any]:
        execution = message["execution"]
        links = [ChainLink.from_wire(values) for values in message["chain"]]
        steps = [(link.node, self._step(execution, link)) for link in links]
        boxes = tuple(box_from_wire(values) for values in message["boxes"])
        started = time.time()
        try:
            result = run_chain(steps, boxes, tile_from_wire(message["tile"]))
        except StepFailed:
            raise
        except Exception as error:
            node = getattr(error, "tileflow_node", links[-1].node)
            raise StepFailed(node, f"{type(error).__name__}: {error}") from error
        return {
            "type": events.TILE_DONE,
            "execution": execution,
            "segment": message["segment"],
            "index": message["index"],
            "attempt": message["attempt"],
            "tiles": [tile_to_wire(tile, codec) for tile in result.tiles],
            "busy": dict(result.busy),
            "started": started,
            "finished": time.time(),
            "worker": WORKER_NAME,
        }

    async def run(self, message: dict[str, Any], *, local: bool = False) -> dict[str, Any] | None:
        """Run one task message; return the reply to send, or None when its run was cancelled.

        `local`: the reply stays in this process, so its tiles travel as objects, not bytes.
        """
        if message["execution"] in self._cancelled:
            return None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._run_sync, message, LOCAL if local else None)
        except StepFailed as failure:
            return {
                "type": events.TILE_FAILED,
                "execution": message["execution"],
                "segment": message["segment"],
                "index": message["index"],
                "attempt": message["attempt"],
                "node": failure.node,
                "error": failure.reason,
                "worker": WORKER_NAME,
            }

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def finished(tasks: set[asyncio.Task]) -> None:
    """Wait until `tasks` are done. Cancelled meanwhile, this raises and leaves them running (unlike
    `gather`, which would cancel them too): a draining worker cut short still has its runs to give back."""
    if tasks:
        await asyncio.wait(set(tasks))


async def receive_unless(layer, channel: str, stop: asyncio.Event | None) -> dict[str, Any] | None:
    """Return the next message on `channel`, or None once `stop` is set (the receive is abandoned).

    A message popped as the receive is cancelled is lost: an offer is offered again when it left
    the lane unclaimed (`placement.PlacedRun._check_taken`), a task when its lease lapses.
    """
    if stop is None:
        return await layer.receive(channel)
    if stop.is_set():
        return None
    receiving = asyncio.ensure_future(layer.receive(channel))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not receiving.done():
            receiving.cancel()
    if receiving.done() and not receiving.cancelled():
        return receiving.result()
    return None


async def serve_lane(
    layer, channel: str, runner: TaskRunner, *, slots: int | None = None, stop: asyncio.Event | None = None
) -> None:
    """Take tasks from `channel`, at most `slots` at a time, and answer each to its conductor.

    For ever, or until `stop` is set: then no task is taken, and the ones taken are finished and answered.
    """
    free = asyncio.Semaphore(slots or runner.threads + 1)
    threads = asyncio.Semaphore(runner.threads)  # a task holding one starts on a thread at once
    local = is_local(layer)
    running: set[asyncio.Task] = set()

    def acknowledge(message: dict[str, Any]) -> None:
        # The lease counts from the start, so a task that waited long tells its conductor it starts
        # now; sent alongside, not before, the work: the result never waits for Redis.
        taken = taken_message(message, WORKER_NAME)
        if taken is not None:
            task = asyncio.create_task(send_taken(message["reply"], taken))
            running.add(task)
            task.add_done_callback(running.discard)

    async def send_taken(reply: str, taken: dict[str, Any]) -> None:
        try:
            await send_waiting(layer, reply, taken)
        except TRANSIENT_ERRORS as error:  # the lease then counts from the send: a re-send at worst
            log.warning("tile.taken of %s/%s not sent (%s)", taken["segment"], taken["index"], error)

    async def handle(message: dict[str, Any]) -> None:
        try:
            async with threads:
                acknowledge(message)
                reply = await runner.run(message, local=local)
            if reply is not None:
                await send_waiting(layer, message["reply"], reply)
        except Exception:
            log.exception(
                "task %s/%s of %s was not answered",
                message.get("segment"),
                message.get("index"),
                message.get("execution"),
            )
        finally:
            free.release()

    log.info("worker %s serving %s with %d threads", WORKER_NAME, channel, runner.threads)
    while True:
        await free.acquire()
        try:
            message = await receive_unless(layer, channel, stop)
        except TRANSIENT_ERRORS as error:
            free.release()
            log.warning("lane %s unreachable (%s); retrying", channel, error)
            await asyncio.sleep(0.5)
            continue
        except BaseException:
            free.release()
            raise
        if message is None:  # stopping: finish what was taken
            free.release()
            await finished(running)
            return
        if message.get("type") != events.TILE_TASK:
            free.release()
            log.warning("ignoring message of type %r on %s", message.get("type"), channel)
            continue
        task = asyncio.create_task(handle(message))
        running.add(task)
        task.add_done_callback(running.discard)
