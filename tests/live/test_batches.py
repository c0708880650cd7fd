"""Batches through a real console (Daphne), as a script uses them: hostile archives, results, sockets, a crash."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile

import pytest

from tests.support import raw
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes
from tests.support.services import live_console
from tests.support.websocket import SocketClient

FINISHED = ("succeeded", "failed", "cancelled")


def form(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """Return a multipart body of (field, filename or None for a text field, data) parts, and its type."""
    boundary = uuid.uuid4().hex
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_batch(client: Client, flow_id: str, parts) -> tuple[int, dict]:
    body, content_type = form(parts)
    status, _, data = client.request("POST", f"/api/flows/{flow_id}/batches", body, {"Content-Type": content_type})
    return status, json.loads(data)


def wait_batch(client: Client, batch_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = client.json("GET", f"/api/batches/{batch_id}")
        assert status == 200, body
        if body["status"] in FINISHED:
            return body
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {body['status']}")


def zipped(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with live_console(tmp_path_factory.mktemp("live-batches"), TILEFLOW_BATCH_CONCURRENCY="1") as console:
        yield console


@pytest.fixture(scope="module")
def client(console) -> Client:
    return Client(console.url, console.auth)


@pytest.fixture(scope="module")
def flow_id(client) -> str:
    status, flow = client.json("POST", "/api/flows", {"name": "cw-batch", "graph": COMPRESS_AND_WATERMARK})
    assert status == 201, flow
    return flow["id"]


def test_a_hostile_archive_and_a_broken_photo_through_daphne(console, client, flow_id):
    archive = zipped(
        {
            "album/a.jpg": image_bytes(400, 300, seed=1),
            "../../outside.jpg": image_bytes(64, 64, seed=2),
            "album/readme.txt": b"hello",
            "deeper.zip": zipped({"b.jpg": image_bytes(64, 64)}),
        }
    )
    status, batch = post_batch(
        client,
        flow_id,
        [
            ("image", "good.jpg", image_bytes(500, 400, seed=3)),
            ("image", "broken.jpg", image_bytes(500, 400, seed=4)[:3000]),
            ("archive", "photos.zip", archive),
        ],
    )
    assert status == 201, batch
    assert batch["total"] == 6
    socket = SocketClient(console.port, f"/ws/batches/{batch['id']}/", console.token)
    messages = socket.messages()
    socket.close()
    assert messages[0]["type"] == "snapshot" and messages[-1] == {"type": "status", "status": "failed"}
    final = [message for message in messages if message["type"] == "progress"][-1]
    assert (final["succeeded"], final["failed"], final["total"]) == (2, 4, 6)

    done = wait_batch(client, batch["id"])
    errors = {item["name"]: item["error"] for item in done["items"] if item["error"]}
    assert set(errors) == {"broken.jpg", "../../outside.jpg", "album/readme.txt", "deeper.zip"}
    assert "truncated" in errors["broken.jpg"] or "broken" in errors["broken.jpg"].lower()

    connection = client.connection()
    connection.request("GET", f"/api/batches/{batch['id']}/results", headers=client.headers)
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    with zipfile.ZipFile(io.BytesIO(response.read())) as results:
        assert set(results.namelist()) == {"good.jpg", "album/a.jpg", "errors.json"}
        assert len(json.loads(results.read("errors.json"))) == 4
    connection.close()
    assert not list((console.workdir).rglob("outside.jpg"))


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (b"not a zip at all", "not a zip"),
        (zipped({f"t/{n}.jpg": b"x" for n in range(2100)}), "2100 entries"),
        (zipped({"flat.bmp": bytes(40 * 1024 * 1024)}, zipfile.ZIP_DEFLATED), "zip bomb"),
    ],
    ids=["not-a-zip", "thousands-of-entries", "ratio-bomb"],
)
def test_bad_archives_get_400_json_from_daphne(console, client, flow_id, archive, reason):
    status, body = post_batch(client, flow_id, [("archive", "photos.zip", archive)])
    assert status == 400 and reason in body["error"]
    folders = console.workdir / "media" / "batches"
    for folder in folders.iterdir() if folders.exists() else ():  # only the folders of batches that exist
        assert client.json("GET", f"/api/batches/{folder.name}")[0] == 200, folder
        assert not (folder / "archive.zip").exists()


def test_a_server_killed_mid_batch_finishes_the_batch_when_it_comes_back(console, client, flow_id):
    photos = [("image", f"p{n:02d}.jpg", image_bytes(1400, 1000, seed=n)) for n in range(8)]
    status, batch = post_batch(client, flow_id, photos)
    assert status == 201, batch
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, seen = client.json("GET", f"/api/batches/{batch['id']}")
        if seen["succeeded"] >= 2:
            break
        time.sleep(0.02)
    assert 2 <= seen["succeeded"] < 8, "the batch ended before the server could be killed"
    kept = {item["name"]: item["execution"] for item in seen["items"] if item["status"] == "succeeded"}

    console.process.kill()  # no clean shutdown: as a crash or a power cut
    console.process.wait()
    console.start()

    done = wait_batch(client, batch["id"], timeout=90)
    assert done["status"] == "succeeded", [item for item in done["items"] if item["error"]]
    assert done["succeeded"] == 8
    executions = {item["name"]: item["execution"] for item in done["items"]}
    for name, execution in kept.items():
        assert executions[name] == execution, "a finished item ran again"
    status, listed = client.json("GET", "/api/executions?limit=500")
    mine = [execution for execution in listed["executions"] if execution["id"] in executions.values()]
    assert len(mine) == 8


def _batch_inputs(console) -> list:
    folders = console.workdir / "media" / "batches"
    return sorted(folders.glob("*/inputs/*")) if folders.exists() else []


def test_a_batch_body_is_parsed_while_it_arrives_and_a_broken_one_keeps_nothing(console, client, flow_id):
    """The first image is on disk before the client has sent the rest; a client gone mid-body leaves no file."""
    photos = [("image", f"s{n}.jpg", image_bytes(600, 400, seed=n)) for n in range(3)]
    body, content_type = form(photos)
    boundary = content_type.rpartition("=")[2].encode()
    cut = body.index(b"\r\n--" + boundary, body.index(photos[1][2]))  # after the second image's data
    before = set(_batch_inputs(console))
    sock = raw.connect(console.port)
    headers = {**console.auth, "Content-Type": content_type, "Content-Length": str(len(body))}
    sock.sendall(raw.head("POST", f"/api/flows/{flow_id}/batches", headers) + body[:cut])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(set(_batch_inputs(console)) - before) < 2:
        time.sleep(0.02)
    arrived = sorted(set(_batch_inputs(console)) - before)
    assert arrived, "no image was written while the rest of the body was still on its way"
    assert arrived[0].read_bytes() == photos[0][2]
    sock.close()  # the client goes away: the half-made batch keeps nothing
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(path.exists() for path in arrived):
        time.sleep(0.02)
    assert not any(path.exists() for path in arrived)
    # The same body sent whole, and chunked (no Content-Length), makes a batch of three.
    started = time.monotonic()
    for framing in ("length", "chunked"):
        sock = raw.connect(console.port)
        if framing == "length":
            headers = {**console.auth, "Content-Type": content_type, "Content-Length": str(len(body))}
            sock.sendall(raw.head("POST", f"/api/flows/{flow_id}/batches", headers) + body)
        else:
            headers = {**console.auth, "Content-Type": content_type, "Transfer-Encoding": "chunked"}
            pieces = [body[at : at + 70_000] for at in range(0, len(body), 70_000)]
            chunks = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces)
            sock.sendall(raw.head("POST", f"/api/flows/{flow_id}/batches", headers) + chunks + b"0\r\n\r\n")
        answer = raw.read_answer(sock, started)
        sock.close()
        assert answer.status == 201, (framing, answer.body[:300])
        done = wait_batch(client, answer.json()["id"])
        assert done["status"] == "succeeded" and done["total"] == 3, (framing, done)
        assert [item["name"] for item in done["items"]] == ["s0.jpg", "s1.jpg", "s2.jpg"]
