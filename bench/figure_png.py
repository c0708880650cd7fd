"""Figure 9: the PNG line: 24 MP → resize 0.5 → watermark → PNG, Tileflow's /run against Pillow's sequential save."""

from __future__ import annotations

from baselines import pillow_chain
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed


def measure(session: BenchSession) -> list[Figure]:
    """Return figures 9a (first byte ÷ Pillow PNG total) and 9b (total ÷ Pillow PNG total)."""
    photo = session.photo("24mp")
    pillow: list[float] = []
    first_bytes: list[float] = []
    totals: list[float] = []
    first_data: list[float] = []

    def tileflow() -> None:
        timing = session.run("chain-png", photo, (3000, 2000))
        first_bytes.append(timing.first_byte)
        first_data.append(timing.first_data)
        totals.append(timing.total)

    log("figure 9: warm-up")
    pillow_chain(photo, "png")
    session.run("chain-png", photo, (3000, 2000))
    alternate(session.runs, lambda: pillow.append(timed(lambda: pillow_chain(photo, "png"))), tileflow)
    base = median(pillow)
    log(
        f"figure 9: Pillow PNG {fmt_seconds(base)}, Tileflow first byte {fmt_seconds(median(first_bytes))}, "
        f"total {fmt_seconds(median(totals))}"
    )
    return [
        Figure(
            "9a",
            "PNG: first byte of /run ÷ sequential Pillow PNG total (24 MP, resize 0.5, watermark)",
            median(first_bytes) / base,
            "",
            f"Tileflow first byte {fmt_seconds(median(first_bytes))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "9d",
            "PNG: first byte of image data (first IDAT's data) of /run ÷ sequential Pillow PNG total",
            median(first_data) / base,
            "",
            f"Tileflow first image data {fmt_seconds(median(first_data))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "9b",
            "PNG: total of /run ÷ sequential Pillow PNG total",
            median(totals) / base,
            "",
            f"Tileflow {fmt_seconds(median(totals))}; Pillow {fmt_seconds(base)}",
            session.runs,
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
