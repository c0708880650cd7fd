"""Line S: bench/scale_out.py's numbers (another engineer's): one flow in-process vs 1 and 2 runworker processes.

`scale_out.measure_scale_out` runs blur → grayscale → PNG on a 2048² photo in-process and on a Redis
cluster of 1 and 2 workers (best of N, wall clock from upload to the stored end), and times one Redis hop
per tile; this script only turns its answer into table lines.
"""

from __future__ import annotations

from measure import Figure, fmt_seconds, log
from session import BenchSession, standalone


def measure(session: BenchSession) -> list[Figure]:
    """Return lines S1 (2 workers ÷ in-process) and S2 (2 workers ÷ 1 worker), with the hop rates as notes."""
    from scale_out import measure_scale_out

    log("line S: bench/scale_out.py (in-process, then 1 and 2 Redis workers, then Redis hops)")
    numbers = measure_scale_out(runs=session.runs)
    local = numbers["in_process"]["seconds"]
    one, two = numbers["workers"][1]["seconds"], numbers["workers"][2]["seconds"]
    what = f"{numbers['image']}, blur → grayscale → PNG, {numbers['tile']} px tiles, best of {session.runs}"
    hops = [
        f"{hop['layer']} {hop['mode']}/{hop['codec']}: {hop['msg_per_s']} msg/s, {hop['raw_mb_per_s']} MB/s"
        for hop in numbers["hops"]
    ]
    return [
        Figure(
            "S1",
            f"Redis + 2 workers ÷ in-process ({what})",
            two / local,
            "",
            f"2 workers {fmt_seconds(two)}; in-process {fmt_seconds(local)}",
            session.runs,
            notes=[f"one channel-layer hop per tile: {'; '.join(hops)}"],
        ),
        Figure(
            "S2",
            "Redis: 2 workers ÷ 1 worker (same)",
            two / one,
            "",
            f"2 workers {fmt_seconds(two)}; 1 worker {fmt_seconds(one)}",
            session.runs,
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
