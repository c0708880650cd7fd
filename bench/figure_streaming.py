"""Figures 1 and 2: Tileflow's /run (first byte, last byte) against a sequential Pillow script, 24 MP JPEG.

Chain: decode → resize 0.5 Lanczos → text watermark → JPEG q85. Both sides from the same rounds,
alternating; the ratio is of the medians.
"""

from __future__ import annotations

from datetime import datetime

from baselines import pillow_chain
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed


def run_moments(execution: dict) -> dict[str, float]:
    """Return the execution's started/first-output/finished moments that are set, as POSIX timestamps."""
    keys = ("started_at", "first_output_at", "finished_at")
    return {key: datetime.fromisoformat(execution[key]).timestamp() for key in keys if execution.get(key)}


def measure(session: BenchSession) -> list[Figure]:
    """Return figures 1 (TTFB ÷ Pillow total) and 2 (total ÷ Pillow total)."""
    photo = session.photo("24mp")
    pillow: list[float] = []
    first_bytes: list[float] = []
    totals: list[float] = []
    first_data: list[float] = []
    headers: list[float] = []
    before_run: list[float] = []
    server_first: list[float] = []
    server_total: list[float] = []

    def tileflow() -> None:
        timing = session.run("chain-jpeg", photo, (3000, 2000))
        first_bytes.append(timing.first_byte)
        first_data.append(timing.first_data)
        totals.append(timing.total)
        headers.append(timing.headers)
        moments = run_moments(session.server.execution(timing.execution_id))
        before_run.append(moments["started_at"] - timing.sent_at)
        server_first.append(moments["first_output_at"] - moments["started_at"])
        if "finished_at" in moments:  # saved just after the last byte is sent: may not be there yet
            server_total.append(moments["finished_at"] - moments["started_at"])

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
            "<= 0.10",
            f"Tileflow first byte {fmt_seconds(median(first_bytes))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "1d",
            "first byte of image data (past the JPEG header) ÷ sequential Pillow total",
            median(first_data) / base,
            "",
            f"Tileflow first image data {fmt_seconds(median(first_data))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "2",
            "total of /run ÷ sequential Pillow total (same run)",
            median(totals) / base,
            "<= 0.60",
            f"Tileflow {fmt_seconds(median(totals))}; Pillow {fmt_seconds(base)}",
            session.runs,
            notes=[
                f"where the time goes (medians): request → run started (upload, multipart parsing, probe, execution "
                f"row) {fmt_seconds(median(before_run))}; run started → first output "
                f"{fmt_seconds(median(server_first))}; response headers at {fmt_seconds(median(headers))}"
                + (f"; run started → finished {fmt_seconds(median(server_total))}" if server_total else "")
            ],
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
