"""A second user who tries every id of the first user's objects on every endpoint, page and socket gets nothing.

The API's operations come from ninja's routers and the pages from the URL resolver, so an endpoint added
later is checked without anyone listing it here.
"""

from __future__ import annotations

import json
import re

import pytest
from channels.testing import WebsocketCommunicator
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from console.routing import websocket_routes
from flows.api import api
from flows.models import ApiToken, Batch, BatchItem, Execution, ExecutionOutput, Flow, FlowVersion, Trigger
from tests.support.runs import image_bytes

# Public on purpose: the API's description and its docs page hold no one's data; login/logout are for everyone.
PUBLIC_API = {"api/schema", "api/docs", "api/"}
# The language switcher and the script catalog are the same for everyone and hold no one's data.
PUBLIC_PAGES = {"login/", "logout/", "i18n/setlang/", "jsi18n/"}
# Authenticated by their own secret, not by a user: a stranger's credential is a wrong secret there (401).
# Liveness for load balancers: no authentication and no details (CONTRACT §3).
NO_CREDENTIAL = {("GET", "/api/health")}
OWN_SECRET = {("POST", "/api/triggers/{trigger_id}/events")}
HOSTILE_NAME = '<script>alert(1)</script> "q"\r\n../../etc/passwd'
HOSTILE_TEXT = "<img src=x onerror=alert(2)>"
GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "mark", "type": "watermark", "params": {"text": HOSTILE_TEXT}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "mark"}, {"from": "mark", "to": "out"}],
}
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")


def api_operations() -> list[tuple[str, str]]:
    """Return (method, url pattern) of every API operation, as ninja's routers hold them."""
    return [
        (method, f"/api{prefix}{path}")
        for prefix, router in api._routers
        for path, view in router.path_operations.items()
        for operation in view.operations
        for method in operation.methods
    ]


def url_patterns(patterns=None, prefix: str = "") -> list[str]:
    """Return every route of the project's URL configuration, admin excluded (staff only)."""
    routes = []
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if not route.startswith("admin/"):
                routes += url_patterns(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


def fill(pattern: str, ids: dict[str, str]) -> str:
    """Put the owner's ids in a pattern's parameters: {flow_id}, <uuid:flow_id>, <execution_id>."""
    return re.sub(r"[{<](?:\w+:)?(\w+)[}>]", lambda match: ids[match.group(1)], pattern)


@pytest.fixture
def owned(owner, settings) -> dict[str, str]:
    """The owner's flow and finished execution, with a stored input and output; their ids by parameter name."""
    flow = Flow.objects.create(owner=owner, name=HOSTILE_NAME, description=HOSTILE_TEXT, graph=GRAPH)
    execution = Execution(
        owner=owner, flow=flow, flow_name=flow.name, graph=GRAPH, status="succeeded", finished_at=timezone.now()
    )
    execution.input_file.save("photo.png", ContentFile(image_bytes(40, 30, format="PNG")), save=False)
    execution.input_name, execution.input_format = HOSTILE_NAME, "PNG"
    execution.save()
    output = ExecutionOutput(execution=execution, node="out", content_type="image/png", complete=True)
    output.file.save("out.png", ContentFile(image_bytes(40, 30, format="PNG")), save=False)
    output.size = output.file.size
    output.save()
    batch = Batch.objects.create(owner=owner, flow=flow, flow_name=flow.name, graph=GRAPH, status="succeeded")
    BatchItem.objects.create(batch=batch, index=0, name=HOSTILE_NAME, execution=execution, status="succeeded")
    trigger = Trigger.objects.create(
        owner=owner, flow=flow, type="folder", source={}, destination={}, watch_from=timezone.now()
    )
    return {
        "flow_id": str(flow.id),
        "execution_id": str(execution.id),
        "batch_id": str(batch.id),
        "trigger_id": str(trigger.id),
        "trigger_secret": trigger.secret,
        "version": str(FlowVersion.objects.create(flow=flow, version=1, name=flow.name, graph=GRAPH).version),
        "node": "out",
        "input": execution.input_file.name,
        "output": output.file.name,
    }


def bearer(user) -> Client:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiToken.issue(user)[1]}"
    return client


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def call(client: Client, method: str, url: str):
    data = {"image": ContentFile(image_bytes(16, 16), name="x.jpg")} if method == "POST" else None
    if method in ("PUT", "PATCH"):  # a well-formed body, so that only ownership can refuse it
        body = json.dumps({"name": "stolen", "graph": GRAPH})
        return client.generic(method, url, body, content_type="application/json")
    return client.generic(method, url) if data is None else client.post(url, data)


def test_the_operations_cover_every_api_route():
    routed = {route for route in url_patterns() if route.startswith("api/")} - PUBLIC_API
    operated = {
        fill(
            pattern,
            {
                "flow_id": "<flow_id>",
                "execution_id": "<execution_id>",
                "batch_id": "<batch_id>",
                "trigger_id": "<trigger_id>",
                "version": "<version>",
                "node": "<node>",
            },
        )[1:]
        for _, pattern in api_operations()
    }
    assert routed == operated


@pytest.mark.parametrize("client_kind", ["bearer", "session"])
def test_a_stranger_gets_404_or_nothing_on_every_api_operation(owned, stranger, client_kind):
    client = bearer(stranger) if client_kind == "bearer" else session(stranger)
    if client_kind == "session":
        client.get("/login/")  # sets the CSRF cookie; the test client does not enforce it anyway
    for method, pattern in api_operations():
        url = fill(pattern, owned)
        response = call(client, method, url)
        if url != pattern and (method, pattern) in OWN_SECRET:
            assert response.status_code == 401, (method, url, response.status_code)
        elif url != pattern:  # names one of the owner's objects
            assert response.status_code == 404, (method, url, response.status_code)
            assert "error" in response.json()
        else:
            assert response.status_code < 500, (method, url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        for secret in (owned["flow_id"], owned["execution_id"], owned["batch_id"], owned["trigger_secret"], b"alert"):
            assert (secret if isinstance(secret, bytes) else secret.encode()) not in body, (method, url)
        listed = client.get(f"/api/executions?flow={owned['flow_id']}")
        assert listed.json() == {"executions": []}
    assert Flow.objects.get(pk=owned["flow_id"]).name == HOSTILE_NAME  # PUT and DELETE changed nothing
    assert Execution.objects.get(pk=owned["execution_id"]).status == "succeeded"
    assert Trigger.objects.get(pk=owned["trigger_id"]).enabled  # PATCH and DELETE changed nothing


def test_anonymous_gets_401_on_every_api_operation(owned):
    anonymous = Client()
    for method, pattern in api_operations():
        response = call(anonymous, method, fill(pattern, owned))
        if (method, pattern) in NO_CREDENTIAL:
            assert response.status_code in (200, 503) and set(response.json()) == {"status"}, (method, pattern)
            continue
        assert response.status_code == 401, (method, pattern, response.status_code)
        assert "error" in response.json()


def test_revoked_and_wrong_tokens_get_401(owned, owner):
    row, token = ApiToken.issue(owner)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(f"/api/flows/{owned['flow_id']}").status_code == 200
    row.revoked_at = timezone.now()
    row.save()
    assert client.get(f"/api/flows/{owned['flow_id']}").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer tf_guess").get("/api/flows").status_code == 401
    assert ApiToken.objects.filter(digest=ApiToken.hash(token)).exists()
    assert not ApiToken.objects.filter(digest=token).exists()  # only the hash is stored


def test_pages_404_for_a_stranger_and_login_for_anonymous(owned, stranger):
    pages = [route for route in url_patterns() if not route.startswith("api") and route not in PUBLIC_PAGES]
    assert {"", "flows/new/", "executions/"} <= set(pages)
    visitor, anonymous = session(stranger), Client()
    for pattern in pages:
        url = "/" + fill(pattern, owned)
        seen = visitor.get(url)
        if url != "/" + pattern:
            assert seen.status_code == 404, (url, seen.status_code)
        else:
            assert seen.status_code == 200 and owned["flow_id"].encode() not in seen.content, url
        nobody = anonymous.get(url)
        assert nobody.status_code == 302 and nobody["Location"].startswith("/login/?next="), url
    listed = visitor.get(f"/executions/?flow={owned['flow_id']}")
    assert listed.status_code == 404


def test_user_text_is_escaped_on_every_page(owned, owner):
    client = session(owner)
    for url in ("/", "/executions/", f"/flows/{owned['flow_id']}/", f"/executions/{owned['execution_id']}/"):
        page = client.get(url).content.decode()
        assert "<script>alert(1)" not in page and "<img src=x" not in page, url
    home = client.get("/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home


def test_media_is_never_served_from_a_path(owned, owner):
    client = session(owner)
    for name in (owned["input"], owned["output"]):
        for prefix in ("/media/", "/media-not-served/", "/static/../media/"):
            assert client.get(prefix + name).status_code == 404, prefix + name


def test_downloads_are_attachments_with_a_safe_name_and_nosniff(owned, owner):
    client = bearer(owner)
    for url in (f"/api/executions/{owned['execution_id']}/output", f"/api/executions/{owned['execution_id']}/input"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["X-Content-Type-Options"] == "nosniff"
        disposition = response["Content-Disposition"]
        filename = re.search(r'filename="([^"]*)"', disposition).group(1)
        assert re.fullmatch(r"[A-Za-z0-9._-]+", filename), disposition
        assert not filename.startswith(".") and "/" not in filename and "\n" not in disposition
    assert client.get(f"/api/executions/{owned['execution_id']}/output")["Content-Disposition"].startswith(
        "attachment;"
    )


def test_session_calls_need_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    body = json.dumps({"name": "csrf", "graph": GRAPH})
    refused = client.post("/api/flows", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/flows", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content


# -- the websocket --------------------------------------------------------------------------------------------


def socket_for(execution_id: str, token: str | None, *, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [HOST, origin] if origin else [HOST]  # the Origin must be the handshake's own origin
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(websocket_routes(), f"/ws/executions/{execution_id}/", headers=headers)


async def refused(socket: WebsocketCommunicator) -> bool:
    """Tell whether the socket was closed at the handshake, without any message."""
    connected, _ = await socket.connect(timeout=5)
    if connected:
        await socket.disconnect()
    return not connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_channel_layer")
async def test_websocket_checks_owner_token_revocation_and_origin(owned, owner, stranger):
    from asgiref.sync import sync_to_async

    execution_id = owned["execution_id"]
    row, token = await sync_to_async(ApiToken.issue)(owner)
    _, stranger_token = await sync_to_async(ApiToken.issue)(stranger)

    mine = socket_for(execution_id, token)
    connected, _ = await mine.connect(timeout=5)
    assert connected
    assert json.loads(await mine.receive_from(timeout=5))["type"] == "snapshot"
    await mine.disconnect()

    assert await refused(socket_for(execution_id, stranger_token))
    assert await refused(socket_for(execution_id, None))
    assert await refused(socket_for(execution_id, "tf_not-a-token"))
    assert await refused(socket_for(execution_id, token, origin=(b"origin", b"https://evil.example")))
    assert await refused(socket_for(execution_id, token, origin=None))
    row.revoked_at = timezone.now()
    await row.asave()
    assert await refused(socket_for(execution_id, token))
