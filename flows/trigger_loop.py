"""The trigger loop: one active poller per trigger across every process, by a lease in the database.

Each process running the loop (the embedded server, `manage.py runtriggers`) renews the leases it
holds and takes free ones: a trigger nobody holds, whose lease ran out, or whose holder on this host
has died. For each trigger it holds it runs a `TriggerWorker` in a task of its event loop, the same
loop its runs' conductors live on. A paused or deleted trigger's lease is let go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from flows.executions import _runner_gone as runner_gone  # the sweeper's test of a host:pid
from flows.models import Trigger
from flows.triggers import TriggerWorker

log = logging.getLogger("tileflow.triggers")


def _holder_gone(holder: str) -> bool:
    """Tell whether a lease holder named host:pid:nonce on this host is no longer alive."""
    host, pid, _ = [*holder.split(":"), "", ""][:3]
    if host == socket.gethostname() and pid == str(os.getpid()):
        return holder not in TriggerLoop.live_holders  # a loop of this process that has stopped
    return runner_gone(f"{host}:{pid}")


class TriggerLoop:
    """Hold leases and run the workers of the triggers this process holds."""

    live_holders: set[str] = set()  # the loops of this process, so a dead one's leases can be taken at once

    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers: dict[uuid.UUID, asyncio.Task] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Look after leases every poll interval until `stop`; then let every lease go."""
        TriggerLoop.live_holders.add(self.holder)
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
                        await self.stopping.wait()
                except TimeoutError:
                    pass
        finally:
            TriggerLoop.live_holders.discard(self.holder)
            for task in self.workers.values():
                task.cancel()
            await asyncio.gather(*self.workers.values(), return_exceptions=True)
            await sync_to_async(self.release, thread_sensitive=False)()

    def stop(self) -> None:
        self.stopping.set()

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
        worker = TriggerWorker(trigger_id)
        poll = settings.TILEFLOW["TRIGGER_POLL_SECONDS"]
        while True:
            try:
                if not await worker.cycle():
                    return
            except Exception as error:  # a bug or a database hiccup: say so, keep the lease, look again
                log.exception("trigger %s: a look at its source failed", trigger_id)
                await Trigger.objects.filter(pk=trigger_id).aupdate(last_error=f"internal error: {error}")
            await asyncio.sleep(poll)


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
