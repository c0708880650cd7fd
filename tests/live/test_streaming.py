"""Issue-level checks against a real console (Daphne), as a script would use it: streamed results."""

from __future__ import annotations

import io
import json
import time

import pytest
from PIL import Image, ImageChops, ImageStat

from runtime.testing import reference_flow
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes
from tests.support.services import live_console


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with live_console(tmp_path_factory.mktemp("live")) as console:
        yield console


@pytest.fixture(scope="module")
def client(console) -> Client:
    return Client(console.url, console.auth)


@pytest.fixture(scope="module")
def flow_id(client) -> str:
    status, flow = client.json(
        "POST", "/api/flows", {"name": "compress-and-watermark", "graph": COMPRESS_AND_WATERMARK}
    )
    assert status == 201, flow
    return flow["id"]


@pytest.fixture(scope="module")
def photo_24mp() -> bytes:
    return image_bytes(6000, 4000, seed=24)


def wait_finished(client: Client, execution_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = client.json("GET", f"/api/executions/{execution_id}")
        assert status == 200
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{execution_id} still {body['status']}")


def test_24mp_photo_streams_and_matches_pillow(client, flow_id, photo_24mp):
    chunks = list(client.stream(f"/api/flows/{flow_id}/run", photo_24mp))
    status, headers = chunks[0][1], chunks[0][2]
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers.get("Transfer-Encoding") == "chunked"
    assert len(chunks) > 5, "the result came in one piece: not streamed"

    result = Image.open(io.BytesIO(b"".join(chunk for *_, chunk in chunks)))
    result.load()
    assert result.size == (3000, 2000)
    expected = reference_flow(COMPRESS_AND_WATERMARK, Image.open(io.BytesIO(photo_24mp)))["out"]
    buffer = io.BytesIO()
    expected.save(buffer, "JPEG", quality=85)
    assert ImageChops.difference(result, Image.open(buffer)).getbbox() is None

    execution = wait_finished(client, headers["X-Execution-Id"])
    assert execution["status"] == "succeeded"
    # Streamed, whatever the machine's speed: bytes left before the steps had done their last tile.
    assert execution["time_to_first_output_ms"] < execution["nodes"]["mark"]["finished_ms"]
    print(
        f"24 MP: first chunk after {chunks[0][0]:.3f} s, last after {chunks[-1][0]:.3f} s; "
        f"{ {key: execution[key] for key in ('created_at', 'started_at', 'first_output_at', 'finished_at')} }"
    )
    assert all(node["done"] == node["total"] for node in execution["nodes"].values())


def test_a_caller_that_drops_the_connection_loses_nothing(client, flow_id, photo_24mp):
    chunks = list(client.stream(f"/api/flows/{flow_id}/run", photo_24mp, stop_after=1))
    execution_id = chunks[0][2]["X-Execution-Id"]
    execution = wait_finished(client, execution_id)
    assert execution["status"] == "succeeded", execution["error"]
    status, headers, data = client.request("GET", f"/api/executions/{execution_id}/output")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert len(data) == execution["outputs"][0]["size"]
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (3000, 2000)
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10  # a real picture, not a blank


def test_background_run_then_download(client, flow_id):
    status, _, body = client.upload(f"/api/flows/{flow_id}/executions", image_bytes(1200, 800))
    assert status == 201
    execution = wait_finished(client, json.loads(body)["id"])
    assert execution["status"] == "succeeded"
    status, headers, data = client.request("GET", execution["outputs"][0]["url"])
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in headers["Content-Disposition"]
    assert Image.open(io.BytesIO(data)).size == (600, 400)
