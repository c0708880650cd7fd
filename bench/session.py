"""One benchmark session: the live Tileflow server, the flows every figure uses, the run count, the photos.

Each figure script exposes `measure(session) -> list[Figure]`; `standalone(measure)` runs one figure alone.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

from baselines import JPEG_QUALITY, WATERMARK_FONT_SIZE, WATERMARK_OPACITY, WATERMARK_TEXT
from measure import Figure, log
from photos import ensure_photo
from PIL import Image
from tileflow_server import RunTiming, TileflowServer, flow_document

WATERMARK = {
    "text": WATERMARK_TEXT,
    "opacity": WATERMARK_OPACITY,
    "position": "bottom-right",
    "font_size": WATERMARK_FONT_SIZE,
    "color": "#ffffff",
}
JPEG = {"format": "jpeg", "quality": JPEG_QUALITY}

# The flows the figures run, built once per session.
FLOWS: dict[str, dict] = {
    "chain-jpeg": flow_document(
        "bench-chain-jpeg", [("shrink", "resize", {"scale": 0.5}), ("mark", "watermark", WATERMARK)], JPEG
    ),
    "chain-png": flow_document(
        "bench-chain-png", [("shrink", "resize", {"scale": 0.5}), ("mark", "watermark", WATERMARK)], {"format": "png"}
    ),
    # Fast decode on, as the figure asks: Thumbor decodes the JPEG at half size (Image.draft) too.
    "thumbor-like": flow_document(
        "bench-fit-3000x2000",
        [("fit", "resize", {"width": 3000, "height": 2000}), ("mark", "watermark", WATERMARK)],
        JPEG,
        source={"fast_decode": True},
    ),
    "blur-png": flow_document("bench-blur-png", [("soften", "blur", {"radius": 8})], {"format": "png"}),
    "gray-1": flow_document("bench-gray-1", [("gray1", "grayscale", {})], JPEG),
    "gray-8": flow_document("bench-gray-8", [(f"gray{index}", "grayscale", {}) for index in range(1, 9)], JPEG),
    # CONTRACT §1's example flow, with the watermark's automatic font size.
    "compress-and-watermark": flow_document(
        "compress-and-watermark",
        [
            ("shrink", "resize", {"scale": 0.5}),
            ("mark", "watermark", {"text": WATERMARK_TEXT, "opacity": 0.5, "position": "bottom-right"}),
        ],
        JPEG,
    ),
}


class BenchSession:
    """The server and flows shared by the figures of one `bench/run.py` invocation."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.server = TileflowServer()
        self._flow_ids: dict[str, str] = {}

    def __enter__(self) -> BenchSession:
        log("starting the Tileflow server (migrate, user, token, daphne) …")
        self.server.__enter__()
        log(f"Tileflow server on 127.0.0.1:{self.server.port} (pid {self.server.pid})")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.__exit__(*exc_info)

    def photo(self, name: str) -> Path:
        """Return the cached test photo `name` ("2mp", "24mp", "96mp")."""
        return ensure_photo(name)

    def flow(self, key: str) -> str:
        """Return the id of the bench flow `key`, creating it on first use."""
        if key not in self._flow_ids:
            self._flow_ids[key] = self.server.create_flow(FLOWS[key])
        return self._flow_ids[key]

    def run(self, key: str, photo: Path, expected_size: tuple[int, int]) -> RunTiming:
        """Run flow `key` on `photo` through `/run` and check the streamed image has the expected size."""
        timing = self.server.run(self.flow(key), photo)
        check_image(timing.body, expected_size)
        return timing


def check_image(data: bytes, expected_size: tuple[int, int]) -> None:
    """Refuse a result that does not decode completely to an image of `expected_size`."""
    with Image.open(io.BytesIO(data)) as image:
        if image.size != expected_size:
            raise RuntimeError(f"result is {image.size}, expected {expected_size}")
        image.load()


def timed(work: Callable[[], object]) -> float:
    """Return how long `work()` took, in seconds."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def standalone(measure: Callable[[BenchSession], list[Figure]]) -> None:
    """Run one figure script on its own: `python bench/figure_x.py [--runs N]`."""
    from report import render_notes, render_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with BenchSession(args.runs) as session:
        figures = measure(session)
    print(render_table(figures))
    print(render_notes(figures), file=sys.stderr)
