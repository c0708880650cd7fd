"""Figures 1 and 2: Tileflow's /run (first byte, last byte) against a sequential Pillow script, 24 MP JPEG.

Chain: decode → resize 0.5 Lanczos → text watermark → JPEG q85. Both sides from the same rounds,
alternating; the ratio is of the medians.
"""

from __future__ import annotations

from datetime import datetime

from baselines import pillow_chain
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed


def measure(session: BenchSession) -> list[Figure]:
    """Return figures 1 (TTFB ÷ Pillow total) and 2 (total ÷ Pillow total)."""
    photo = session.photo("24mp")
    pillow: list[float] = []
    first_bytes: list[float] = []
    totals: list[float] = []
    headers: list[float] = []
    before_run: list[float] = []
    server_first: list[float] = []
    server_total: list[float] = []

    def tileflow() -> None:
        timing = session.run("chain-jpeg", photo, (3000, 2000))
        first_bytes.append(timing.first_byte)
        totals.append(timing.total)
        headers.append(timing.headers)
        execution = session.server.execution(timing.execution_id)
        before_run.append(datetime.fromisoformat(execution["started_at"]).timestamp() - timing.sent_at)
        server_first.append(execution["time_to_first_output_ms"] / 1000)
        server_total.append(execution["duration_ms"] / 1000)

    log("figures 1–2: warm-up")
    pillow_chain(photo)
    session.run("chain-jpeg", photo, (3000, 2000))
    alternate(session.runs, lambda: pillow.append(timed(lambda: pillow_chain(photo))), tileflow)
    base = median(pillow)
    log(
        f"figures 1–2: Pillow {fmt_seconds(base)}, Tileflow first byte {fmt_seconds(median(first_bytes))}, "
        f"total {fmt_seconds(median(totals))}"
    )
    return [
        Figure(
            "1",
            "first byte of /run ÷ sequential Pillow total (24 MP, resize 0.5, watermark, JPEG q85)",
            median(first_bytes) / base,
            "<= 0.15",
            f"Tileflow first byte {fmt_seconds(median(first_bytes))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "2",
            "total of /run ÷ sequential Pillow total (same run)",
            median(totals) / base,
            "<= 0.60",
            f"Tileflow {fmt_seconds(median(totals))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
