"""Recording a run: exact counts and busy times per node, the snapshot, and when it is saved.

The conductor and its parts report here what happened (tiles decoded, chains done, bands written);
observers (the websocket publisher) hear every count, the recorder (the database) gets snapshots:
"running" with the first band, one every heartbeat, and the final one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.control import RunFailed
from runtime.outputs import OutputWriter
from runtime.progress import RunObserver
from runtime.spec import RunRecorder

log = logging.getLogger("tileflow.recording")

TIMELINE_LIMIT = 5000  # entries kept per node; counts and busy times stay exact beyond it
STARTED_SAVE_DELAY = 0.2  # seconds: "running" is saved with the first band, or after this at the latest


@dataclass(slots=True)
class NodeState:
    total: int = 0
    done: int = 0
    busy: float = 0.0
    started: float | None = None
    finished: float | None = None
    failed: bool = False
    timeline: list[list[int]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.total and self.done >= self.total:
            return "done"
        return "running" if self.started is not None else "pending"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class RunRecord:
    """What one run did so far, told to observers as it happens and saved by the recorder."""

    def __init__(
        self, execution: str, *, recorder: RunRecorder | None = None, observers: tuple[RunObserver, ...] = ()
    ) -> None:
        self.execution = execution
        self.recorder = recorder
        self.observers = observers
        self.status = "queued"
        self.error: str | None = None
        self.started_at: datetime | None = None
        self.first_output_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.retries = 0
        self.duplicates = 0
        self.acknowledged = 0  # tile.taken messages received: the cost of leases counted from the start
        self.workers: dict[str, int] = {}  # tiles done per worker (host:pid), duplicates not counted
        self.input: dict[str, Any] = {}
        self.nodes: dict[str, NodeState] = {}
        self.outputs: dict[str, OutputWriter] = {}
        self.first_output = asyncio.Event()  # set with the first output band, or when the run ends
        self._started_saved = False
        self._background: set[asyncio.Task] = set()
        self._t0 = time.time()

    # -- what happened --------------------------------------------------------------------------

    def begin(self) -> None:
        self._t0 = time.time()
        self.started_at = _now()
        self.status = "running"

    def plan(self, order: Iterable[str], totals: dict[str, int]) -> None:
        self.nodes = {node: NodeState(total=totals.get(node, 0)) for node in order}

    def starting(self, nodes: Iterable[str]) -> None:
        """Note that work for `nodes` went out (a node's start is its first task's send)."""
        now = time.time()
        for node in nodes:
            if self.nodes[node].started is None:
                self.nodes[node].started = now

    def decoded(self, node: str, tiles: int) -> None:
        state = self.nodes[node]
        if state.started is None:
            state.started = time.time()
        state.done += tiles
        self.progress(node)

    def decode_finished(self, node: str, expected: int) -> None:
        """Check that the source delivered every tile; raise RunFailed for a truncated image."""
        done = self.nodes[node].done
        if done < expected:
            raise RunFailed(f"the image ended early: {done} of {expected} tiles decoded (is the file truncated?)", node)
        self.nodes[node].finished = time.time()

    def chain_done(self, chain: Iterable[str], busy: dict[str, float], started: float, worker: str) -> None:
        """Count one task's tile for every step of its chain, with the worker's busy times."""
        self.workers[worker] = self.workers.get(worker, 0) + 1
        offset = started
        for node in chain:
            seconds = float(busy.get(node, 0.0))
            state = self.nodes[node]
            state.done += 1
            state.busy += seconds
            start_ms = self._ms(offset)
            self._timeline(state, start_ms, start_ms + max(1, int(seconds * 1000)))
            offset += seconds
            if state.done >= state.total:
                state.finished = time.time()
            self.progress(node)

    def band_written(self, node: str, tiles: int, started: float) -> None:
        """Count an output band encoded and written between `started` and now."""
        state, finished = self.nodes[node], time.time()
        if state.started is None:
            state.started = started
        state.done += tiles
        state.busy += finished - started
        self._timeline(state, self._ms(started), self._ms(finished))
        self.progress(node)
        if self.first_output_at is None:
            self.first_output_at = _now()
            self.first_output.set()
            if self._started_saved:  # else the pending first save records it
                self._spawn(self.save(final=False))

    def output_finished(self, node: str) -> None:
        self.nodes[node].finished = time.time()

    def failed_at(self, node: str) -> None:
        self.nodes.setdefault(node, NodeState()).failed = True

    def end(self) -> None:
        self.finished_at = _now()
        self.first_output.set()
        for task in list(self._background):
            task.cancel()

    def progress(self, node: str) -> None:
        state = self.nodes[node]
        for observer in self.observers:
            observer.progress(node, state.done, state.total)

    async def publish_final(self) -> None:
        """Tell every observer each node's final count, then the final status."""
        for observer in self.observers:
            for name, state in self.nodes.items():
                observer.progress(name, state.done, state.total)
            await observer.status(self.status, self.error)

    def _ms(self, moment: float) -> int:
        return int((moment - self._t0) * 1000)

    @staticmethod
    def _timeline(state: NodeState, start_ms: int, end_ms: int) -> None:
        if len(state.timeline) < TIMELINE_LIMIT:
            state.timeline.append([start_ms, end_ms])

    # -- saving ---------------------------------------------------------------------------------

    def save_started_soon(self, *, with_first_band: bool = True) -> None:
        self._spawn(self._save_started(with_first_band))

    async def _save_started(self, with_first_band: bool) -> None:
        """Save "running" once the first band is out, or after STARTED_SAVE_DELAY if it takes longer.

        The save is a database write in a thread, mostly Python: made at once it competed with the
        first band for the GIL and the cores (first byte of /run, A/B with the input's deferred
        store: 62 -> 51 ms). Without `with_first_band` (a run nobody watches) only the delay counts:
        a run that ends before it is saved once, when it ends (`end` cancels this), which spares a
        2 MP batch item one of its two saves.
        """
        try:
            async with asyncio.timeout(STARTED_SAVE_DELAY):
                await (self.first_output.wait() if with_first_band else asyncio.Event().wait())
        except TimeoutError:
            pass
        self._started_saved = True
        await self.save(final=False)

    async def save(self, *, final: bool) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.save(self.snapshot(), final=final)
        except Exception:
            log.exception("execution %s: progress not saved", self.execution)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def snapshot(self) -> dict[str, Any]:
        """Return the run's state as plain data (what the recorder saves and the API shows)."""

        def ms(moment: float | None) -> int | None:
            return None if moment is None else self._ms(moment)

        return {
            "status": self.status,
            "error": self.error,
            "started_at": _iso(self.started_at),
            "first_output_at": _iso(self.first_output_at),
            "finished_at": _iso(self.finished_at),
            "retries": self.retries,
            "duplicates": self.duplicates,
            "workers": dict(self.workers),
            "input": self.input,
            "nodes": {
                name: {
                    "status": state.status,
                    "done": state.done,
                    "total": state.total,
                    "busy_ms": int(state.busy * 1000),
                    "started_ms": ms(state.started),
                    "finished_ms": ms(state.finished),
                }
                for name, state in self.nodes.items()
            },
            "timeline": {name: list(state.timeline) for name, state in self.nodes.items() if state.timeline},
            "outputs": [
                {
                    "node": node,
                    "path": str(writer.path),
                    "content_type": writer.content_type,
                    "size": writer.size,
                    "complete": writer.complete,
                }
                for node, writer in self.outputs.items()
            ],
        }
