"""The websockets of CONTRACT §4 (an execution) and §7 (a batch): a snapshot, progress, the final status.

Each socket outlives the channel layer's hiccups (Redis restarted, paused or briefly gone): a layer
call that fails is retried, the execution's group joined again once the layer answers (Redis forgets
groups when it restarts), and what was published meanwhile is read back from the database, so the
final status is never missed. While no message comes for CATCH_UP_SECONDS, the stored object is
looked at too: a run that ended while its status message could not be delivered is still reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flows.executions import execution_payload
from flows.models import Execution
from runtime import events
from runtime.bridge import TRANSIENT_ERRORS
from runtime.reconnect import LayerUnreachable, retry_layer

log = logging.getLogger("tileflow.consumers")

FINISHED = {status.value for status in Execution.FINISHED}
CATCH_UP_SECONDS = 5.0  # silence after which the stored execution is looked at
JOIN_PATIENCE_SECONDS = 3.0  # a handshake waits this long for the layer, then goes on without it
RETRY_SECONDS = 1.0  # between attempts while the layer is unreachable


@database_sync_to_async
def _owned_payload(user, execution_id: uuid.UUID) -> dict | None:
    execution = Execution.objects.select_related("owner").filter(owner=user, pk=execution_id).first()
    return execution_payload(execution) if execution else None


@database_sync_to_async
def _owned_batch(user, batch_id: uuid.UUID) -> dict | None:
    from flows.batches import batch_payload
    from flows.models import Batch

    batch = Batch.objects.filter(owner=user, pk=batch_id).first()
    return batch_payload(batch) if batch else None


class LayerFollower(AsyncJsonWebsocketConsumer):
    """A socket that follows one group of the channel layer through the layer's faults.

    Subclasses join with `join_group` before reading their snapshot, call `following()` once it is
    sent, and implement `catch_up()`: send what the stored object shows beyond what was sent.
    """

    group = ""
    ended = False
    _rejoin = False
    _following = False
    _caught_up = 0.0

    # Channels' consumer sets `channel_receive` once and awaits it for every layer message; a broken
    # connection there would end the socket with 1011. The setter keeps Channels' call, the getter
    # gives Channels one that retries and catches up instead.
    @property
    def channel_receive(self):
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, receive) -> None:
        self._layer_receive = receive

    async def join_group(self, group: str) -> None:
        """Join `group`, waiting a little for the layer; without it, follow from the database meanwhile."""
        self.group = group
        try:
            await retry_layer(self._join, layer=self.channel_layer, patience=JOIN_PATIENCE_SECONDS, what="joining")
        except LayerUnreachable as unreachable:
            log.warning("websocket of %s: %s; following it from the database", group, unreachable)
            self._rejoin = True

    def following(self) -> None:
        """The snapshot is sent: from now on a catch-up may send what follows it."""
        self._following = True

    async def catch_up(self) -> None:
        raise NotImplementedError

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self._leave()

    async def _join(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def _leave(self) -> None:
        try:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        except TRANSIENT_ERRORS as error:  # the layer forgets the membership by itself (group expiry)
            log.debug("websocket left %s without the layer: %s", self.group, error)

    async def _receive_from_layer(self) -> dict:
        """Return the next message for this socket from the layer, however long the layer is away."""
        while True:
            if self._rejoin and self.group and not self.ended:
                try:
                    await self._join()
                except TRANSIENT_ERRORS:
                    await self._catch_up_soon()
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self._rejoin = False
                log.info("websocket of %s rejoined its group", self.group)
                await self._catch_up()  # what was published while the layer was away
            receiving = asyncio.ensure_future(self._layer_receive())
            try:
                while True:
                    done, _ = await asyncio.wait({receiving}, timeout=CATCH_UP_SECONDS)
                    if done:
                        return receiving.result()
                    await self._catch_up()  # silence: a paused layer, or a status that was lost
            except TRANSIENT_ERRORS as error:
                if not self._rejoin:
                    log.warning("websocket of %s: channel layer unreachable (%s); retrying", self.group, error)
                self._rejoin = True
                await self._catch_up_soon()
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                if not receiving.done():
                    receiving.cancel()

    async def _catch_up_soon(self) -> None:
        """Catch up from the database at most every CATCH_UP_SECONDS while the layer fails."""
        if time.monotonic() - self._caught_up >= CATCH_UP_SECONDS:
            await self._catch_up()

    async def _catch_up(self) -> None:
        self._caught_up = time.monotonic()
        if self._following and not self.ended:
            await self.catch_up()


class ExecutionConsumer(LayerFollower):
    """Authenticate, join the execution's group, and forward what the conductor publishes."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        execution_id = self.scope["url_route"]["kwargs"]["execution_id"]
        self.done: dict[str, int] = {}
        # Join before reading the snapshot: nothing published in between is missed.
        await self.join_group(events.execution_group(str(execution_id)))
        snapshot = await _owned_payload(user, execution_id)
        if snapshot is None:
            await self._leave()
            self.group = ""
            await self.close()
            return
        await self.accept()
        self.done = {node: entry["done"] for node, entry in snapshot["nodes"].items()}
        await self.send_json({"type": "snapshot", "execution": snapshot})
        self.following()
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"], snapshot["error"])

    async def execution_progress(self, event: dict) -> None:
        await self._progress(event["node"], event["done"], event["total"])

    async def execution_status(self, event: dict) -> None:
        if not self.ended:
            await self._end(event["status"], event["error"])

    async def catch_up(self) -> None:
        """Send what the stored execution shows beyond what this socket sent: counts, and its end."""
        snapshot = await _owned_payload(self.scope["user"], self.scope["url_route"]["kwargs"]["execution_id"])
        if snapshot is None:
            return
        for node, entry in snapshot["nodes"].items():
            if entry["done"] > self.done.get(node, 0):
                await self._progress(node, entry["done"], entry["total"])
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"], snapshot["error"])

    async def _progress(self, node: str, done: int, total: int) -> None:
        if self.ended or done < self.done.get(node, 0):
            return
        self.done[node] = done
        await self.send_json({"type": "progress", "node": node, "done": done, "total": total})

    async def _end(self, status: str, error: str | None) -> None:
        self.ended = True
        await self.send_json({"type": "status", "status": status, "error": error})
        await self.close()


class BatchConsumer(LayerFollower):
    """The batch websocket of CONTRACT §7: a snapshot, counts that never decrease, the final status."""

    COUNTS = ("succeeded", "failed", "cancelled")

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        batch_id = self.scope["url_route"]["kwargs"]["batch_id"]
        await self.join_group(events.batch_group(str(batch_id)))
        snapshot = await _owned_batch(user, batch_id)
        if snapshot is None:
            await self._leave()
            self.group = ""
            await self.close()
            return
        await self.accept()
        self.counts = {key: snapshot[key] for key in self.COUNTS}
        await self.send_json({"type": "snapshot", "batch": snapshot})
        self.following()
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"])

    async def batch_progress(self, event: dict) -> None:
        if self.ended:
            return
        counts = {key: max(self.counts[key], event[key]) for key in self.COUNTS}
        if counts == self.counts and not event.get("final"):
            return
        self.counts = counts
        await self.send_json({"type": "progress", **counts, "total": event["total"]})

    async def batch_status(self, event: dict) -> None:
        if not self.ended:
            await self._end(event["status"])

    async def catch_up(self) -> None:
        """Send the stored batch's counts beyond what this socket sent, and its end."""
        snapshot = await _owned_batch(self.scope["user"], self.scope["url_route"]["kwargs"]["batch_id"])
        if snapshot is None:
            return
        await self.batch_progress({**{key: snapshot[key] for key in self.COUNTS}, "total": snapshot["total"]})
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"])

    async def _end(self, status: str) -> None:
        self.ended = True
        await self.send_json({"type": "status", "status": status})
        await self.close()
