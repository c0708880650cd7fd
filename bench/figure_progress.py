"""Figure 7: progress latency, from a tile being done to the websocket client knowing it (p95 ≤ 100 ms).

Method. A background run (`POST /executions`, 24 MP, resize 0.5 → watermark → JPEG) is watched by a
websocket client that stamps each message with `time.time()` on arrival (same machine, same clock as the
server). When the run has ended, the execution's `timeline` gives, per node, the [start_ms, end_ms] of each
unit of work relative to `started_at`, in the order the conductor counted them: the k-th entry is the one
that took the node's `done` from k-1 to k units (the output counts a whole band of tiles per entry, so a
unit there is `total ÷ entries` tiles). A tile's *done moment* is `started_at + end_ms`. Its latency is the
arrival of the first progress message whose `done` covers it, minus its done moment. Tiles already counted
in the opening snapshot are left out (they reached the client through the snapshot, not through progress).
The source node has no timeline (it is counted as bands are decoded) and is not measured. The figure is
the 95th percentile over every measured tile of every run; the median is reported next to it.
"""

from __future__ import annotations

import math
import statistics
import sys
from datetime import datetime
from pathlib import Path

from measure import Figure, log, median
from session import BenchSession, standalone
from tileflow_server import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.support.websocket import SocketClient

TIMELINE_LIMIT = 5000  # the conductor keeps at most this many entries per node (runtime/recording.py)


def watch_run(session: BenchSession, photo: Path) -> tuple[list[tuple[float, dict]], dict]:
    """Start a run, follow its websocket to the status message; return the timestamped messages and the execution."""
    server = session.server
    execution_id = server.start_execution(session.flow("chain-jpeg"), photo)
    client = SocketClient(server.port, f"/ws/executions/{execution_id}/", server.token, timeout=60)
    messages: list[tuple[float, dict]] = []
    try:
        while True:
            arrived, message = client.receive_stamped()
            if message is None:
                break
            messages.append((arrived, message))
            if message["type"] == "status":
                break
    finally:
        client.close()
    return messages, server.execution(execution_id)


def tile_latencies(messages: list[tuple[float, dict]], execution: dict) -> list[float]:
    """Return the seconds from each tile's done moment to the first progress message that counts it."""
    if not messages or messages[0][1]["type"] != "snapshot":
        raise RuntimeError("the websocket did not open with a snapshot")
    if messages[-1][1].get("status") != "succeeded":
        raise RuntimeError(f"the run did not succeed: {messages[-1][1]}")
    snapshot_nodes = messages[0][1]["execution"].get("nodes", {})
    started = datetime.fromisoformat(execution["started_at"]).timestamp()
    latencies = []
    for node, entries in execution.get("timeline", {}).items():
        total = execution["nodes"][node]["total"]
        if not entries or len(entries) >= TIMELINE_LIMIT or total % len(entries):
            continue
        unit = total // len(entries)
        arrivals = [
            (message["done"], arrived)
            for arrived, message in messages
            if message["type"] == "progress" and message["node"] == node
        ]
        already = snapshot_nodes.get(node, {}).get("done", 0)
        for index, (_, end_ms) in enumerate(entries):
            count = (index + 1) * unit
            if count <= already:
                continue
            seen = next((arrived for done, arrived in arrivals if done >= count), None)
            if seen is None:
                raise RuntimeError(f"node {node!r} reached {count} but no progress message said so")
            latencies.append(seen - (started + end_ms / 1000))
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 7 (p95 progress latency, ms)."""
    photo = session.photo("24mp")
    log("figure 7: warm-up")
    watch_run(session, photo)
    latencies: list[float] = []
    per_run: list[float] = []
    for _ in range(session.runs):
        run_latencies = tile_latencies(*watch_run(session, photo))
        latencies += run_latencies
        per_run.append(percentile(run_latencies, 0.95) * 1000)
    if not latencies:
        raise RuntimeError("no tile could be matched with a progress message")
    p95 = percentile(latencies, 0.95) * 1000
    log(f"figure 7: p95 {p95:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms over {len(latencies)} tiles")
    return [
        Figure(
            "7",
            "progress latency, tile done → websocket client, p95 (24 MP chain)",
            p95,
            "<= 100",
            f"p95 {p95:.0f} ms, median {median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms over "
            f"{len(latencies)} tiles",
            session.runs,
            unit="ms",
            notes=[f"per-run p95: {', '.join(f'{value:.0f}' for value in per_run)} ms"],
        )
    ]


if __name__ == "__main__":
    standalone(measure)
