"""Run control: the conductor's inbox, its channel on the layer, cancellation and the ways a run ends.

Everything that reaches a run (results and acknowledgements from workers, a cancel from any server,
bands from the decode thread, news from the output writers) arrives as one event in the inbox, so
the run's state is only ever touched by the conductor's own task.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runtime import events
from runtime.bridge import TRANSIENT_ERRORS
from runtime.reconnect import LayerUnreachable, retry_layer

log = logging.getLogger("tileflow.control")


class RunFailed(Exception):
    """The run cannot succeed; the message is what the user reads, `node` the node it happened at."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class RunUnavailable(RunFailed):
    """The run failed for want of the service (the channel layer, any worker), not for its image or flow."""


class RunCancelled(Exception):
    """Someone asked the run to stop.

    An event, not only Task.cancel(): Python 3.11's wait_for can swallow a cancellation that
    arrives as the awaited result does, and the conductor waits on a busy inbox all the time.
    """


class RunControl:
    """Receive what is sent to one run and queue it, with the run's own events, in one inbox."""

    def __init__(self, layer, execution: str) -> None:
        self.layer = layer
        self.execution = execution
        self.channel = ""
        self.cancel_requested = False
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._receiver: asyncio.Task | None = None

    async def open(self) -> None:
        """Make the run's channel, join its control group and start receiving."""
        group = events.run_control_group(self.execution)
        try:  # a run started while Redis is down waits for it, for a while
            self.channel = await retry_layer(
                lambda: self.layer.new_channel("tileflow.conductor."), layer=self.layer, what="a run's channel"
            )
            await retry_layer(
                lambda: self.layer.group_add(group, self.channel), layer=self.layer, what="a run's control group"
            )
        except LayerUnreachable as unreachable:
            raise RunUnavailable(str(unreachable)) from unreachable
        self._receiver = asyncio.create_task(self._receive())

    async def rejoin(self) -> None:
        """Join (again) the run's control group, so a cancel sent from any server reaches this run."""
        # Redis forgets groups when it restarts without persistence (and after group_expiry): joining
        # with every heartbeat costs one ZADD + EXPIRE and restores the membership within a beat.
        try:
            await self.layer.group_add(events.run_control_group(self.execution), self.channel)
        except TRANSIENT_ERRORS as error:
            log.debug("execution %s: control group not joined (%s)", self.execution, error)

    async def close(self) -> None:
        """Stop receiving and leave the control group (quietly if the layer is unreachable)."""
        if self._receiver is not None and not self._receiver.done():
            self._receiver.cancel()
        try:
            if self.channel:
                await self.layer.group_discard(events.run_control_group(self.execution), self.channel)
        except TRANSIENT_ERRORS:
            pass

    def cancel(self) -> None:
        """Ask the run to stop: it ends as "cancelled" at its next step, within milliseconds."""
        self.cancel_requested = True
        self.post("cancel", None)

    def post(self, kind: str, payload: Any) -> None:
        """Queue an event for the run (from the event loop's thread)."""
        self._inbox.put_nowait((kind, payload))

    async def next_event(self, timeout: float) -> tuple[str, Any] | None:
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
        broken = False
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except TRANSIENT_ERRORS as error:
                log.warning("conductor %s: channel layer unreachable (%s)", self.execution, error)
                broken = True
                await asyncio.sleep(0.2)
                continue
            if broken:  # back after an outage: what was queued in Redis may be gone (a restart empties it)
                broken = False
                self.post("reconnected", None)
            if message.get("type") == events.RUN_CANCEL:
                self.cancel()
                return
            if message.get("execution") == self.execution:
                self.post("result", message)
