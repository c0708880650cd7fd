"""Figure 3: Tileflow's /run total against libvips (pyvips) doing the same chain in-process, 24 MP JPEG."""

from __future__ import annotations

from baselines import vips_chain, vips_ready
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed

NAME = "total of /run ÷ libvips total (24 MP, resize 0.5 lanczos3, text composite, JPEG q85)"


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 3 (Tileflow total ÷ libvips total)."""
    if not vips_ready():
        return [Figure("3", NAME, None, "<= 1.5", "pyvips is not installed (pip install -r bench/requirements.txt)", 0)]
    photo = session.photo("24mp")
    vips: list[float] = []
    totals: list[float] = []
    log("figure 3: warm-up")
    vips_chain(photo)
    session.run("chain-jpeg", photo, (3000, 2000))
    alternate(
        session.runs,
        lambda: vips.append(timed(lambda: vips_chain(photo))),
        lambda: totals.append(session.run("chain-jpeg", photo, (3000, 2000)).total),
    )
    log(f"figure 3: libvips {fmt_seconds(median(vips))}, Tileflow {fmt_seconds(median(totals))}")
    return [
        Figure(
            "3",
            NAME,
            median(totals) / median(vips),
            "<= 1.5",
            f"Tileflow {fmt_seconds(median(totals))}; libvips {fmt_seconds(median(vips))}",
            session.runs,
        )
    ]


if __name__ == "__main__":
    standalone(measure)
