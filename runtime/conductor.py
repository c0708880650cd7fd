"""The conductor: one per execution, in the process where the run started. It ties the run's parts.

`SourceReader` decodes the input band by band into the source store; `Dispatcher` sends each task
to its lane once the region it reads is present and leases it; results come back through
`RunControl`'s inbox, go into the next store and to `OutputAssembly`, which feeds the encoders;
`RunRecord` counts everything and saves it. All of the run's state is touched only from the
conductor's own task: decoding and encoding run in threads and report back through the inbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from runtime import events
from runtime.assembly import OutputAssembly, assemble_tile
from runtime.bridge import LOCAL, is_local, tile_from_wire
from runtime.colour import working_space
from runtime.control import RunCancelled, RunControl, RunFailed, RunUnavailable
from runtime.decode import SourceHeader
from runtime.dispatch import Dispatcher
from runtime.outputs import OutputWriter
from runtime.plan import Plan, compile_plan
from runtime.progress import RunObserver
from runtime.reading import SourceReader
from runtime.reconnect import LAYER_ERRORS, unreachable_reason
from runtime.recording import RunRecord
from runtime.registry import ImageInfo
from runtime.spec import RunLimits, RunRecorder, RunSpec
from runtime.steps.source import shrink_on_load, shrunk_size
from runtime.store import TileStore

__all__ = ["Conductor", "RunFailed", "RunLimits", "RunRecorder", "RunSpec"]

log = logging.getLogger("tileflow.conductor")


class Conductor:
    def __init__(
        self, spec: RunSpec, layer, *, recorder: RunRecorder | None = None, observers: tuple[RunObserver, ...] = ()
    ) -> None:
        self.spec = spec
        self.layer = layer
        self.record = RunRecord(spec.execution, recorder=recorder, observers=observers)
        self.control = RunControl(layer, spec.execution)
        self.reader = SourceReader(spec, self.control.post, _source_id(spec.graph))
        self.plan: Plan | None = None
        self.prepared = asyncio.Event()  # set once outputs exist, or the run ended before that
        self.finished = asyncio.Event()
        self._stores: dict[str, TileStore] = {}
        self._dispatcher: Dispatcher | None = None
        self._assembly: OutputAssembly | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self.unavailable = False  # it failed for want of the channel layer, not for its input or flow

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def error(self) -> str | None:
        return self.record.error

    @property
    def outputs(self) -> dict[str, OutputWriter]:
        return self.record.outputs

    @property
    def first_output(self) -> asyncio.Event:
        """Set with the first output band, or when the run ends."""
        return self.record.first_output

    def snapshot(self) -> dict[str, Any]:
        """Return the run's state as plain data (what the recorder saves and the API shows)."""
        return self.record.snapshot()

    def cancel(self) -> None:
        """Ask the run to stop: it ends as "cancelled" at its next step, within milliseconds."""
        self.control.cancel()

    async def run(self) -> str:
        """Run to the end; return the final status. Never raises for a failed or cancelled run."""
        record = self.record
        record.begin()
        try:
            await self.control.open()
            record.save_started_soon(with_first_band=self.spec.limits.interactive)
            self._heartbeat_task = asyncio.create_task(self._heartbeat())
            await self._prepare()
            await self._drive()
            record.status = "succeeded"
        except (asyncio.CancelledError, RunCancelled):
            record.status = "cancelled"
        except RunFailed as failure:
            record.status, record.error = "failed", str(failure)
            self.unavailable = isinstance(failure, RunUnavailable)
            if failure.node is not None:
                record.failed_at(failure.node)
        except LAYER_ERRORS as error:  # the layer stayed unreachable past every retry (Redis is down)
            log.warning("execution %s failed: %s", self.spec.execution, error)
            record.status, record.error = "failed", unreachable_reason(self.layer, error)
            self.unavailable = True
        except Exception as error:  # a bug of ours: the run fails with the reason, the server lives on
            log.exception("execution %s failed unexpectedly", self.spec.execution)
            record.status, record.error = "failed", f"internal error: {type(error).__name__}: {error}"
        finally:
            await self._close()
        return record.status

    async def cancel_queued(self) -> None:
        """End a run that was cancelled before it started (still waiting for a slot)."""
        self.record.status = "cancelled"
        await self._close()

    async def fail_queued(self, reason: str) -> None:
        """End a run that can never start (it alone exceeds the memory budget), saying why."""
        self.record.status, self.record.error = "failed", reason
        await self._close()

    async def _prepare(self) -> None:
        header = await self.reader.probe()
        self.record.input = {
            "width": header.size.width,
            "height": header.size.height,
            "format": header.format,
            "mode": header.mode,
        }
        plan, shrink = self._compile(header)
        self.plan = plan
        self.record.plan(plan.order, plan.totals)
        limits = self.spec.limits
        # The stores cut the plan's own grid.
        self._stores = {
            node: TileStore(node, plan.nodes[node].output, plan.tile_size, plan.short_rows) for node in plan.stores
        }
        codec = LOCAL if is_local(self.layer) else None  # in-process workers take tiles as objects
        self._dispatcher = Dispatcher(
            self.spec.execution, plan, self._stores, limits, self.layer, self.record, codec=codec
        )
        # The colour space the run works in (runtime.colour): decided by the source's profile and the outputs.
        space = working_space(self.spec.graph, header.icc_profile, header.source_mode, header.mode)
        self._assembly = OutputAssembly(
            self.spec, plan, self._stores, self.record, self.control.post, source=header, space=space
        )
        # A large target's rows go back once every task read them (runtime.targets), unless an encoder reads them too.
        give_back = plan.read_by_tasks_only(plan.source)
        await self.reader.open(header, self._stores[plan.source], shrink, space, give_back=give_back)
        self.prepared.set()

    def _compile(self, header: SourceHeader) -> tuple[Plan, int]:
        try:
            # Shrink-on-load (asked for per flow) needs the streaming JPEG decoder.
            shrink, graph = shrink_on_load(self.spec.graph, header.size) if header.streamable else (1, self.spec.graph)
            source_info = ImageInfo(shrunk_size(header.size, shrink), header.mode)
            tile_size, short_rows = self.spec.limits.grid(source_info.size)
            plan = compile_plan(graph, source_info, tile_size=tile_size, short_rows=short_rows)
            return plan, shrink
        except ValueError as error:
            raise RunFailed(str(error), getattr(error, "node", None)) from error

    async def _drive(self) -> None:
        dispatcher, assembly, control = self._dispatcher, self._assembly, self.control
        tick = max(0.05, min(1.0, self.spec.limits.lease_seconds / 4))
        last_lease_check = time.monotonic()
        while not assembly.complete:
            if control.cancel_requested:
                raise RunCancelled()
            self.reader.pull(ready=dispatcher.ready, busy=bool(dispatcher.in_flight) or assembly.busy)
            await dispatcher.dispatch(control.channel)
            event = await control.next_event(tick)
            if event is not None:
                await self._handle(*event)
            if time.monotonic() - last_lease_check >= tick:
                last_lease_check = time.monotonic()
                await dispatcher.renew()

    async def _handle(self, kind: str, payload: Any) -> None:
        if kind == "reconnected":
            await self._dispatcher.resend_all()  # lost with Redis' queues, perhaps: not a lease later
            return
        self._handle_event(kind, payload)

    def _handle_event(self, kind: str, payload: Any) -> None:
        if kind == "result":
            if payload["type"] == events.TILE_FAILED:
                raise RunFailed(f"node '{payload['node']}' failed: {payload['error']}", payload["node"])
            if payload["type"] == events.TILE_TAKEN:
                self._dispatcher.taken(payload)
            else:
                self._task_done(payload)
        elif kind == "band":
            self.reader.received()
            self._source_band(payload)
        elif kind == "decoded":
            self.reader.received()
            self.record.decode_finished(self.plan.source, self._stores[self.plan.source].count)
        elif kind == "cancel":
            raise RunCancelled()
        elif kind == "failed":
            raise payload
        # "output": an output feed moved on; the loop condition looks at it

    def _source_band(self, pieces: list) -> None:
        store = self._stores[self.plan.source]
        added = [index for index, tile in pieces if store.put(index, tile)]
        self.record.decoded(store.node, len(added))
        self._arrived(store, added)

    def _task_done(self, message: dict[str, Any]) -> None:
        task = self._dispatcher.done(message)
        if task is None:
            return  # a duplicate
        chain = self.plan.segments[task.segment].chain
        last = chain[-1]
        tiles = [tile_from_wire(values) for values in message["tiles"]]
        tile = assemble_tile(last, self.plan.nodes[last].output.mode, task.out_box, tiles)
        self.record.chain_done(chain, message["busy"], message["started"], str(message.get("worker", "?")))
        store = self._stores[last]
        if store.put(task.index, tile):
            self._arrived(store, [task.index])

    def _arrived(self, store: TileStore, indexes: list[int]) -> None:
        self._dispatcher.arrived(store, indexes)
        self._assembly.arrived(store)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.spec.limits.heartbeat_seconds)
            await self.control.rejoin()
            await self.record.save(final=False)

    async def _close(self) -> None:
        record = self.record
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        record.end()
        if self._assembly is not None:
            self._assembly.stop(remove=record.status != "succeeded")
        self.reader.close()
        self.prepared.set()
        await self.control.close()
        await record.save(final=True)
        await record.publish_final()
        self.finished.set()


def _source_id(graph: dict[str, Any]) -> str | None:
    return next((node["id"] for node in graph.get("nodes", []) if node.get("type") == "source"), None)
