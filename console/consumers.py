"""The execution websocket of CONTRACT §4: a snapshot first, then progress, then the final status."""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flows.executions import execution_payload
from flows.models import Execution
from runtime import events

FINISHED = {status.value for status in Execution.FINISHED}


@database_sync_to_async
def _owned_payload(user, execution_id: uuid.UUID) -> dict | None:
    execution = Execution.objects.select_related("owner").filter(owner=user, pk=execution_id).first()
    return execution_payload(execution) if execution else None


class ExecutionConsumer(AsyncJsonWebsocketConsumer):
    """Authenticate, join the execution's group, and forward what the conductor publishes."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        execution_id = self.scope["url_route"]["kwargs"]["execution_id"]
        self.group = events.execution_group(str(execution_id))
        self.done: dict[str, int] = {}
        self.ended = False
        # Join before reading the snapshot: nothing published in between is missed.
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await _owned_payload(user, execution_id)
        if snapshot is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close()
            return
        await self.accept()
        self.done = {node: entry["done"] for node, entry in snapshot["nodes"].items()}
        await self.send_json({"type": "snapshot", "execution": snapshot})
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"], snapshot["error"])

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def execution_progress(self, event: dict) -> None:
        if self.ended or event["done"] < self.done.get(event["node"], 0):
            return
        self.done[event["node"]] = event["done"]
        await self.send_json(
            {"type": "progress", "node": event["node"], "done": event["done"], "total": event["total"]}
        )

    async def execution_status(self, event: dict) -> None:
        if not self.ended:
            await self._end(event["status"], event["error"])

    async def _end(self, status: str, error: str | None) -> None:
        self.ended = True
        await self.send_json({"type": "status", "status": status, "error": error})
        await self.close()


@database_sync_to_async
def _owned_batch(user, batch_id: uuid.UUID) -> dict | None:
    from flows.batches import batch_payload
    from flows.models import Batch

    batch = Batch.objects.filter(owner=user, pk=batch_id).first()
    return batch_payload(batch) if batch else None


class BatchConsumer(AsyncJsonWebsocketConsumer):
    """The batch websocket of CONTRACT §7: a snapshot, counts that never decrease, the final status."""

    COUNTS = ("succeeded", "failed", "cancelled")

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        batch_id = self.scope["url_route"]["kwargs"]["batch_id"]
        self.group = events.batch_group(str(batch_id))
        self.ended = False
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await _owned_batch(user, batch_id)
        if snapshot is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.close()
            return
        await self.accept()
        self.counts = {key: snapshot[key] for key in self.COUNTS}
        await self.send_json({"type": "snapshot", "batch": snapshot})
        if snapshot["status"] in FINISHED:
            await self._end(snapshot["status"])

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

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

    async def _end(self, status: str) -> None:
        self.ended = True
        await self.send_json({"type": "status", "status": status})
        await self.close()
