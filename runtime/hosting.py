"""Runs placed on workers (Redis layer): the worker's side, which conducts runs taken from the runs lane.

A worker takes an offer only when it has room (`capacity` runs at once), claims it, receives the
input, and conducts the run here exactly as the embedded default does: a `Conductor` over a
process-local in-memory layer whose lane worker runs the tiles on this process's threads. Only the
compressed input and the encoded output cross Redis. Outputs are encoded into a scratch directory
and streamed to the console from it, chunk by chunk, as they grow (and again from any offset the
console asks for); progress goes to the execution's group; snapshots go to the console, which
saves them and records the end. The worker's heartbeat renews the lease of every run it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from channels.layers import InMemoryChannelLayer

from runtime import admission, events, roster
from runtime.admission import Grant, MemoryBudget, RunTooLarge
from runtime.blobs import BlobStore
from runtime.bridge import TRANSIENT_ERRORS, send_waiting
from runtime.conductor import Conductor
from runtime.progress import GroupPublisher
from runtime.reconnect import retry_layer
from runtime.spec import RunLimits, RunSpec
from runtime.worker import WORKER_NAME, TaskRunner, finished, receive_unless, serve_lane

log = logging.getLogger("tileflow.hosting")

SCRATCH_PREFIX = "tileflow-run-"  # a hosted run's scratch folder: tileflow-run-<worker pid>-<random>
REDIS_PATIENCE = 5.0  # seconds a claimed run waits for Redis to read its input before it is dropped
CONSOLE_PATIENCE_LEASES = 10  # leases a console may leave its channel full before its run is stopped


class RunHost:
    """Take runs from the runs lane while there is room, and conduct each in this process."""

    def __init__(
        self,
        layer,
        runner: TaskRunner,
        *,
        runs_layer=None,
        capacity: int = 1,
        lease_seconds: float = 3.0,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.layer = layer
        self.budget = budget  # this worker's memory budget: the decoded bytes its runs may hold at once
        self.runs_layer = runs_layer or layer
        self.runner = runner
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self.local = InMemoryChannelLayer(capacity=1000)
        self.blobs = BlobStore.of_layer(layer)
        self.hosted: dict[tuple[str, int], HostedRun] = {}
        self.beats = 0
        self.draining = False  # stopping: it takes no new runs

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Serve the runs lane (and the local tile lane the hosted runs use) for ever, or until `stop`.

        Once `stop` is set (`runworker` on SIGTERM) the worker takes no more runs, shows itself
        draining, and returns when the runs it holds have ended. Cancelled before that (a second
        signal, the drain's time up), it gives each unfinished run back to its console, which offers
        it again at once instead of after a lease.
        """
        await asyncio.to_thread(remove_dead_scratch)
        lane = asyncio.create_task(serve_lane(self.local, events.lane_channel("default"), self.runner))
        heartbeat = asyncio.create_task(self._heartbeat())
        listed = asyncio.create_task(self._roster_heartbeat())
        draining = asyncio.create_task(self._drain_when(stop)) if stop is not None else None
        room = asyncio.Semaphore(self.capacity)
        running: set[asyncio.Task] = set()
        try:
            while True:
                await room.acquire()
                try:
                    offer = await receive_unless(self.runs_layer, events.RUNS_CHANNEL, stop)
                except TRANSIENT_ERRORS as error:
                    room.release()
                    log.warning("runs lane unreachable (%s); retrying", error)
                    await asyncio.sleep(0.5)
                    continue
                except BaseException:
                    room.release()
                    raise
                if offer is None:  # stopping: the runs taken end first
                    room.release()
                    await finished(running)
                    return
                if offer.get("type") != events.RUN_OFFER:
                    room.release()
                    continue
                task = asyncio.create_task(self._host(offer, room))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            await self._give_back()
            lane.cancel()
            heartbeat.cancel()
            listed.cancel()
            if draining is not None:
                draining.cancel()
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await roster.leave(self.blobs, WORKER_NAME)
            for task in running:
                task.cancel()

    async def _drain_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.draining = True
        log.info("draining: %d run(s) to finish, no new ones taken", len(self.hosted))
        await self._beat_roster()  # the consoles see it at once

    async def _give_back(self) -> None:
        """Tell the console of every run still going that this worker gives it up (it is stopping)."""
        unfinished = [
            hosted
            for hosted in self.hosted.values()
            if hosted.conductor is None or not hosted.conductor.finished.is_set()
        ]
        for hosted in unfinished:
            log.warning("run %s given back unfinished: this worker stops", hosted.execution)
        with contextlib.suppress(*TRANSIENT_ERRORS, TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.gather(*(hosted.tell({"type": events.RUN_RELEASED}) for hosted in unfinished))

    async def _host(self, offer: dict[str, Any], room: asyncio.Semaphore) -> None:
        hosted = HostedRun(self, offer)
        key = (offer["execution"], offer["attempt"])
        self.hosted[key] = hosted
        try:
            await hosted.run(room)
        except Exception:
            log.exception("run %s was not conducted", offer.get("execution"))
        finally:
            self.hosted.pop(key, None)
            hosted.release(room)

    @property
    def beat_seconds(self) -> float:
        return self.lease_seconds / 4

    async def _heartbeat(self) -> None:
        """Renew every hosted run's lease, several times a lease (a console answers one it gave away with a drop)."""
        while True:
            self.beats += 1
            hosted = list(self.hosted.values())
            await asyncio.gather(*(run.beat(rejoin=self.beats % 4 == 0) for run in hosted))
            await asyncio.sleep(self.beat_seconds)

    async def _roster_heartbeat(self) -> None:
        """Renew this worker's roster entry every beat, apart from the leases: a slow console cannot delay it."""
        while True:
            await self._beat_roster()
            await asyncio.sleep(self.beat_seconds)

    async def _beat_roster(self) -> None:
        status = roster.entry(
            threads=self.runner.threads, runs=len(self.hosted), capacity=self.capacity, draining=self.draining
        )
        try:
            await roster.beat(self.blobs, status, every=self.beat_seconds)
        except TRANSIENT_ERRORS as error:
            log.debug("roster entry not written (%s)", error)


def remove_dead_scratch(folder: Path | None = None) -> int:
    """Remove the scratch folders of runs whose worker died (SIGKILL, OOM) on this host; return how many.

    Each is named after its worker's PID; a folder whose PID is alive (perhaps reused) is left alone.
    """
    removed = 0
    for path in Path(folder or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        except PermissionError:  # alive, another user's
            pass
    return removed


class HostedRun:
    """One run this worker took: claim, input, the conductor, and its outputs streamed to the console."""

    def __init__(self, host: RunHost, offer: dict[str, Any]) -> None:
        self.host = host
        self.offer = offer
        self.execution: str = offer["execution"]
        self.attempt: int = offer["attempt"]
        self.reply: str = offer["reply"]
        self.channel = ""
        self.conductor: Conductor | None = None
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._followers: dict[str, asyncio.Task] = {}
        self._released = False
        self._claimed = False
        self._ended_by_console = False  # the console cancelled or dropped the run: it waits for no end

    def release(self, room: asyncio.Semaphore) -> None:
        """Give the run's room back to the worker (once): at its end, or when it is given up."""
        if not self._released:
            self._released = True
            room.release()

    async def run(self, room: asyncio.Semaphore) -> None:
        layer = self.host.layer
        self.channel = events.private_channel("tileflow.hosted.")
        receiver = asyncio.create_task(self._receive())
        workdir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        try:
            await self.tell({"type": events.RUN_CLAIMED, "worker": WORKER_NAME})
            self._claimed = True
            # After a Redis restart the first use of each pooled connection fails ("Connection closed by
            # server"): a claimed run that gave up there was dropped and waited a lease to be offered again.
            data = await retry_layer(self._input, layer=layer, patience=REDIS_PATIENCE, what="reading a run's input")
            if data is None:
                log.warning(
                    "run %s: its input is gone (the run ended before a worker took it, or Redis restarted); "
                    "asking for a new offer",
                    self.execution,
                )
                await self.tell({"type": events.RUN_INPUT_GONE})
                return
            await retry_layer(
                lambda: layer.group_add(events.run_control_group(self.execution), self.channel),
                layer=layer,
                patience=REDIS_PATIENCE,
                what="joining a run's control group",
            )
            await self._conduct(data, workdir, room)
        finally:
            receiver.cancel()
            for follower in self._followers.values():
                follower.cancel()
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await layer.group_discard(events.run_control_group(self.execution), self.channel)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _input(self) -> bytes | None:
        """Return the input, read from its pieces (None if one is gone: the console offers again)."""
        pieces = []
        for key in self.offer["input"]:
            piece = await self.host.blobs.get(key)
            if piece is None:
                return None
            pieces.append(piece)
        return b"".join(pieces)

    async def _conduct(self, data: bytes, workdir: Path, room: asyncio.Semaphore) -> None:
        limits = RunLimits(**self.offer["limits"])
        spec = RunSpec(self.execution, self.offer["graph"], workdir / "input", workdir / "out", limits, input_data=data)
        publisher = GroupPublisher(self.host.layer, self.execution, announce_end=False)
        conductor = Conductor(spec, self.host.local, recorder=ConsoleReporter(self), observers=(publisher,))
        self.conductor = conductor
        try:
            grant = await self._admit(spec)
        except RunTooLarge as refused:
            await conductor.fail_queued(str(refused))
            self.release(room)
            await self._report_end("failed")
            return
        try:
            await self._conduct_admitted(conductor, room, grant)
        finally:
            if grant is not None:
                grant.release()

    async def _admit(self, spec: RunSpec) -> Grant | None:
        """Wait until the run's decoded bytes fit in this worker's budget (the console waits meanwhile)."""
        budget = self.host.budget
        if budget is None:
            return None
        cost = await asyncio.to_thread(admission.spec_cost, spec)
        return await budget.acquire(cost.total) if cost is not None else None

    async def _conduct_admitted(self, conductor: Conductor, room: asyncio.Semaphore, grant: Grant | None) -> None:
        running = asyncio.create_task(conductor.run())
        control = asyncio.create_task(self._control())
        try:
            await conductor.prepared.wait()
            if conductor.outputs:
                outputs = [[node, writer.path.name, writer.content_type] for node, writer in conductor.outputs.items()]
                await self.tell({"type": events.RUN_PREPARED, "outputs": outputs})
                self._resend({node: 0 for node in conductor.outputs})
            status = await running
            if grant is not None:
                grant.release()  # the pixels are gone: the next run may have the memory
            control.cancel()  # from here on, the end's handshake reads the inbox
            if status == "succeeded":
                await self._followed()
            self.release(room)  # the work is done: another run may start while the console confirms
            await self._report_end(status)
        finally:
            control.cancel()
            if not running.done():
                running.cancel()

    async def _followed(self) -> None:
        """Wait until every output was sent to its end (followers started again by a resend included)."""
        while True:
            followers = list(self._followers.values())
            await asyncio.gather(*followers, return_exceptions=True)
            if all(follower.done() for follower in self._followers.values()):
                return

    async def _report_end(self, status: str) -> None:
        """Tell the console the run ended; repeat on its resend requests until it confirms (or gives up)."""
        conductor = self.conductor
        done = {
            "type": events.RUN_DONE,
            "status": status,
            "snapshot": conductor.snapshot(),
            "sizes": {node: writer.size for node, writer in conductor.outputs.items()},
        }
        await self.tell(done)
        if self._ended_by_console:
            return  # it has ended the run already: nothing will confirm this end
        deadline = time.monotonic() + CONSOLE_PATIENCE_LEASES * self.host.lease_seconds
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(self.host.lease_seconds):
                    message = await self._inbox.get()
            except TimeoutError:
                await self.tell(done)  # the end may have been lost with Redis
                continue
            kind = message.get("type")
            if kind in (events.RUN_ACK, events.RUN_DROP, events.RUN_CANCEL):
                return
            if kind == events.RUN_RESEND:
                self._resend(message["offsets"])
                await self._followed()
                await self.tell(done)

    async def _control(self) -> None:
        """While the run goes: stop it when asked, send outputs again from where the console asks."""
        while True:
            message = await self._inbox.get()
            kind = message.get("type")
            if kind in (events.RUN_CANCEL, events.RUN_DROP):
                self._ended_by_console = True
                self.conductor.cancel()
            elif kind == events.RUN_RESEND:
                self._resend(message["offsets"])

    def _resend(self, offsets: dict[str, int]) -> None:
        for node, offset in offsets.items():
            writer = self.conductor.outputs.get(node)
            if writer is None:
                continue
            previous = self._followers.get(node)
            if previous is not None:
                previous.cancel()
            self._followers[node] = asyncio.create_task(self._follow(node, writer, offset))

    async def _follow(self, node: str, writer, offset: int) -> None:
        try:
            async for chunk in writer.follow(offset):
                key = await self._put(chunk)
                # The console reads its channel all the time: full for this long, it is gone.
                async with asyncio.timeout(CONSOLE_PATIENCE_LEASES * self.host.lease_seconds):
                    await self.tell({"type": events.RUN_OUTPUT, "node": node, "offset": offset, "key": key}, wait=True)
                offset += len(chunk)
        except TimeoutError:
            log.warning("run %s: its console stopped reading; the run is stopped", self.execution)
            self.conductor.cancel()

    async def _put(self, chunk: bytes) -> str:
        """Keep a chunk in Redis for the console, waiting while Redis is unreachable."""
        while True:
            try:
                return await self.host.blobs.put(chunk)
            except TRANSIENT_ERRORS as error:
                log.warning("run %s: output chunk not stored (%s); retrying", self.execution, error)
                await asyncio.sleep(0.2)

    async def beat(self, *, rejoin: bool) -> None:
        """Renew the run's lease with its console (and its control group membership now and then)."""
        if not self._claimed:
            return
        await self.tell({"type": events.RUN_ALIVE})
        if rejoin and self.channel:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.host.layer.group_add(events.run_control_group(self.execution), self.channel)

    async def tell(self, message: dict[str, Any], *, wait: bool = False) -> None:
        message = {**message, "execution": self.execution, "attempt": self.attempt, "channel": self.channel}
        if wait:  # output bytes: wait for room and for Redis (the console asks again for anything lost)
            await send_waiting(self.host.layer, self.reply, message)
            return
        try:
            await send_waiting(self.host.layer, self.reply, message, patience=5.0)
        except TRANSIENT_ERRORS as error:
            log.warning("run %s: %s not sent (%s)", self.execution, message["type"], error)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.host.layer.receive(self.channel)
            except TRANSIENT_ERRORS as error:
                log.warning("run %s: channel layer unreachable (%s)", self.execution, error)
                await asyncio.sleep(0.2)
                continue
            self._inbox.put_nowait(message)


class ConsoleReporter:
    """The hosted conductor's recorder: its snapshots go to the console, which saves them."""

    def __init__(self, hosted: HostedRun) -> None:
        self.hosted = hosted

    async def save(self, snapshot: dict[str, Any], *, final: bool) -> None:
        if not final:  # the end travels with run.done, after the last output byte
            await self.hosted.tell({"type": events.RUN_SNAPSHOT, "snapshot": snapshot})
