"""Figure B: Gaussian blur, radius 8, of the 24 MP JPEG to PNG: Tileflow's /run total ÷ libvips' `gaussblur`.

Tileflow's blur is Pillow's `GaussianBlur` (three box blurs; libvips cannot match it within 50 dB and be
faster, see runtime/steps/blur.py); libvips' `gaussblur(8)` with its defaults (a Gaussian mask cut at
20 % amplitude) and `pngsave` with its defaults. Both encode PNG at compression 6; the sizes differ (the
filters do), the notes give both.
"""

from __future__ import annotations

from baselines import vips_blur_png, vips_ready
from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone, timed

NAME = "blur radius 8 → PNG: total of /run ÷ libvips gaussblur + pngsave (24 MP)"
GOAL = "<= 1.2"


def measure(session: BenchSession) -> list[Figure]:
    """Return figure B."""
    if not vips_ready():
        return [Figure("B", NAME, None, GOAL, "pyvips does not load", 0)]
    photo = session.photo("24mp")
    vips: list[float] = []
    totals: list[float] = []
    sizes: dict[str, int] = {}
    log("figure B: warm-up")
    sizes["libvips"] = len(vips_blur_png(photo))
    sizes["Tileflow"] = len(session.run("blur-png", photo, (6000, 4000)).body)
    alternate(
        session.runs,
        lambda: vips.append(timed(lambda: vips_blur_png(photo))),
        lambda: totals.append(session.run("blur-png", photo, (6000, 4000)).total),
    )
    log(f"figure B: libvips {fmt_seconds(median(vips))}, Tileflow {fmt_seconds(median(totals))}")
    figure = Figure(
        "B",
        NAME,
        median(totals) / median(vips),
        GOAL,
        f"Tileflow {fmt_seconds(median(totals))}; libvips {fmt_seconds(median(vips))}",
        session.runs,
    )
    figure.notes.append(
        f"PNG sizes: Tileflow {sizes['Tileflow'] / 1e6:.1f} MB, libvips {sizes['libvips'] / 1e6:.1f} MB"
    )
    return [figure]


if __name__ == "__main__":
    standalone(measure)
