"""Figure 6: the cost of the stream bridge per step: 8 chained grayscale steps ÷ 1, 24 MP → JPEG q85."""

from __future__ import annotations

from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, standalone


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 6 (8 grayscale steps ÷ 1 grayscale step, total time of /run)."""
    photo = session.photo("24mp")
    one: list[float] = []
    eight: list[float] = []
    log("figure 6: warm-up")
    session.run("gray-1", photo, (6000, 4000))
    session.run("gray-8", photo, (6000, 4000))
    alternate(
        session.runs,
        lambda: one.append(session.run("gray-1", photo, (6000, 4000)).total),
        lambda: eight.append(session.run("gray-8", photo, (6000, 4000)).total),
    )
    log(f"figure 6: 1 step {fmt_seconds(median(one))}, 8 steps {fmt_seconds(median(eight))}")
    return [
        Figure(
            "6",
            "bridge overhead: 8 chained grayscale steps ÷ 1 (24 MP, total of /run)",
            median(eight) / median(one),
            "<= 1.3",
            f"8 steps {fmt_seconds(median(eight))}; 1 step {fmt_seconds(median(one))}",
            session.runs,
        )
    ]


if __name__ == "__main__":
    standalone(measure)
