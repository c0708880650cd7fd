"""Run every benchmark figure against a live Tileflow server; print the table, write it to docs/benchmarks.md.

    python bench/run.py             # 9 runs per figure (median), writes docs/benchmarks.md
    python bench/run.py --quick     # 3 runs per figure, for development; docs left alone
    python bench/run.py --only 1,7  # some figures (1 and 2 share their runs, as do 4a/4b and 9a/9b)

Progress goes to stderr, the table to stdout. Exits 1 when a figure could not be measured at all
(a missed goal is a result, not an error).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

import figure_batch
import figure_blur
import figure_bridge
import figure_concurrency
import figure_libvips
import figure_memory
import figure_memory_budget
import figure_placement
import figure_png
import figure_progress
import figure_redis
import figure_scale_out
import figure_streaming
import figure_thumbor
import figure_upload
from measure import Figure, log, machine_description
from photos import SIZES, ensure_photo
from report import render_notes, render_results, render_table, write_docs
from session import BenchSession

# The runs of one figure spread by ±10% on a shared 2-core machine: the median of 9 wobbles about half
# as much as the median of 5 between one `make bench` and the next.
DEFAULT_RUNS = 9

# (figure numbers a script produces, the script): each script measures its own rounds.
FIGURES = [
    (("1", "2"), figure_streaming),
    (("3", "3t"), figure_libvips),
    (("4", "4a", "4b"), figure_thumbor),
    (("5",), figure_memory),
    (("M",), figure_memory_budget),
    (("6",), figure_bridge),
    (("7",), figure_progress),
    (("8", "8v"), figure_concurrency),
    (("B",), figure_blur),
    (("U", "U1", "U2"), figure_upload),
    (("9", "9a", "9b"), figure_png),
    (("R", "R1", "redis"), figure_redis),
    (("S", "S1", "S2"), figure_scale_out),
    (("P", "P1", "P2", "P3", "P4", "P5"), figure_placement),
    (("10", "10p", "10m"), figure_batch),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per figure and no docs update")
    parser.add_argument("--runs", type=int, help="runs per figure (default 9, or 3 with --quick)")
    parser.add_argument("--only", help="comma-separated figure numbers, e.g. 1,5,R")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else DEFAULT_RUNS)
    wanted = {part.strip() for part in args.only.split(",")} if args.only else None
    chosen = [(numbers, module) for numbers, module in FIGURES if wanted is None or wanted & set(numbers)]
    if not chosen:
        parser.error(f"--only {args.only} names no figure; there are {', '.join(n[0] for n, _ in FIGURES)}")
    started = time.monotonic()
    machine = machine_description()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: load average {load:.2f} before the start; other work on the machine skews the numbers")
    for name in SIZES:
        ensure_photo(name)
    figures: list[Figure] = []
    crashed = False
    with BenchSession(runs) as session:
        for numbers, module in chosen:
            begun = time.monotonic()
            log(f"--- figure {numbers[0]} ({module.__name__}), {runs} runs")
            try:
                figures += module.measure(session)
            except Exception as error:
                crashed = True
                traceback.print_exc(file=sys.stderr)
                summary = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                figures.append(
                    Figure(
                        numbers[0],
                        module.__doc__.splitlines()[0].rstrip("."),
                        None,
                        "",
                        f"could not be measured: {summary}",
                        runs,
                        failures=1,
                    )
                )
            log(f"--- figure {numbers[0]} took {time.monotonic() - begun:.0f} s")
    elapsed = time.monotonic() - started
    print(render_table(figures))
    print(render_notes(figures), file=sys.stderr)
    if not (args.quick or args.no_docs):
        write_docs(render_results(figures, machine, elapsed, runs))
        log("wrote docs/benchmarks.md")
    log(f"done in {elapsed / 60:.1f} min")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
