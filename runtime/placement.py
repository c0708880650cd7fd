"""Runs placed on workers (Redis layer): the console's side of a run that a worker conducts.

The console puts the compressed input into Redis (in pieces under `PIECE` bytes, `runtime.blobs`)
and offers the run on the runs lane (its plan, limits and the pieces' keys); a worker with room
takes it, claims it (the first claim of an attempt wins), reads the input, decodes, runs the tiles
on its own threads, encodes, and streams the encoded outputs back in chunks, which are written
here to media, where HTTP responses follow them as they would a local run's. Progress goes from
the worker to the execution's group directly; snapshots come here to be saved, and the end is
recorded here before it is announced.

Faults: the worker's heartbeat renews the run's lease (`RUN_ALIVE`); a run not heard of for a
lease is offered again, and the next worker's output, byte-identical, is written only beyond what
was received (a `/run` response that had sent bytes goes on where it was). A chunk that arrives
past a gap, or a reconnection to the layer (Redis restarted: queued messages are gone), asks the
worker to send again from what was received, at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime import events, roster
from runtime.blobs import INPUT_TTL, BlobStore
from runtime.bridge import TRANSIENT_ERRORS, send_waiting
from runtime.control import RunCancelled, RunFailed, RunUnavailable
from runtime.outputs import RelayedFile
from runtime.progress import GroupPublisher, RunObserver
from runtime.reconnect import default_patience, unreachable_reason
from runtime.spec import RunRecorder, RunSpec
from runtime.upload import UploadBroken

log = logging.getLogger("tileflow.placement")

PIECE = 768 * 1024  # input bytes per message: channels_redis wants messages under ~1 MB
TICK = 0.25  # seconds between lease checks
OFFER_CHECK_SECONDS = 1.0  # between checks that an offer nobody took yet is still in Redis
NO_WORKER_SECONDS = 15.0  # an interactive run nobody took for this long fails if no worker is running


LANE_READ_SECONDS = 1.0  # how stale the process's view of the runs lane may be


class LaneContents:
    """Which offers (execution, attempt) the runs lane holds, read for every run of the process at once.

    An offer leaves the lane when a worker pops it, and the worker claims it at once; a worker
    stopped (SIGSTOP, a frozen VM) while it waited on the lane still has Redis hand it the next
    offer, which then sits in its socket, neither in the lane nor claimed. A run whose offer is
    neither is offered again (`PlacedRun._check_taken`). One read of the lane a second, shared.
    """

    def __init__(self, layer) -> None:
        self.layer = layer
        self._offers: set[tuple[str, int]] = set()
        self._read_at = float("-inf")
        self._reading: asyncio.Task | None = None

    @classmethod
    def shared(cls, layer) -> LaneContents:
        return _of_loop(cls, layer)

    async def holds(self, execution: str, attempt: int) -> bool:
        """Tell whether the lane (or a receiver's in-flight backup of it) holds this offer."""
        if time.monotonic() - self._read_at >= LANE_READ_SECONDS:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.ensure_future(self._read())
            await asyncio.shield(self._reading)
        return (execution, attempt) in self._offers

    async def _read(self) -> None:
        key = self.layer.prefix + events.RUNS_CHANNEL
        offers: set[tuple[str, int]] = set()
        for index in range(self.layer.ring_size):
            connection = self.layer.connection(index)
            for name in (key, key + "$inflight"):  # the backup channels_redis restores to the lane
                for member in await connection.zrange(name, 0, -1):
                    try:
                        message = self.layer.deserialize(member)
                    except Exception:  # not ours to judge: a message of another version
                        continue
                    offers.add((message.get("execution"), message.get("attempt")))
        self._offers, self._read_at = offers, time.monotonic()


def _of_loop(kind, layer):
    """Return the running event loop's one `kind(layer)` (a loop's objects serve only its own tasks)."""
    made = _OF_LOOP.setdefault(asyncio.get_running_loop(), {})
    found = made.get((kind, id(layer)))
    if found is None or found.layer is not layer:
        found = made[(kind, id(layer))] = kind(layer)
    return found


_OF_LOOP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Replies:
    """The channel the workers answer this process's placed runs on, read by one task for all of them.

    Each run used to read a channel of its own: a receiver task and, as its blocking read was
    cancelled at the run's end, a new Redis connection a run (~3 ms of the console's CPU). One
    plain channel a process (not channels_redis' `!` channels: their shared loop could leave
    replies unread after a Redis restart) and one loop here, which routes each message to its
    run by execution id and, once Redis answers again after an outage, tells every run.
    """

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel = events.private_channel("tileflow.placed.")
        self._inboxes: dict[str, asyncio.Queue] = {}
        self._task: asyncio.Task | None = None

    @classmethod
    def shared(cls, layer) -> Replies:
        return _of_loop(cls, layer)

    def register(self, execution: str, inbox: asyncio.Queue) -> None:
        self._inboxes[execution] = inbox
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(), name="tileflow-placed-replies")

    def unregister(self, execution: str, inbox: asyncio.Queue) -> None:
        if self._inboxes.get(execution) is inbox:
            del self._inboxes[execution]

    async def _read(self) -> None:
        watcher: asyncio.Task | None = None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except TRANSIENT_ERRORS as error:
                if watcher is None or watcher.done():
                    log.warning("placed runs: channel layer unreachable (%s)", error)
                    watcher = asyncio.create_task(self._watch_reconnection())
                await asyncio.sleep(0.2)
                continue
            inbox = self._inboxes.get(message.get("execution"))
            if inbox is not None:
                inbox.put_nowait(("message", message))
            else:  # a run that ended here (cancelled, failed, given to another): its worker may not know
                await disown(self.layer, message)

    async def _watch_reconnection(self) -> None:
        """Tell every run the moment Redis answers again: a restart may have emptied the lane of its offer.

        Waiting for the next message instead would wait for ever when the offer, or the claim, was
        what the restart lost (nobody has anything to send the run).
        """
        blobs = BlobStore.shared(self.layer)
        while True:
            try:
                await blobs.ping()
            except TRANSIENT_ERRORS:
                await asyncio.sleep(0.2)
                continue
            for inbox in list(self._inboxes.values()):
                inbox.put_nowait(("reconnected", None))
            return


DISOWNED = (events.RUN_ALIVE, events.RUN_DONE)  # what a worker repeats until its run is confirmed or dropped


async def disown(layer, message: dict[str, Any]) -> None:
    """Tell a worker that a run it still holds is no longer its own (`run.drop`), when it renews it or ends it.

    A drop or a cancel sent while Redis was away is lost; the worker's next lease renewal (every ¼
    lease) or its repeated end is answered with a drop once Redis is back, so it stops the run and
    frees its slot within a lease, whatever message was lost.
    """
    channel = message.get("channel")
    if message.get("type") not in DISOWNED or not channel:
        return
    try:
        await layer.send(channel, {"type": events.RUN_DROP, "execution": message.get("execution")})
    except Exception as error:  # Redis away or the channel full: the worker's next renewal asks again
        log.warning("execution %s: run.drop not sent (%s)", message.get("execution"), error)


def regrouped(pieces: list[bytes | memoryview], size: int) -> list[list[memoryview]]:
    """Cut a run of byte pieces into groups of `size` bytes (the last one shorter), as views: nothing is copied.

    There is always one group, empty for no bytes: an empty input is still one blob.
    """
    groups: list[list[memoryview]] = [[]]
    room = size
    for piece in pieces:
        view = memoryview(piece).cast("B")
        while view:
            if room == 0:
                groups.append([])
                room = size
            part, view = view[:room], view[room:]
            groups[-1].append(part)
            room -= len(part)
    return groups


def spec_to_wire(spec: RunSpec, input_keys: list[str]) -> dict[str, Any]:
    """Return what a worker needs of a run: its graph, limits and the keys of its input's pieces."""
    limits = spec.limits
    return {
        "execution": spec.execution,
        "graph": spec.graph,
        "input": input_keys,
        "limits": {
            "tile_size": limits.tile_size,
            "max_in_flight": limits.max_in_flight,
            "lease_seconds": limits.lease_seconds,
            "max_attempts": limits.max_attempts,
            "max_pixels": limits.max_pixels,
            "heartbeat_seconds": limits.heartbeat_seconds,
            "interactive": limits.interactive,
            "small_image_tiles": limits.small_image_tiles,
        },
    }


def earliest(*moments: str | None) -> str | None:
    """Return the earliest of ISO moments (None for none): a run's first output is its first attempt's."""
    known = [moment for moment in moments if moment]
    return min(known, key=datetime.fromisoformat) if known else None


class PlacedRun:
    """Offer a run to the workers and follow it; the console's stand-in for its conductor."""

    def __init__(
        self,
        spec: RunSpec,
        layer,
        *,
        runs_layer=None,
        recorder: RunRecorder | None = None,
        observers: tuple[RunObserver, ...] = (),
        lease_seconds: float = 3.0,
        max_attempts: int = 3,
        no_worker_seconds: float = NO_WORKER_SECONDS,
    ) -> None:
        self.spec = spec
        self.layer = layer
        self.runs_layer = runs_layer or layer
        self.recorder = recorder
        self.observers = observers
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.no_worker_seconds = no_worker_seconds
        self.status = "queued"
        self.error: str | None = None
        self.unavailable = False  # it failed for want of Redis or of any worker, not for its input
        self.outputs: dict[str, RelayedFile] = {}
        self.prepared = asyncio.Event()
        self.finished = asyncio.Event()
        self.first_output = asyncio.Event()
        self.attempt = 0
        self.offers = 0  # offers made (re-offers after a reconnection included)
        self.resends = 0  # times the worker was asked to send outputs again
        self.holders: list[str] = []  # workers that held the run, in order
        self._snapshot: dict[str, Any] = {}
        self._started_at: str | None = None  # when the first attempt started (a later one starts again)
        self._first_output_at: str | None = None  # the earliest first output of any attempt (a retry's is later)
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._channel = ""
        self._holder: str | None = None  # the channel of the worker that conducts the current attempt
        self._heard = 0.0
        self._offer_checked = 0.0  # when the unclaimed offer's input was last found in Redis
        self._offered_at = 0.0  # when the current offer was sent
        self._gone_since: float | None = None  # when the unclaimed offer was first missed in the lane
        self._unclaimed_since: float | None = None  # when the current offer was made, until a worker claims it
        self._absence: roster.Absence | None = None  # how long no worker has been listed, while unclaimed
        self._input: list[bytes | memoryview] = []
        self._input_keys: list[str] = []
        self._blobs: BlobStore | None = None
        self._done: dict[str, Any] | None = None  # the worker's run.done, while outputs still arrive
        self._cancel_requested = False

    # -- what the API reads -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the run's latest state, the outputs as written here."""
        base = {
            "started_at": None,
            "first_output_at": None,
            "finished_at": None,
            "retries": 0,
            "duplicates": 0,
            "workers": {},
            "input": {},
            "nodes": {},
            "timeline": {},
        } | self._snapshot  # what the worker sent (the end adds its times to an empty one)
        outputs = [
            {
                "node": node,
                "path": str(relayed.path),
                "content_type": relayed.content_type,
                "size": relayed.size,
                "complete": relayed.complete,
            }
            for node, relayed in self.outputs.items()
        ]
        status = self.status
        moved = max(0, len(self.holders) - 1)  # attempts given up (their workers died or went silent)
        return {
            **base,
            "started_at": self._started_at or base["started_at"],  # the first attempt's start
            "first_output_at": earliest(self._first_output_at, base["first_output_at"]),
            "retries": base["retries"] + moved,
            "status": status,
            "error": self.error,
            "outputs": outputs,
        }

    def cancel(self) -> None:
        """Ask the run to stop, wherever it runs."""
        self._cancel_requested = True
        self._inbox.put_nowait(("cancel", None))

    async def cancel_queued(self) -> None:
        """End a run that was cancelled before it was offered."""
        self.status = "cancelled"
        await self._end()

    async def fail_queued(self, reason: str) -> None:
        """End a run that can never start (it alone exceeds the memory budget), saying why."""
        self.status, self.error = "failed", reason
        await self._end()

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> str:
        """Offer the run, follow it to its end; return the final status. Never raises for a failed run."""
        replies = None
        try:
            self._blobs = BlobStore.shared(self.layer)
            replies = Replies.shared(self.layer)
            self._channel = replies.channel
            replies.register(self.spec.execution, self._inbox)
            self._input = await self._read_input()
            await self._offer()
            await self._follow()
        except (asyncio.CancelledError, RunCancelled):
            self.status = "cancelled"
        except RunFailed as failure:
            self.status, self.error = "failed", str(failure)
            self.unavailable = isinstance(failure, RunUnavailable)
        except TRANSIENT_ERRORS as error:
            self.status, self.error = "failed", unreachable_reason(self.layer, error)
            self.unavailable = True
        except Exception as error:  # a bug of ours: the run fails with the reason, the server lives on
            log.exception("placed run %s failed unexpectedly", self.spec.execution)
            self.status, self.error = "failed", f"internal error: {type(error).__name__}: {error}"
        finally:
            if replies is not None:
                replies.unregister(self.spec.execution, self._inbox)
            await self._end()
        return self.status

    async def _forget_input(self) -> None:
        if self._blobs is None:
            return
        try:
            await self._blobs.delete(*self._input_keys)
        except TRANSIENT_ERRORS as error:  # they expire on their own
            log.warning("execution %s: input pieces not deleted (%s)", self.spec.execution, error)

    async def _read_input(self) -> list[bytes | memoryview]:
        """Return the input's bytes in pieces: held already, still arriving (waited for, not joined), or in its file."""
        spec = self.spec
        if spec.input_data:
            return [spec.input_data]
        if spec.input_stream is not None:
            try:
                return await asyncio.to_thread(spec.input_stream.whole_pieces)
            except UploadBroken as broken:
                raise RunFailed(str(broken)) from broken
        return [await asyncio.to_thread(Path(spec.input_path).read_bytes)]

    async def _offer(self) -> None:
        self.offers += 1
        if self._holder is None:
            self.attempt += 1
        await self._store_input()
        message = {
            "type": events.RUN_OFFER,
            **spec_to_wire(self.spec, self._input_keys),
            "attempt": self.attempt,
            "reply": self._channel,
            "offered": time.time(),
        }
        await send_waiting(self.runs_layer, events.RUNS_CHANNEL, message)
        self._offer_checked = self._offered_at = time.monotonic()
        self._gone_since = None
        if self._unclaimed_since is None:
            self._unclaimed_since = self._offer_checked
            self._absence = roster.Absence(self._blobs, self.no_worker_seconds, now=self._offer_checked)

    async def _store_input(self) -> None:
        """Put the input's pieces into Redis unless they are there (a restart forgets them)."""
        waited, patience = 0.0, default_patience()
        while True:
            try:
                if not self._input_keys or not await self._blobs.exists(*self._input_keys):
                    self._input_keys = await self._blobs.put_many(regrouped(self._input, PIECE), ttl=INPUT_TTL)
                return
            except TRANSIENT_ERRORS:
                if waited >= patience:
                    raise
                await asyncio.sleep(0.5)
                waited += 0.5

    async def _follow(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK):
                    kind, payload = await self._inbox.get()
            except TimeoutError:
                kind, payload = "tick", None
            if kind == "cancel":
                raise RunCancelled()
            if kind == "reconnected":
                await self._recover()
            elif kind == "message":
                if await self._handle(payload):
                    return
            if self._holder is not None and time.monotonic() - self._heard > self.lease_seconds:
                await self._retake()
            elif self._holder is None and time.monotonic() - self._offer_checked >= OFFER_CHECK_SECONDS:
                await self._check_offer()
                await self._check_workers()
                await self._check_taken()

    async def _handle(self, message: dict[str, Any]) -> bool:
        """Handle one message from a worker; return True when the run has ended."""
        kind = message.get("type")
        if kind == events.RUN_CLAIMED:
            await self._claimed(message)
            return False
        if message.get("attempt") != self.attempt:
            await disown(self.layer, message)  # an attempt given up: its drop may have been lost
            return False
        if self._holder is None and message.get("channel"):
            # The worker of this attempt speaks, but its claim never came (lost in a Redis restart).
            await self._claimed({**message, "type": events.RUN_CLAIMED})
        if message.get("channel") != self._holder:
            await disown(self.layer, message)  # a worker whose claim lost
            return False
        if kind == events.RUN_RELEASED:  # its worker stops (the end of a SIGTERM's drain)
            await self._retake("stopped and gave it back")
            return False
        if kind == events.RUN_INPUT_GONE:
            log.warning("execution %s: its input was lost with Redis; offering the run again", self.spec.execution)
            self._holder, self._done = None, None
            await self._offer()  # the input is put again
            return False
        self._heard = time.monotonic()
        if kind == events.RUN_PREPARED:
            self._prepare(message["outputs"])
        elif kind == events.RUN_OUTPUT:
            await self._output(message)
        elif kind == events.RUN_SNAPSHOT:
            await self._snapshot_saved(message["snapshot"])
        elif kind == events.RUN_DONE:
            self._done = message
        return await self._maybe_finished()

    async def _claimed(self, message: dict[str, Any]) -> None:
        worker_channel = message["channel"]
        if message["attempt"] != self.attempt or self._holder is not None:
            await self._send(worker_channel, {"type": events.RUN_DROP, "execution": self.spec.execution})
            return
        self._holder, self._heard = worker_channel, time.monotonic()
        self._unclaimed_since = None
        self.holders.append(message.get("worker", "?"))

    def _prepare(self, outputs: list[list[str]]) -> None:
        if self.outputs:
            return  # a later attempt: the same files, already open here
        for node, name, content_type in outputs:
            self.outputs[node] = RelayedFile(node, Path(self.spec.output_dir) / Path(name).name, content_type)
        self.prepared.set()

    async def _output(self, message: dict[str, Any]) -> None:
        relayed = self.outputs.get(message["node"])
        if relayed is None:
            return
        try:
            data = await self._blobs.take(message["key"])
        except TRANSIENT_ERRORS:
            data = None  # asked for again below, and again once the layer is back
        if data is None or not relayed.write_at(message["offset"], data):
            await self._ask_resend()  # a chunk was lost (Redis restarted): from what we have
            return
        if relayed.size and not self.first_output.is_set():
            self._first_output_at = earliest(self._first_output_at, datetime.now(UTC).isoformat())
            self.first_output.set()

    async def _snapshot_saved(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        self._started_at = self._started_at or snapshot.get("started_at")
        self._first_output_at = earliest(self._first_output_at, snapshot.get("first_output_at"))
        if self.status == "queued":
            self.status = "running"
        for node, entry in snapshot.get("nodes", {}).items():
            for observer in self.observers:
                observer.progress(node, entry["done"], entry["total"])
        if self.recorder is not None:
            try:
                await self.recorder.save(self.snapshot(), final=False)
            except Exception:
                log.exception("execution %s: progress not saved", self.spec.execution)

    async def _maybe_finished(self) -> bool:
        """End the run once the worker said it ended and every output byte is here."""
        done = self._done
        if done is None:
            return False
        self._snapshot = done["snapshot"]
        self._first_output_at = earliest(self._first_output_at, self._snapshot.get("first_output_at"))
        if done["status"] == "succeeded":
            sizes = done["sizes"]
            if any(self.outputs[node].size < size for node, size in sizes.items() if node in self.outputs):
                if not done.get("resend_asked"):
                    done["resend_asked"] = True
                    await self._ask_resend()
                return False
            for relayed in self.outputs.values():
                relayed.finish()
        self.status, self.error = done["status"], done["snapshot"].get("error")
        await self._send(self._holder, {"type": events.RUN_ACK, "execution": self.spec.execution})
        return True

    async def _ask_resend(self) -> None:
        self.resends += 1
        offsets = {node: relayed.size for node, relayed in self.outputs.items()}
        message = {"type": events.RUN_RESEND, "execution": self.spec.execution, "offsets": offsets}
        await self._send(self._holder, message)

    async def _check_offer(self) -> None:
        """While no worker holds the run, make sure its offer can still be taken: Redis keeps its input.

        A Redis restarted empty forgot the offer in the lane along with the input. Its connection
        errors reach only one of this process's receivers (channels_redis shares one receive loop),
        so the run cannot wait to be told: its input's absence tells it.
        """
        self._offer_checked = time.monotonic()
        try:
            present = await self._blobs.exists(*self._input_keys)
        except TRANSIENT_ERRORS:
            return  # Redis is away: checked again once it answers
        if not present:
            log.warning("execution %s: its offer was lost with Redis; offering the run again", self.spec.execution)
            await self._offer()

    async def _check_taken(self) -> None:
        """Offer the run again when its offer left the lane and nobody claimed it (see `LaneContents`).

        A worker that pops an offer claims it within milliseconds: missed on two looks a lease
        apart, the offer is taken to be lost. Should its worker wake up and claim it after all,
        it is told to drop it (a later attempt was offered).
        """
        now = time.monotonic()
        if self._holder is not None or self._cancel_requested or now - self._offered_at < self.lease_seconds:
            return
        try:
            waiting = await LaneContents.shared(self.runs_layer).holds(self.spec.execution, self.attempt)
        except TRANSIENT_ERRORS:
            return  # Redis is away: the offer is checked again once it answers
        if waiting or self._holder is not None:
            self._gone_since = None
            return
        if self._gone_since is None:
            self._gone_since = now
            return
        if now - self._gone_since < self.lease_seconds:
            return
        log.warning(
            "execution %s: its offer left the lane unclaimed (taken by a worker that stopped?); offering it again",
            self.spec.execution,
        )
        await self._offer()

    async def _check_workers(self) -> None:
        """Fail an interactive run nobody took once no worker at all has run for `no_worker_seconds`.

        Its client would wait without an answer; a batch's or a trigger's run waits for a worker instead.
        Busy or draining workers are not a reason: while any beats, the offer waits its turn in the lane,
        and a gap shorter than that (a worker restarted) is waited out too.
        """
        if not self.spec.limits.interactive or self._unclaimed_since is None or self._absence is None:
            return
        now = time.monotonic()
        try:
            empty_for = await self._absence.lasted(now)
        except TRANSIENT_ERRORS:
            return  # Redis is away: its own patience applies
        if empty_for is not None:
            waited = round(now - self._unclaimed_since)
            raise RunUnavailable(
                f"no worker is running: nothing took the run in {waited} s (start one: manage.py runworker)"
            )

    async def _recover(self) -> None:
        """The layer came back (Redis restarted, its queues empty): send again what may be lost, at once."""
        if self._holder is None:
            await self._offer()
            return
        await self._ask_resend()

    async def _retake(self, why: str = "went silent") -> None:
        """The worker went silent for a lease, or gave the run back: offer it again, for another worker to take."""
        worker = self.holders[-1] if self.holders else "?"
        if len(self.holders) >= self.max_attempts:  # offers nobody claimed do not count
            raise RunFailed(
                f"the run was not finished after {len(self.holders)} attempts: its workers stopped answering "
                f"(last: {worker})"
            )
        log.warning("execution %s: worker %s %s; offering the run again", self.spec.execution, worker, why)
        await self._send(self._holder, {"type": events.RUN_DROP, "execution": self.spec.execution})
        self._holder, self._done = None, None
        await self._offer()

    async def _send(self, channel: str | None, message: dict[str, Any]) -> None:
        if channel is None:
            return
        try:
            await self.layer.send(channel, message)
        except TRANSIENT_ERRORS as error:  # repeated: by leases and resends, a drop or cancel by `disown`
            log.warning("execution %s: %s not sent (%s)", self.spec.execution, message["type"], error)
        except Exception as error:  # ChannelFull: a dead worker's channel; its lease moves the run
            log.warning("execution %s: %s not sent (%s)", self.spec.execution, message["type"], error)

    async def _end(self) -> None:
        if self.status != "succeeded":
            for relayed in self.outputs.values():
                relayed.abort(remove=True)
            if self.status == "cancelled":
                await self._send(self._holder, {"type": events.RUN_CANCEL, "execution": self.spec.execution})
        self.prepared.set()
        self.first_output.set()
        snapshot = self.snapshot()
        now = datetime.now(UTC).isoformat()
        snapshot["started_at"] = snapshot["started_at"] or now
        snapshot["finished_at"] = snapshot["finished_at"] or now
        self._snapshot = {**self._snapshot, **{key: snapshot[key] for key in ("started_at", "finished_at")}}
        if self.recorder is not None:
            try:
                await self.recorder.save(snapshot, final=True)
            except Exception:
                log.exception("execution %s: final state not saved", self.spec.execution)
        await self._forget_input()
        publisher = GroupPublisher(self.layer, self.spec.execution)
        for observer in (publisher, *self.observers):
            for node, entry in snapshot.get("nodes", {}).items():
                observer.progress(node, entry["done"], entry["total"])
            await observer.status(self.status, self.error)
        self.finished.set()
