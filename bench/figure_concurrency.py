"""Figures 8 and 8v: 8 concurrent runs of a 2 MP image (compress-and-watermark), in throughput.

8: against the same 8 one after another: the wall time of the 8 sequential runs ÷ the wall time of the 8
concurrent ones (≥ 1.0: running them together is no slower).
8v: against libvips doing the same chain 8 times at once in 8 threads of the benchmark process: its
wall time ÷ Tileflow's (≥ 0.8: Tileflow's throughput is at least 80 % of libvips').
Every run must answer 200 with a complete, decodable image.
Note the server admits TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER (4 by default) runs of one user at a time and
queues the rest, as it would in production.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from baselines import vips_chains_in_threads, vips_ready
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone

RUNS_AT_ONCE = 8
SIZE = (866, 578)  # the 2 MP photo (1732×1155) halved


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 8 (concurrent throughput ÷ sequential throughput, and the failure count)."""
    photo = session.photo("2mp")
    failures: list[str] = []
    sequential: list[float] = []
    concurrent: list[float] = []

    def one() -> None:
        try:
            session.run("compress-and-watermark", photo, SIZE)
        except Exception as error:  # counted, not raised: the figure reports failures
            failures.append(str(error))

    def in_sequence() -> None:
        started = time.perf_counter()
        for _ in range(RUNS_AT_ONCE):
            one()
        sequential.append(time.perf_counter() - started)

    def at_once() -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(RUNS_AT_ONCE) as pool:
            for future in [pool.submit(one) for _ in range(RUNS_AT_ONCE)]:
                future.result()
        concurrent.append(time.perf_counter() - started)

    vips: list[float] = []

    def vips_at_once() -> None:
        started = time.perf_counter()
        vips_chains_in_threads(photo, RUNS_AT_ONCE)
        vips.append(time.perf_counter() - started)

    log("figure 8: warm-up")
    one()
    contenders = [in_sequence, at_once]
    if vips_ready():
        vips_at_once()
        contenders.append(vips_at_once)
    alternate(session.runs, *contenders)
    attempts = RUNS_AT_ONCE * 2 * session.runs + 1
    ratio = median(sequential) / median(concurrent)
    log(
        f"figure 8: 8 sequential {fmt_seconds(median(sequential))}, 8 concurrent {fmt_seconds(median(concurrent))}, "
        f"{len(failures)} failures"
    )
    figure = Figure(
        "8",
        "throughput of 8 concurrent 2 MP runs ÷ the same 8 one after another (no failures)",
        ratio,
        ">= 1.0",
        f"8 at once {fmt_seconds(median(concurrent))}; one after another {fmt_seconds(median(sequential))}; "
        f"{len(failures)} failed of {attempts}",
        session.runs,
        failures=len(failures),
    )
    if failures:
        figure.notes.append(f"failures (first 3): {failures[:3]}")
    versus = Figure(
        "8v",
        "throughput of 8 concurrent 2 MP runs ÷ libvips' (the same chain 8 times at once in 8 threads)",
        median(vips) / median(concurrent) if vips else None,
        ">= 0.8",
        f"Tileflow 8 at once {fmt_seconds(median(concurrent))}; libvips 8 threads {fmt_seconds(median(vips))}"
        if vips
        else "pyvips does not load",
        session.runs if vips else 0,
    )
    return [figure, versus]


if __name__ == "__main__":
    standalone(measure)
