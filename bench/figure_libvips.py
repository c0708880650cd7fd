"""Figures 3 and 3t: Tileflow's /run total against libvips (pyvips) doing the same work in-process, 24 MP JPEG.

3: the seed's chain, exact mode (resize 0.5 lanczos3, watermark, JPEG q85) against `vips_chain`.
3t: with the source's `fast_decode` (JPEG shrink-on-load), fit 3000×2000, watermark, against libvips'
`thumbnail`, which shrinks on load the same way. libvips' operation cache is off (`vips_ready`).
"""

from __future__ import annotations

from baselines import vips_chain, vips_ready, vips_thumbnail_chain
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed

NAMES = {
    "3": "total of /run ÷ libvips total (24 MP, resize 0.5 lanczos3, text composite, JPEG q85; exact mode)",
    "3t": "fast_decode total of /run ÷ libvips thumbnail total (24 MP → fit 3000×2000, shrink-on-load, watermark)",
}
GOALS = {"3": "<= 1.2", "3t": "<= 0.8"}


def measure(session: BenchSession) -> list[Figure]:
    """Return figures 3 and 3t (Tileflow total ÷ libvips total)."""
    if not vips_ready():
        return [Figure(number, NAMES[number], None, GOALS[number], "pyvips does not load", 0) for number in NAMES]
    photo = session.photo("24mp")
    figures = []
    for number, flow, baseline in (("3", "chain-jpeg", vips_chain), ("3t", "thumbor-like", vips_thumbnail_chain)):
        vips: list[float] = []
        totals: list[float] = []
        log(f"figure {number}: warm-up")
        baseline(photo)
        session.run(flow, photo, (3000, 2000))
        alternate(
            session.runs,
            lambda baseline=baseline, vips=vips: vips.append(timed(lambda: baseline(photo))),
            lambda flow=flow, totals=totals: totals.append(session.run(flow, photo, (3000, 2000)).total),
        )
        log(f"figure {number}: libvips {fmt_seconds(median(vips))}, Tileflow {fmt_seconds(median(totals))}")
        figures.append(
            Figure(
                number,
                NAMES[number],
                median(totals) / median(vips),
                GOALS[number],
                f"Tileflow {fmt_seconds(median(totals))}; libvips {fmt_seconds(median(vips))}",
                session.runs,
            )
        )
    return figures


if __name__ == "__main__":
    standalone(measure)
