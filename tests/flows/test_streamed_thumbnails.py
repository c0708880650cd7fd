"""A thumbnail streams as a halving does: `/run` answers while the upload still arrives, whatever the sizes."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

from runtime.testing import chain, reference_flow
from tests.runtime._compare import max_difference
from tests.support.http import Client
from tests.support.runs import image_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from upload_client import paced_upload

RATE = 1_500_000  # bytes a second


def test_a_thumbnail_whose_exact_box_edges_span_the_whole_image_still_streams(hostile_console):
    """2400x1600 to 301 px wide (201 rows): periods of 301 and 201 output px, the whole image. Pillow's exact
    tiled resize waited for the last input row before its first output band; now it answers while the upload
    arrives, within 1 of Pillow's whole-image result."""
    console = hostile_console
    graph = chain(("resize", {"width": 301}), output={"format": "png"})
    status, flow = Client(console.url, console.auth).json("POST", "/api/flows", {"name": "thumbnail", "graph": graph})
    assert status == 201, flow
    photo = image_bytes(2400, 1600, seed=5)
    headers = {**console.auth, "Content-Type": "image/jpeg"}
    answer = paced_upload("127.0.0.1", console.port, f"/api/flows/{flow['id']}/run", photo, headers, RATE)
    assert answer.status == 200, answer.body[:300]
    assert answer.first_body is not None and answer.first_body < answer.upload_seconds, (
        f"first output byte at {answer.first_body:.3f} s, upload took {answer.upload_seconds:.3f} s"
    )
    result = Image.open(io.BytesIO(answer.body))
    expected = reference_flow(graph, Image.open(io.BytesIO(photo)), pillow_only=True)["out"]
    assert result.size == (301, 201) and max_difference(result.convert("RGB"), expected) <= 1
