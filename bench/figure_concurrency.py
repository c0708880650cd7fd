"""Figure 8: 8 concurrent runs of a 2 MP image (compress-and-watermark) against the same 8 one after another.

The ratio is throughput: the wall time of the 8 sequential runs ÷ the wall time of the 8 concurrent ones
(≥ 1.0: running them together is no slower). Every run must answer 200 with a complete, decodable image.
Note the server admits TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER (4 by default) runs of one user at a time and
queues the rest, as it would in production.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

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

    log("figure 8: warm-up")
    one()
    alternate(session.runs, in_sequence, at_once)
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
    return [figure]


if __name__ == "__main__":
    standalone(measure)
