"""The trigger loop: one active poller per trigger across every process, by a lease in the database.

Each process running the loop (the embedded server, `manage.py runtriggers`) renews the leases it
holds and takes free ones: a trigger nobody holds, whose lease ran out, or whose holder on this host
has died. For each trigger it holds it runs a `TriggerWorker` in a task of its event loop, the same
loop its runs' conductors live on. A paused or deleted trigger's lease is let go.

Between scans a worker rests for the poll interval, unless objects are announced or one of its runs
ends. An S3 event notification records objects as pending and wakes the worker that holds the trigger
(at once in this process, `wake`; within `NOTIFIED_CHECK_SECONDS` in another, which finds the new
pending rows in the database); a run that ends wakes its own worker, whose runs are all in this
process. Woken, the worker starts pending objects up to its run limit without waiting for its next
scan: a folder of many files runs as fast as its runs end, not a few files per poll interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
import uuid
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from flows.executions import _runner_gone as runner_gone  # the sweeper's test of a host:pid
from flows.models import Trigger, TriggerEvent
from flows.triggers import TriggerWorker

log = logging.getLogger("tileflow.triggers")

NOTIFIED_CHECK_SECONDS = 0.5  # how often a loop looks for objects announced to another process
NOTIFIED_OVERLAP = timedelta(seconds=1)  # rows committed just after a look are found by the next one


def wake(trigger_id) -> None:
    """Tell this process's loops that a trigger has new pending objects (any thread may call it)."""
    for loop in list(TriggerLoop.running):
        loop.wake(trigger_id)


def reconsider() -> None:
    """Have this process's loops look at the leases now: a trigger was created, paused or resumed."""
    for loop in list(TriggerLoop.running):
        loop.reconsider()


def _holder_gone(holder: str) -> bool:
    """Tell whether a lease holder named host:pid:nonce on this host is no longer alive."""
    host, pid, _ = [*holder.split(":"), "", ""][:3]
    if host == socket.gethostname() and pid == str(os.getpid()):
        return holder not in TriggerLoop.live_holders  # a loop of this process that has stopped
    return runner_gone(f"{host}:{pid}")


class TriggerLoop:
    """Hold leases and run the workers of the triggers this process holds."""

    live_holders: set[str] = set()  # the loops of this process, so a dead one's leases can be taken at once
    running: set[TriggerLoop] = set()  # the loops of this process that `wake` reaches

    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers: dict[uuid.UUID, asyncio.Task] = {}
        self.wakes: dict[uuid.UUID, asyncio.Event] = {}  # set when a held trigger's objects are announced
        self.stopping = asyncio.Event()
        self._nudged = asyncio.Event()  # stop, or look at the leases before the poll interval is over
        self._loop: asyncio.AbstractEventLoop | None = None

    def reconsider(self) -> None:
        """Look at the leases at once (thread-safe)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._nudged.set)

    def wake(self, trigger_id) -> None:
        """Wake the worker of `trigger_id` if this loop holds it (thread-safe)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, trigger_id)

    def _wake(self, trigger_id) -> None:
        event = self.wakes.get(trigger_id if isinstance(trigger_id, uuid.UUID) else uuid.UUID(str(trigger_id)))
        if event is not None:
            event.set()

    async def run(self) -> None:
        """Look after leases every poll interval until `stop`; then let every lease go."""
        TriggerLoop.live_holders.add(self.holder)
        self._loop = asyncio.get_running_loop()
        TriggerLoop.running.add(self)
        watcher = asyncio.create_task(self._watch_announced(), name="tileflow-triggers-announced")
        poll = settings.TILEFLOW["TRIGGER_POLL_SECONDS"]
        try:
            while not self.stopping.is_set():
                try:
                    held = await sync_to_async(self.hold_leases, thread_sensitive=False)()
                    self.follow(held)
                except Exception:
                    log.exception("the trigger loop could not renew its leases")
                try:
                    async with asyncio.timeout(poll):
                        await self._nudged.wait()
                except TimeoutError:
                    pass
                self._nudged.clear()
        finally:
            TriggerLoop.running.discard(self)
            TriggerLoop.live_holders.discard(self.holder)
            watcher.cancel()
            for task in self.workers.values():
                task.cancel()
            await asyncio.gather(*self.workers.values(), return_exceptions=True)
            await sync_to_async(self.release, thread_sensitive=False)()

    def stop(self) -> None:
        self.stopping.set()
        self._nudged.set()

    def hold_leases(self) -> set[uuid.UUID]:
        """Renew this process's leases, take free ones, drop paused ones; return the triggers held.

        Only what changes is written (a renewal once half the lease is gone), each write a
        compare-and-set on the holder seen, so two processes never both take a trigger, and an
        idle server does not take SQLite's write lock every poll.
        """
        close_old_connections()
        now = timezone.now()
        lease = timedelta(seconds=settings.TILEFLOW["TRIGGER_LEASE_SECONDS"])
        renew_before = lease / 2 + timedelta(seconds=settings.TILEFLOW["TRIGGER_POLL_SECONDS"])
        held = set()
        rows = Trigger.objects.values_list("pk", "enabled", "lease_owner", "lease_expires_at")
        for pk, enabled, holder, expires in rows:
            seen = Trigger.objects.filter(pk=pk, lease_owner=holder, lease_expires_at=expires)
            if holder == self.holder:
                if not enabled:
                    seen.update(lease_owner="", lease_expires_at=None)
                elif expires is not None and expires - now > renew_before:
                    held.add(pk)
                elif seen.update(lease_expires_at=now + lease):
                    held.add(pk)
            elif enabled and (not holder or expires is None or expires < now or _holder_gone(holder)):
                if seen.update(lease_owner=self.holder, lease_expires_at=now + lease):
                    held.add(pk)
        return held

    def release(self) -> None:
        Trigger.objects.filter(lease_owner=self.holder).update(lease_owner="", lease_expires_at=None)
        close_old_connections()

    def follow(self, held: set[uuid.UUID]) -> None:
        """Start a worker for each trigger newly held; stop those of triggers no longer held."""
        for pk in list(self.workers):
            if pk not in held or self.workers[pk].done():
                self.workers.pop(pk).cancel()
        for pk in held - set(self.workers):
            self.workers[pk] = asyncio.create_task(self.work(pk), name=f"trigger-{pk}")

    async def work(self, trigger_id: uuid.UUID) -> None:
        woken = self.wakes.setdefault(trigger_id, asyncio.Event())
        worker = TriggerWorker(trigger_id, run_ended=woken.set)
        poll = settings.TILEFLOW["TRIGGER_POLL_SECONDS"]
        try:
            while True:
                woken.clear()  # a scan starts what was announced before it
                if not await self._attempt(trigger_id, worker.cycle):
                    return
                next_scan = time.monotonic() + poll
                while (left := next_scan - time.monotonic()) > 0:
                    try:
                        async with asyncio.timeout(left):
                            await woken.wait()
                    except TimeoutError:
                        break
                    woken.clear()
                    if not await self._attempt(trigger_id, worker.start_announced):
                        return
        finally:
            if self.wakes.get(trigger_id) is woken:
                del self.wakes[trigger_id]

    @staticmethod
    async def _attempt(trigger_id: uuid.UUID, step) -> bool:
        """Run one of a worker's steps; False when the trigger is gone or paused."""
        try:
            return await step()
        except Exception as error:  # a bug or a database hiccup: say so, keep the lease, look again
            log.exception("trigger %s: a look at its source failed", trigger_id)
            await Trigger.objects.filter(pk=trigger_id).aupdate(last_error=f"internal error: {error}")
            return True

    async def _watch_announced(self) -> None:
        """Wake the workers of held triggers whose objects another process recorded (S3 notifications)."""
        since = timezone.now()
        while True:
            await asyncio.sleep(NOTIFIED_CHECK_SECONDS)
            held = [pk for pk, task in self.workers.items() if not task.done()]
            now = timezone.now()
            if held:
                try:
                    announced = await sync_to_async(self._announced, thread_sensitive=False)(held, since)
                except Exception:
                    log.exception("the trigger loop could not look for announced objects")
                    continue
                for pk in announced:
                    self._wake(pk)
            since = now - NOTIFIED_OVERLAP

    @staticmethod
    def _announced(held: list[uuid.UUID], since) -> set[uuid.UUID]:
        rows = TriggerEvent.objects.filter(
            trigger_id__in=held, status=TriggerEvent.Status.PENDING, seen_at__gt=since, execution__isnull=True
        )
        found = set(rows.values_list("trigger_id", flat=True).distinct())
        close_old_connections()
        return found


_embedded: TriggerLoop | None = None


def ensure_trigger_loop() -> TriggerLoop | None:
    """Start the embedded trigger loop on the running event loop, once per process."""
    global _embedded
    if not settings.TILEFLOW["EMBEDDED_TRIGGERS"]:
        return None
    if _embedded is None:
        _embedded = TriggerLoop()
        asyncio.get_running_loop().create_task(_embedded.run(), name="tileflow-triggers")
    return _embedded


def start_embedded_triggers() -> None:
    """Run the trigger loop on Daphne's event loop once it runs (Daphne has no lifespan events)."""
    server = sys.modules.get("daphne.server")
    if server is not None and settings.TILEFLOW["EMBEDDED_TRIGGERS"]:
        server.twisted_loop.call_soon_threadsafe(ensure_trigger_loop)
