"""flows.api: HEAD wherever GET is (RFC 9110), and CSRF refusals that say what is wrong."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.testing import ApplicationCommunicator
from django.test import Client

from console.handler import TileflowASGIHandler
from flows.models import Flow
from tests.support.runs import COMPRESS_AND_WATERMARK, TokenClient, image_bytes, upload, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


async def asgi_answer(method: str, path: str, headers: list) -> tuple[int, dict, bytes]:
    """Send a request through Django's ASGI handler, as Daphne does; return its status, headers and body."""
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}
    scope |= {"http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    communicator = ApplicationCommunicator(TileflowASGIHandler(), scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    return start["status"], dict(start["headers"]), body


async def finished_execution(http: TokenClient, flow: Flow) -> str:
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(300, 200))})
    assert response.status_code == 201, response.content
    assert (await wait_finished(http, response.json()["id"]))["status"] == "succeeded"
    return response.json()["id"]


async def test_head_answers_what_get_answers_without_a_body(http, flow):
    execution = await finished_execution(http, flow)
    for path in (
        "/api/flows",
        f"/api/flows/{flow.id}",
        "/api/health",
        "/api/steps",
        f"/api/executions?flow={flow.id}",
        f"/api/executions/{execution}",
        f"/api/executions/{execution}/output",
        f"/api/executions/{execution}/input",
        "/api/executions/00000000-0000-0000-0000-000000000000",  # a 404 is a 404 either way
    ):
        got, head = await http.get(path), await http.head(path)
        assert head.status_code == got.status_code, path
        assert dict(head.headers) == dict(got.headers), path
        body = b"".join(head.streaming_content) if head.streaming else head.content
        assert body == b"", path
    anonymous = await TokenClient(None).head("/api/flows")
    assert anonymous.status_code == 401


async def test_allow_lists_head_wherever_get_is_allowed(http, flow):
    for path, allowed in (("/api/health", "GET, HEAD"), ("/api/flows", "GET, HEAD, POST")):
        refused = await http.delete(path)
        assert refused.status_code == 405
        assert refused["Allow"] == allowed
        assert refused.json() == {"error": f"DELETE is not allowed here; allowed: {allowed}"}
    refused = await http.head(f"/api/flows/{flow.id}/run")  # POST only: HEAD is no GET here
    assert refused.status_code == 405 and "HEAD" not in refused["Allow"]


def test_the_openapi_document_lists_get_not_its_head_twin(client):
    paths = client.get("/api/schema").json()["paths"]
    assert "get" in paths["/api/flows"]
    assert not any("head" in operations for operations in paths.values())


async def test_head_of_a_results_zip_starts_no_zip_through_the_asgi_handler(http, flow, token, monkeypatch):
    """Through Django's ASGI handler (which streams what a view answers): the zip is never begun."""
    started = []

    async def watched_results(batch):
        started.append(batch.pk)
        yield b"PK"

    monkeypatch.setattr("flows.api_batches.stream_results", watched_results)
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": [upload(image_bytes(80, 60), "a.jpg")]})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while (await http.get(f"/api/batches/{batch_id}")).json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
    status, answer_headers, body = await asgi_answer("HEAD", f"/api/batches/{batch_id}/results", headers)
    assert status == 200
    assert answer_headers[b"Content-Type"] == b"application/zip"
    assert body == b""
    assert started == []


@pytest.mark.parametrize("path", ["/api/flows", "/api/flows/{flow}/batches"])
def test_a_foreign_origin_is_named_as_the_csrf_failure_not_the_token(user, flow, path):
    client = Client(enforce_csrf_checks=True)  # as a browser is: the test client's default skips the check
    client.force_login(user)
    client.get("/")  # the page sets the csrftoken cookie, as in a browser
    token = client.cookies["csrftoken"].value
    path = path.format(flow=flow.id)
    foreign = client.post(path, {}, HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN="http://evil.example")
    assert foreign.status_code == 403
    assert foreign.json() == {"error": "CSRF check failed: the request's Origin http://evil.example is not this site"}
    without_token = client.post(path, {}, HTTP_ORIGIN="http://testserver")
    assert without_token.status_code == 403
    assert without_token.json() == {
        "error": "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header"
    }
