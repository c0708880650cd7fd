"""Figures 10, 10p and 10m: 200 photos of 2 MP through compress-and-watermark as one batch (CONTRACT §7).

10: throughput of the batch (upload of the 200 as one request, until its results zip is read) ÷ the same
200 sent one by one to `/run` (each response read whole) (≥ 1.3).
10p: the batch's throughput ÷ a plain sequential Pillow loop over the folder (read, decode, resize 0.5
Lanczos, watermark, encode JPEG q85, write) (≥ 1.5).
10m: the server's peak resident memory over the whole batch ÷ its peak by the time 20 items had
finished (≤ 1.2: memory stays flat however many items a batch holds).
The 200 photos are one synthetic 2 MP photo under 200 names (no cache in Tileflow or Pillow keys on content).
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from baselines import pillow_chain
from measure import Figure, RssSampler, alternate, fmt_seconds, log, median, proc_status_kb
from session import BenchSession, check_image, standalone

PHOTOS = 200
EARLY = 20  # the memory figure compares the peak after this many items with the peak after all
SIZE = (866, 578)  # the 2 MP photo (1732×1155) halved
ROUNDS_AT_MOST = 3  # a round is 3 × 200 photos: a few rounds are enough for a throughput


def batch_body(photo: bytes, count: int) -> tuple[bytes, str]:
    """Return a multipart body of `count` image parts named photo-NNN.jpg, and its content type."""
    boundary = uuid.uuid4().hex
    head = '--{b}\r\nContent-Disposition: form-data; name="image"; filename="photo-{n:03d}.jpg"\r\n\r\n'
    parts = [head.format(b=boundary, n=index).encode() + photo + b"\r\n" for index in range(count)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class BatchRound:
    """One batch of the 200 through the live server, its time and its memory samples."""

    def __init__(self, session: BenchSession, body: bytes, content_type: str) -> None:
        self.session = session
        self.body = body
        self.content_type = content_type

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.session.server.port, timeout=600)

    def run(self) -> tuple[float, int, int]:
        """Return (seconds from the upload's start to the results zip read, peak KiB after EARLY, peak KiB overall)."""
        server = self.session.server
        flow = self.session.flow("compress-and-watermark")
        sampler = RssSampler(server.pid, interval=0.01)
        early_peak = 0
        with sampler.sampling():
            started = time.perf_counter()
            connection = self._connection()
            connection.request(
                "POST",
                f"/api/flows/{flow}/batches",
                body=self.body,
                headers=server.headers({"Content-Type": self.content_type}),
            )
            answer = connection.getresponse()
            created = json.loads(answer.read())
            connection.close()
            if answer.status != 201:
                raise RuntimeError(f"POST /batches answered {answer.status}: {created}")
            batch_id = created["id"]
            self.accepted = time.perf_counter() - started
            while True:
                _, listed = server.request("GET", f"/api/batches?flow={flow}&limit=1")
                batch = next(entry for entry in listed["batches"] if entry["id"] == batch_id)
                if not early_peak and batch["succeeded"] + batch["failed"] >= EARLY:
                    early_peak = sampler.peak_kb
                if batch["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.25)  # polling faster would cost the server a good part of its event loop
            if batch["status"] != "succeeded":
                raise RuntimeError(f"the batch ended {batch['status']}: {batch['failed']} failed")
            self.finished = time.perf_counter() - started
            connection = self._connection()
            connection.request("GET", f"/api/batches/{batch_id}/results", headers=server.headers())
            answer = connection.getresponse()
            results = answer.read()
            connection.close()
            elapsed = time.perf_counter() - started
        with zipfile.ZipFile(io.BytesIO(results)) as zipped:
            names = zipped.namelist()
            if len(names) != PHOTOS:
                raise RuntimeError(f"the results zip holds {len(names)} entries, not {PHOTOS}")
            check_image(zipped.read(names[-1]), SIZE)
        return elapsed, early_peak, sampler.peak_kb


def measure(session: BenchSession) -> list[Figure]:
    photo_path = session.photo("2mp")
    photo = photo_path.read_bytes()
    rounds = min(session.runs, ROUNDS_AT_MOST)
    folder = Path(tempfile.mkdtemp(prefix="tileflow-bench-batch-"))
    try:
        for index in range(PHOTOS):
            shutil.copyfile(photo_path, folder / f"photo-{index:03d}.jpg")
        body, content_type = batch_body(photo, PHOTOS)
        batch_round = BatchRound(session, body, content_type)
        batch_times: list[float] = []
        one_by_one: list[float] = []
        pillow: list[float] = []
        memory: list[tuple[int, int]] = []

        def as_batch() -> None:
            elapsed, early, peak = batch_round.run()
            batch_times.append(elapsed)
            memory.append((early, peak))
            log(
                f"figure 10: batch of {PHOTOS} in {fmt_seconds(elapsed)} (201 after "
                f"{fmt_seconds(batch_round.accepted)}, all done after {fmt_seconds(batch_round.finished)}); "
                f"peak RSS {early // 1024} MiB after {EARLY}, {peak // 1024} MiB after {PHOTOS}"
            )

        def each_to_run() -> None:
            flow = session.flow("compress-and-watermark")
            started = time.perf_counter()
            for _ in range(PHOTOS):
                timing = session.server.run(flow, photo_path)  # each response read whole
            one_by_one.append(time.perf_counter() - started)
            check_image(timing.body, SIZE)
            log(f"figure 10: {PHOTOS} one by one to /run in {fmt_seconds(one_by_one[-1])}")

        def pillow_loop() -> None:
            out = folder / "pillow-out"
            out.mkdir(exist_ok=True)
            started = time.perf_counter()
            for path in sorted(folder.glob("photo-*.jpg")):
                (out / path.name).write_bytes(pillow_chain(path, "jpeg"))
            pillow.append(time.perf_counter() - started)
            log(f"figure 10: Pillow loop over {PHOTOS} in {fmt_seconds(pillow[-1])}")

        log("figure 10: warm-up")
        session.run("compress-and-watermark", photo_path, SIZE)
        alternate(rounds, as_batch, each_to_run, pillow_loop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    batch_time = median(batch_times)
    early, peak = max(memory, key=lambda pair: pair[1] / max(pair[0], 1))
    rss_now = proc_status_kb(session.server.pid, "VmRSS")
    per_photo = f"{batch_time / PHOTOS * 1000:.0f} ms a photo"
    return [
        Figure(
            "10",
            f"throughput of {PHOTOS} 2 MP photos as one batch ÷ the same {PHOTOS} one by one to /run "
            "(compress-and-watermark)",
            median(one_by_one) / batch_time,
            ">= 1.3",
            f"batch {fmt_seconds(batch_time)} ({per_photo}, upload to results zip read); "
            f"one by one {fmt_seconds(median(one_by_one))}",
            rounds,
        ),
        Figure(
            "10p",
            f"throughput of the batch ÷ a plain sequential Pillow loop over the {PHOTOS} files",
            median(pillow) / batch_time,
            ">= 1.5",
            f"batch {fmt_seconds(batch_time)}; Pillow loop {fmt_seconds(median(pillow))}",
            rounds,
        ),
        Figure(
            "10m",
            f"server peak memory over the whole batch ÷ its peak after the first {EARLY} items",
            peak / max(early, 1),
            "<= 1.2",
            f"peak {peak // 1024} MiB after {PHOTOS}, {early // 1024} MiB after {EARLY} (worst round); "
            f"{rss_now // 1024} MiB resident at the end",
            rounds,
        ),
    ]


if __name__ == "__main__":
    standalone(measure)
