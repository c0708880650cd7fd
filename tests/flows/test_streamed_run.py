"""flows.streamed_run: /run answers while its upload arrives (raw sockets, a real Daphne, reading while sending)."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from runtime.testing import reference_flow
from tests.support import raw
from tests.support.http import Client, multipart
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from upload_client import paced_upload

RATE = 1_500_000  # bytes a second: the ~1.5 MB photo takes ~1 s to send


@pytest.fixture(scope="module")
def console(hostile_console):
    return hostile_console  # a real Daphne shared with the other raw-socket tests


@pytest.fixture(scope="module")
def client(console) -> Client:
    return Client(console.url, console.auth)


@pytest.fixture(scope="module")
def flow_id(client) -> str:
    status, flow = client.json("POST", "/api/flows", {"name": "streamed", "graph": COMPRESS_AND_WATERMARK})
    assert status == 201, flow
    return flow["id"]


@pytest.fixture(scope="module")
def photo() -> bytes:
    return image_bytes(2400, 1600, seed=11)


def execution_of(client: Client, execution_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = client.json("GET", f"/api/executions/{execution_id}")
        assert status == 200
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{execution_id} still {body['status']}")


def expected_result(photo: bytes) -> Image.Image:
    return reference_flow(COMPRESS_AND_WATERMARK, Image.open(io.BytesIO(photo)))["out"]


def check_result(data: bytes, photo: bytes) -> None:
    result = Image.open(io.BytesIO(data))
    result.load()
    expected = io.BytesIO()
    expected_result(photo).save(expected, "JPEG", quality=85)
    assert result.tobytes() == Image.open(expected).tobytes()


@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_output_arrives_before_the_upload_is_complete(console, client, flow_id, photo, kind):
    if kind == "raw":
        body, content_type = photo, "image/jpeg"
    else:
        body, content_type = multipart({"image": ("photo.jpg", photo)})
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        body,
        {**console.auth, "Content-Type": content_type},
        RATE,
    )
    assert answer.status == 200, answer.body[:300]
    assert answer.first_body is not None and answer.first_body < answer.upload_seconds, (
        f"first output byte at {answer.first_body:.3f} s, upload took {answer.upload_seconds:.3f} s"
    )
    check_result(answer.body, photo)
    execution = execution_of(client, answer.headers["X-Execution-Id"])
    assert execution["status"] == "succeeded"
    status, _, stored = client.request("GET", f"/api/executions/{execution['id']}/input")
    assert status == 200 and stored == photo  # the whole upload is kept, as for a buffered one
    print(
        f"{kind}: first byte {answer.first_body:.3f} s, upload {answer.upload_seconds:.3f} s, tail {answer.tail:.3f} s"
    )


def test_an_upload_cut_off_fails_its_run_and_leaves_nothing(console, client, flow_id, photo):
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        photo,
        {**console.auth, "Content-Type": "image/jpeg"},
        RATE * 4,
        stop_after=len(photo) // 2,
    )
    assert answer.status in (0, 200)  # cut before or after the answer began; never a complete image
    _, listing = client.json("GET", f"/api/executions?flow={flow_id}")
    latest = listing["executions"][0]
    execution = execution_of(client, latest["id"])
    assert execution["status"] == "failed"
    assert "went away" in execution["error"] or "truncated" in execution["error"], execution["error"]
    media = Path(console.env["TILEFLOW_MEDIA_ROOT"])
    assert not list((media / "inputs").glob(f"{latest['id']}*"))
    assert not list((media / "outputs" / latest["id"]).glob("*"))


def test_a_truncated_body_that_ends_normally_fails_with_the_reason(console, client, flow_id, photo):
    cut = photo[: len(photo) * 2 // 3]
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        cut,
        {**console.auth, "Content-Type": "image/jpeg"},
        RATE * 4,
    )
    if answer.status == 200:  # the answer had begun: it ends without a complete image
        with pytest.raises(OSError):
            Image.open(io.BytesIO(answer.body)).load()
        execution = execution_of(client, answer.headers["X-Execution-Id"])
    else:
        assert answer.status == 422, answer.body
        execution = execution_of(client, answer.headers["X-Execution-Id"])
    assert execution["status"] == "failed" and "truncated" in execution["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"not an image at all" * 100, "image/jpeg", 400, "not an image"),
        (b"{}", "application/json", 415, "multipart field 'image'"),
        (multipart({"other": ("x.txt", b"hello")})[0], None, 400, "no image"),
    ],
)
def test_bodies_that_are_no_image_are_refused_before_any_run(
    console, client, flow_id, body, content_type, status, message
):
    if content_type is None:
        body, content_type = multipart({"other": ("x.txt", b"hello")})
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        body,
        {**console.auth, "Content-Type": content_type},
        RATE * 10,
    )
    assert answer.status == status, answer.body
    assert message in answer.body.decode(), answer.body


def test_without_credentials_nothing_is_read(console, flow_id, photo):
    answer = paced_upload(
        "127.0.0.1", console.port, f"/api/flows/{flow_id}/run", photo, {"Content-Type": "image/jpeg"}, RATE * 10
    )
    assert answer.status == 401


@pytest.mark.parametrize("image_format", ["PNG", "progressive JPEG"])
def test_images_that_do_not_stream_are_read_whole_first_and_run(console, client, flow_id, image_format):
    # The probe reads these to their end (truncation is refused before any run), then the run decodes them whole.
    options = {"format": "PNG"} if image_format == "PNG" else {"progressive": True}
    photo = image_bytes(600, 400, seed=3, **options)
    content_type = "image/png" if image_format == "PNG" else "image/jpeg"
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        photo,
        {**console.auth, "Content-Type": content_type},
        RATE * 4,
    )
    assert answer.status == 200, answer.body[:300]
    check_result(answer.body, photo)


def test_a_draft_graph_sent_before_the_image_is_what_runs(console, flow_id, photo):
    draft = {
        "nodes": [
            {"id": "in", "type": "source", "params": {}},
            {"id": "gray", "type": "grayscale", "params": {}},
            {"id": "out", "type": "output", "params": {"format": "png"}},
        ],
        "edges": [{"from": "in", "to": "gray"}, {"from": "gray", "to": "out"}],
    }
    boundary = "streamed-draft-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="graph"\r\n\r\n{json.dumps(draft)}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = paced_upload(
        "127.0.0.1",
        console.port,
        f"/api/flows/{flow_id}/run",
        body,
        {**console.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        RATE * 4,
    )
    assert answer.status == 200, answer.body[:300]
    result = Image.open(io.BytesIO(answer.body))
    assert result.format == "PNG" and result.mode == "L"
    assert result.tobytes() == reference_flow(draft, Image.open(io.BytesIO(photo)))["out"].tobytes()


@pytest.mark.parametrize("paced", [False, True])  # the whole body in before the run, or the run started on it
def test_a_draft_graph_sent_after_the_image_is_refused_not_silently_ignored(console, client, flow_id, photo, paced):
    from flows.streamed_run import LATE_GRAPH

    boundary = "late-draft-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body += photo if paced else image_bytes(64, 48, seed=5)
    body += (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="graph"\r\n\r\n{{}}\r\n--{boundary}--\r\n'.encode()
    )
    headers = {**console.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = paced_upload(
        "127.0.0.1", console.port, f"/api/flows/{flow_id}/run", body, headers, RATE * 4 if paced else 1e9
    )
    if answer.status == 200:  # the run's first bytes left before the graph came: the answer breaks off
        assert answer.body and Image.open(io.BytesIO(answer.body)).format == "JPEG"
        with pytest.raises(OSError):
            Image.open(io.BytesIO(answer.body)).load()
    else:
        assert (answer.status, json.loads(answer.body)) == (400, {"error": LATE_GRAPH})
    if paced:  # a run had started: it failed saying why, and kept nothing
        execution = execution_of(client, answer.headers["X-Execution-Id"])
        assert execution["status"] == "failed" and execution["error"] == LATE_GRAPH
        assert client.request("GET", f"/api/executions/{execution['id']}/input")[0] == 404


def test_a_chunked_body_over_the_limit_fails_its_run_even_when_the_image_in_it_was_done(
    console, client, flow_id, photo
):
    """A whole JPEG, then junk past TILEFLOW_MAX_UPLOAD_BYTES (64 MiB): no complete answer, nothing kept."""
    import socket
    import threading

    connection = socket.create_connection(("127.0.0.1", console.port), timeout=60)
    head = [
        f"POST /api/flows/{flow_id}/run HTTP/1.1",
        f"Host: 127.0.0.1:{console.port}",
        *(f"{name}: {value}" for name, value in console.auth.items()),
        "Content-Type: image/jpeg",
        "Transfer-Encoding: chunked",
        "Connection: close",
    ]
    received = bytearray()

    def read() -> None:
        while chunk := connection.recv(1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    reader.start()
    junk = bytes(1 << 20)
    try:
        for piece in [photo, *([junk] * 66)]:
            connection.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        connection.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server stopped reading once the limit was passed
    reader.join(60)
    connection.close()
    status = int(received.split(b" ", 2)[1])
    headers = received.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    execution_id = next(
        line.split(":", 1)[1].strip() for line in headers.splitlines() if line.startswith("X-Execution-Id")
    )
    if status == 200:  # the image was done before the limit: the answer ends without its last chunk
        assert not received.endswith(b"0\r\n\r\n"), received[-64:]
    else:
        assert status == 413, received[:500]
    # Its end is recorded once the body is refused, which may come after the image's run had finished.
    deadline = time.monotonic() + 20
    while (execution := execution_of(client, execution_id))["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert execution["status"] == "failed" and "limit" in execution["error"] and "67108864" in execution["error"], (
        execution
    )
    assert execution["outputs"] == []
    media = Path(console.env["TILEFLOW_MEDIA_ROOT"])
    assert not list((media / "inputs").rglob(f"{execution_id}*"))
    assert not list((media / "outputs" / execution_id).glob("*"))


def test_a_truncated_jpeg_sent_whole_is_refused_with_422_not_a_broken_body(console, client, flow_id, photo):
    cut = photo[: len(photo) * 2 // 3]  # all of it is in before the first band is made
    headers = {**console.auth, "Content-Type": "image/jpeg", "Content-Length": str(len(cut))}
    answer = raw.request(console.port, "POST", f"/api/flows/{flow_id}/run", headers, cut)
    assert answer.status == 422, answer.body[:300]
    assert "truncated" in answer.json()["error"]
    execution = execution_of(client, answer.headers["x-execution-id"])
    assert execution["status"] == "failed" and "truncated" in execution["error"]


def test_a_truncated_jpeg_keeps_no_input(console, client, flow_id, photo):
    import http.client

    cut = photo[: len(photo) * 2 // 3]
    try:
        status, _, body = Client(console.url, console.auth).request(
            "POST", f"/api/flows/{flow_id}/run", cut, {"Content-Type": "image/jpeg"}
        )
    except http.client.IncompleteRead:  # the answer had begun: it ends without its last chunk
        status, body = 200, b""
    _, listing = client.json("GET", f"/api/executions?flow={flow_id}")
    execution = execution_of(client, listing["executions"][0]["id"])
    assert execution["status"] == "failed" and "truncated" in execution["error"], (status, body[:300])
    status, _, body = client.request("GET", f"/api/executions/{execution['id']}/input")
    assert (status, json.loads(body)) == (404, {"error": "the input of this execution is not stored"})
    media = Path(console.env["TILEFLOW_MEDIA_ROOT"])
    assert not list((media / "inputs").rglob(f"{execution['id']}*"))


def test_a_422_answer_names_its_status(console, flow_id):
    """Twisted's table lacks 422: the status line said "422 Unknown Status"."""
    import http.client

    small = image_bytes(64, 48, seed=3)
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    try:
        connection.request(
            "POST",
            f"/api/flows/{flow_id}/run",
            small[: len(small) - 40],
            {**console.auth, "Content-Type": "image/jpeg"},
        )
        answer = connection.getresponse()
        answer.read()
    finally:
        connection.close()
    assert (answer.status, answer.reason) == (422, "Unprocessable Content")


def file_part(boundary: str, filename: str, data: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )


@pytest.mark.parametrize("paced", [False, True])  # the whole body in before the run, or the run started on it
def test_a_second_image_is_refused_not_silently_ignored(console, client, flow_id, photo, paced):
    from flows.streamed_upload import SEVERAL_IMAGES

    boundary = "two-images-boundary"
    first = photo if paced else image_bytes(64, 48, seed=5)
    body = file_part(boundary, "a.jpg", first) + file_part(boundary, "b.jpg", image_bytes(64, 48, seed=6))
    body += f"--{boundary}--\r\n".encode()
    headers = {**console.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = paced_upload(
        "127.0.0.1", console.port, f"/api/flows/{flow_id}/run", body, headers, RATE * 4 if paced else 1e9
    )
    if answer.status == 200:  # the run's first bytes left before the second image came: the answer breaks off
        with pytest.raises(OSError):
            Image.open(io.BytesIO(answer.body)).load()
    else:
        assert (answer.status, json.loads(answer.body)) == (400, {"error": SEVERAL_IMAGES})
    if paced:  # a run had started: it failed saying why, and kept nothing
        execution = execution_of(client, answer.headers["X-Execution-Id"])
        assert execution["status"] == "failed" and execution["error"] == SEVERAL_IMAGES
        assert client.request("GET", f"/api/executions/{execution['id']}/input")[0] == 404


@pytest.mark.parametrize(
    ("filename", "stored"),
    [("p\x00.jpg", "p.jpg"), ("../../etc/p.jpg", "p.jpg"), ("C:\\Users\\me\\p\x1b.jpg", "p.jpg")],
)
def test_a_file_name_keeps_no_path_and_no_control_characters(console, client, flow_id, filename, stored):
    boundary = "named-boundary"
    body = file_part(boundary, filename, image_bytes(64, 48, seed=7)) + f"--{boundary}--\r\n".encode()
    headers = {**console.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = paced_upload("127.0.0.1", console.port, f"/api/flows/{flow_id}/run", body, headers, 1e9)
    assert answer.status == 200, answer.body[:300]
    assert execution_of(client, answer.headers["X-Execution-Id"])["input"]["name"] == stored


def test_an_empty_file_name_is_no_image_for_run_as_for_executions(console, client, flow_id):
    boundary = "empty-name-boundary"
    body = file_part(boundary, "", image_bytes(64, 48, seed=8)) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answers = {
        call: client.request("POST", f"/api/flows/{flow_id}/{call}", body, headers) for call in ("run", "executions")
    }
    for call, (status, _, data) in answers.items():
        assert (status, json.loads(data)) == (
            400,
            {"error": "no image: send the file in the multipart field 'image'"},
        ), call
