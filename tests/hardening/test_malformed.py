"""Every malformed request of issue 10 gets a clear 4xx through a real Daphne: JSON under /api/, a page elsewhere.

Each of these answered 500 (or HTML under /api/) before. The server's log must hold no traceback afterwards.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
from django.conf import settings

from tests.support import raw
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

BOUNDARY = "tileflowboundary"
TOO_MANY_FILES = max(1000, settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)  # a batch may send 1,000 images


def fields(count: int, *, files: bool = False) -> bytes:
    filename = '; filename="f{i}.png"' if files else ""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f{i}"{filename.format(i=i)}\r\n\r\nv\r\n'
        for i in range(count)
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def big_flow(megabytes: int) -> bytes:
    return json.dumps({"name": "big", "description": "x" * (megabytes << 20), "graph": COMPRESS_AND_WATERMARK}).encode()


@pytest.fixture(scope="module")
def flow_id(hostile_console) -> str:
    status, flow = Client(hostile_console.url, hostile_console.auth).json(
        "POST", "/api/flows", {"name": "malformed", "graph": COMPRESS_AND_WATERMARK}
    )
    assert status == 201, flow
    return flow["id"]


def send(console, method: str, path: str, content_type: str | None = None, body: bytes = b"", **headers) -> raw.Answer:
    all_headers = {**console.auth, **headers}
    if content_type:
        all_headers["Content-Type"] = content_type
    if body:
        all_headers["Content-Length"] = str(len(body))
    return raw.request(console.port, method, path, all_headers, body)


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
DEEP = b"[" * 5000 + b"]" * 5000  # past the interpreter's recursion limit: json.loads raised RecursionError


def with_graph(graph: bytes) -> bytes:
    """Return a multipart body of a draft `graph` field and an image (in that order, as /run needs it)."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="graph"\r\n\r\n'.encode()
        + graph
        + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.encode()
        + image_bytes(64, 48, format="PNG")
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


CASES = [
    # (name, method, path, content type, body, status, what the error says)
    ("multipart without a boundary", "POST", "{flow}/executions", "multipart/form-data", b"--x\r\n", 400, "boundary"),
    ("5,000 fields", "POST", "{flow}/executions", MULTIPART, fields(5000), 413, "DATA_UPLOAD_MAX_NUMBER_FIELDS"),
    ("too many files", "POST", "{flow}/executions", MULTIPART, fields(TOO_MANY_FILES, files=True), 413,
     "DATA_UPLOAD_MAX_NUMBER_FILES"),
    ("too many files, streamed /run", "POST", "{flow}/run", MULTIPART, fields(TOO_MANY_FILES, files=True), 400,
     "image"),
    ("3 MB urlencoded", "POST", "{flow}/executions", "application/x-www-form-urlencoded", b"a=" + b"x" * (3 << 20), 413,
     "DATA_UPLOAD_MAX_MEMORY_SIZE"),
    ("3 MB JSON flow, POST", "POST", "/api/flows", "application/json", big_flow(3), 413, "DATA_UPLOAD_MAX_MEMORY_SIZE"),
    ("3 MB JSON flow, PUT", "PUT", "{flow}", "application/json", big_flow(3), 413, "DATA_UPLOAD_MAX_MEMORY_SIZE"),
    ("offset past 64 bits", "GET", "/api/executions?offset=9223372036854775808", None, b"", 400, "offset"),
    ("a separator before a number in the query", "GET", "/api/executions?limit=%1C5", None, b"", 400, "limit"),
    ("a query parameter given twice", "GET", "/api/executions?flow=a&limit=1&flow=b", None, b"", 400, "'flow'"),
    ("a JSON list for a flow patch", "PATCH", "{flow}", "application/json", b"[null, null]", 400, "JSON object"),
    ("JSON nested 5,000 deep, POST", "POST", "/api/flows", "application/json", b'{"name": "x", "graph": ' + DEEP + b"}",
     400, "nested too deeply"),
    ("JSON nested 5,000 deep, PATCH", "PATCH", "{flow}", "application/json", DEEP, 400, "nested too deeply"),
    ("JSON nested 5,000 deep, unknown path", "POST", "/api/nope", "application/json", DEEP, 400, "nested too deeply"),
    ("a draft graph nested 5,000 deep", "POST", "{flow}/executions", MULTIPART, with_graph(DEEP), 400,
     "nested too deeply"),
    ("a draft graph nested 5,000 deep, /run", "POST", "{flow}/run", MULTIPART, with_graph(DEEP), 400,
     "nested too deeply"),
    ("an unknown API path", "GET", "/api/nope", None, b"", 404, "no such API path"),
    ("a method the path does not take", "DELETE", "/api/steps", None, b"", 405, "allowed: GET"),
]  # fmt: skip


@pytest.mark.parametrize("name, method, path, content_type, body, status, says", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_request_answers_a_clear_json_error(
    hostile_console, flow_id, name, method, path, content_type, body, status, says
):
    path = path.replace("{flow}", f"/api/flows/{flow_id}")
    answer = send(hostile_console, method, path, content_type, body)
    assert answer.status == status, (name, answer)
    assert answer.headers["content-type"].startswith("application/json"), answer
    assert says in answer.body.decode(), answer.body


def test_multipart_without_a_boundary_from_a_stranger_is_404(hostile_console):
    answer = send(hostile_console, "POST", f"/api/flows/{uuid.uuid4()}/executions", "multipart/form-data", b"--x\r\n")
    assert answer.status == 404 and answer.json() == {"error": "no such flow"}


def test_the_upload_still_works_after_all_that(hostile_console, flow_id):
    status, _, body = Client(hostile_console.url, hostile_console.auth).upload(
        f"/api/flows/{flow_id}/executions", image_bytes(64, 48)
    )
    assert status == 201, body


def test_a_wrong_host_answers_json_under_api_and_a_page_elsewhere(hostile_console):
    api = raw.request(hostile_console.port, "GET", "/api/flows", {**hostile_console.auth, "Host": "evil.example"})
    assert api.status == 400 and "TILEFLOW_ALLOWED_HOSTS" in api.json()["error"]
    page = raw.request(hostile_console.port, "GET", "/login/", {"Host": "evil.example"})
    assert page.status == 400 and page.headers["content-type"].startswith("text/html")


def logged_in(console) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{console.url}/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = session.post(
        f"{console.url}/login/",
        data={"username": console.username, "password": console.password, "csrfmiddlewaretoken": token},
        timeout=30,
    )
    assert answer.status_code == 200 and "sessionid" in session.cookies, answer.status_code
    return session


@pytest.mark.parametrize("query", ["?flow=abc", "?flow=", f"?flow={uuid.uuid4()}", "?status=nope&flow=%ff"])
def test_the_executions_page_with_a_bad_flow_answers_a_page(hostile_console, query):
    answer = logged_in(hostile_console).get(f"{hostile_console.url}/executions/{query}", timeout=30)
    assert answer.status_code in (200, 404), answer.status_code
    assert answer.headers["content-type"].startswith("text/html")
    if query != "?flow=":
        assert answer.status_code == 404


def test_the_server_logged_no_traceback(hostile_console):
    log = hostile_console.log.read_text()
    assert "Traceback" not in log, log[-4000:]
