"""Figure 4: Tileflow against a Thumbor server, both resizing 24 MP to 3000×2000 and adding a watermark.

Thumbor answers only when its image is done (its first byte is its last), with its PIL engine's
`Image.draft` fast JPEG decode on; Tileflow's flow turns on its own fast decode (`fast_decode` on the
source: libjpeg's scaled decode, as `draft` does), as the figure asks. Thumbor runs from its own venv
(it needs Pillow < 13).
"""

from __future__ import annotations

import http.client
import time

from measure import Figure, alternate, fmt_seconds, log, median
from session import BenchSession, check_image, standalone
from thumbor_server import ThumborServer

NAMES = (
    "first byte of /run ÷ Thumbor total (24 MP → 3000×2000 + watermark, JPEG q85, fast decode on both)",
    "total of /run ÷ Thumbor total (same)",
)


def thumbor_get(server: ThumborServer, path: str) -> float:
    """Return the seconds one Thumbor request took to its last byte, checking the image."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        started = time.perf_counter()
        connection.request("GET", path)
        answer = connection.getresponse()
        data = answer.read()
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"thumbor answered {answer.status}: {data[:300]!r}")
    check_image(data, (3000, 2000))
    return seconds


def measure(session: BenchSession) -> list[Figure]:
    """Return figure 4a (first byte ÷ Thumbor) and 4b (total ÷ Thumbor)."""
    photo = session.photo("24mp")
    try:
        thumbor = ThumborServer()
    except Exception as error:  # an install failure must not sink the other figures
        reason = f"Thumbor unavailable: {error}"
        return [Figure("4a", NAMES[0], None, "<= 0.15", reason, 0), Figure("4b", NAMES[1], None, "<= 1.0", reason, 0)]
    thumbor_times: list[float] = []
    first_bytes: list[float] = []
    totals: list[float] = []
    first_data: list[float] = []

    def tileflow() -> None:
        timing = session.run("thumbor-like", photo, (3000, 2000))
        first_bytes.append(timing.first_byte)
        first_data.append(timing.first_data)
        totals.append(timing.total)

    with thumbor:
        path = thumbor.url_path(photo, 3000, 2000)
        log("figure 4: warm-up")
        thumbor_get(thumbor, path)
        session.run("thumbor-like", photo, (3000, 2000))
        alternate(session.runs, lambda: thumbor_times.append(thumbor_get(thumbor, path)), tileflow)
    base = median(thumbor_times)
    log(
        f"figure 4: Thumbor {fmt_seconds(base)}, Tileflow first byte {fmt_seconds(median(first_bytes))}, "
        f"total {fmt_seconds(median(totals))}"
    )
    return [
        Figure(
            "4a",
            NAMES[0],
            median(first_bytes) / base,
            "<= 0.15",
            f"Tileflow first byte {fmt_seconds(median(first_bytes))}; Thumbor {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "4d",
            "first byte of image data of /run (past the JPEG header) ÷ Thumbor total",
            median(first_data) / base,
            "",
            f"Tileflow first image data {fmt_seconds(median(first_data))}; Thumbor {fmt_seconds(base)}",
            session.runs,
        ),
        Figure(
            "4b",
            NAMES[1],
            median(totals) / base,
            "<= 1.0",
            f"Tileflow {fmt_seconds(median(totals))}; Thumbor {fmt_seconds(base)}",
            session.runs,
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
