"""Figures U1, U2: answering while the upload is still on the wire (24 MP JPEG sent at 50 Mbit/s).

A raw-socket client (`upload_client.paced_upload`) sends the photo as a multipart `/run` body paced to
50 Mbit/s (~1.2 s for the 7.7 MB photo) while it reads the answer, as curl does. U1 is the first byte
of the answer's body ÷ the upload's duration (below 1: output left before the upload ended); U2 the
tail: the last answer byte − the last request byte, in ms (before streamed bodies, the whole processing
time: the run could start only once the upload was complete).
"""

from __future__ import annotations

from measure import Figure, log, median
from session import BenchSession, check_image, standalone
from tileflow_server import multipart_image
from upload_client import paced_upload

RATE = 50_000_000 / 8  # bytes a second


def measure(session: BenchSession) -> list[Figure]:
    """Return figures U1 (first byte ÷ upload duration) and U2 (tail)."""
    photo = session.photo("24mp")
    body, content_type = multipart_image(photo)
    flow = session.flow("chain-jpeg")
    server = session.server
    ratios: list[float] = []
    tails: list[float] = []
    uploads: list[float] = []
    firsts: list[float] = []

    def once() -> None:
        answer = paced_upload(
            "127.0.0.1",
            server.port,
            f"/api/flows/{flow}/run",
            body,
            server.headers({"Content-Type": content_type}),
            RATE,
        )
        if answer.status != 200 or answer.first_body is None:
            raise RuntimeError(f"/run answered {answer.status}: {answer.body[:300]!r}")
        check_image(answer.body, (3000, 2000))
        uploads.append(answer.upload_seconds)
        firsts.append(answer.first_body)
        ratios.append(answer.first_body / answer.upload_seconds)
        tails.append(answer.tail)

    log("figure U: warm-up")
    once()
    ratios.clear(), tails.clear(), uploads.clear(), firsts.clear()
    for _ in range(session.runs):
        once()
    log(f"figure U: upload {median(uploads):.2f} s, first byte {median(firsts):.3f} s, tail {median(tails):.3f} s")
    detail = f"upload {median(uploads):.2f} s at 50 Mbit/s; first byte {median(firsts) * 1000:.0f} ms"
    return [
        Figure(
            "U1",
            "first byte of /run ÷ upload duration (24 MP JPEG sent at 50 Mbit/s while reading; chain of 1)",
            median(ratios),
            "<= 0.3",
            detail,
            session.runs,
        ),
        Figure(
            "U2",
            "tail: last answer byte − last request byte (same runs)",
            median(tails) * 1000,
            "<= 100",
            f"tail {median(tails) * 1000:.0f} ms; {detail}",
            session.runs,
            unit="ms",
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
