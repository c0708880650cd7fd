"""An upload with no or a bad credential, or for a flow the caller cannot see, is answered before its body is read.

Through a real Daphne with raw sockets (the body is declared and never sent: an answer proves it was not
waited for), and in-process for the session cookie.
"""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client as DjangoClient

from console.upload_gate import UploadGateASGIMiddleware
from flows.auth import BAD_TOKEN, MISSING_CREDENTIAL, VOUCHED, Vouched
from flows.models import Flow
from tests.support import raw
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

UPLOAD_CALLS = ("executions", "run", "batches")


@pytest.fixture(scope="module")
def flows(hostile_console) -> dict[str, str]:
    """The console user's flow, and a flow of another user."""
    client = Client(hostile_console.url, hostile_console.auth)
    status, own = client.json("POST", "/api/flows", {"name": "gate", "graph": COMPRESS_AND_WATERMARK})
    assert status == 201, own
    created = hostile_console.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; from flows.models import Flow; "
        "bob = get_user_model().objects.create_user('gate-bob', password='gate-bob-pw'); "
        "print(Flow.objects.create(owner=bob, name='bobs', graph={}).pk)",
    )
    return {"own": own["id"], "other": created.stdout.strip().splitlines()[-1]}


def declared_only(console, path: str, headers: dict[str, str]) -> raw.Answer:
    """Declare a 50 MB upload, send none of it, and read the answer."""
    headers = {"Content-Length": str(50_000_000), "Content-Type": "multipart/form-data; boundary=x", **headers}
    with raw.connect(console.port, timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(raw.head("POST", path, headers))
        return raw.read_answer(sock, started, timeout=10)


@pytest.mark.parametrize("call", UPLOAD_CALLS)
def test_no_credential_is_refused_before_the_body(hostile_console, flows, call):
    answer = declared_only(hostile_console, f"/api/flows/{flows['own']}/{call}", {})
    assert answer.status == 401, answer
    assert answer.json() == {"error": MISSING_CREDENTIAL}
    assert answer.headers["connection"] == "close"
    assert answer.seconds < 1.5  # well under the hostile console's 2 s body timeout


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Basic Ym9iOnB3", "Bearer"])
def test_a_bad_credential_is_refused_before_the_body(hostile_console, flows, authorization):
    answer = declared_only(hostile_console, f"/api/flows/{flows['own']}/run", {"Authorization": authorization})
    assert answer.status == 401, answer
    assert answer.json() == {"error": BAD_TOKEN}


@pytest.mark.parametrize("flow", ["other", "missing", "malformed"])
def test_a_flow_the_caller_cannot_see_is_refused_before_the_body(hostile_console, flows, flow):
    flow_id = {"missing": "2f1d5a0e-0000-4000-8000-000000000000", "malformed": "abc"}.get(flow) or flows[flow]
    answer = declared_only(hostile_console, f"/api/flows/{flow_id}/executions", hostile_console.auth)
    assert answer.status == 404, answer
    assert answer.json() == {"error": "no such flow"}


def test_the_owner_with_a_token_uploads(hostile_console, flows):
    status, _, body = Client(hostile_console.url, hostile_console.auth).upload(
        f"/api/flows/{flows['own']}/executions", image_bytes(64, 48)
    )
    assert status == 201, body


class Inner:
    """The application behind the gate: records whether it was reached."""

    reached = False

    async def __call__(self, scope, receive, send) -> None:
        self.reached = True
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def through_gate(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict | None, bool]:
    inner = Inner()
    sent: list[dict] = []

    async def receive() -> dict:
        raise AssertionError("the gate read the body")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await UploadGateASGIMiddleware(inner)(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body) if body else None, inner.reached


@pytest.mark.django_db(transaction=True)
async def test_a_session_cookie_is_judged_as_the_api_judges_it(user, other_user, settings):
    own = await Flow.objects.acreate(owner=user, name="mine", graph={})
    theirs = await Flow.objects.acreate(owner=other_user, name="theirs", graph={})
    browser = DjangoClient()
    await browser.aforce_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    assert await through_gate(f"/api/flows/{own.pk}/run", [(b"cookie", cookie)]) == (204, None, True)
    assert (await through_gate(f"/api/flows/{theirs.pk}/run", [(b"cookie", cookie)]))[:2] == (
        404,
        {"error": "no such flow"},
    )
    forged = f"{settings.SESSION_COOKIE_NAME}=not-a-session".encode()
    assert await through_gate(f"/api/flows/{own.pk}/run", [(b"cookie", forged)]) == (
        401,
        {"error": MISSING_CREDENTIAL},
        False,
    )
    # Logged out, or the password changed since: the session no longer counts.
    user.set_password("a-new-password-99")
    await user.asave()
    assert (await through_gate(f"/api/flows/{own.pk}/run", [(b"cookie", cookie)]))[0] == 401


@pytest.mark.django_db(transaction=True)
async def test_other_calls_pass_untouched():
    for method, path in [("GET", "/api/flows/x/run"), ("POST", "/api/flows"), ("POST", "/api/flows/x/cancel")]:
        inner = Inner()

        async def send(message: dict) -> None:
            pass

        await UploadGateASGIMiddleware(inner)({"type": "http", "method": method, "path": path}, None, send)
        assert inner.reached, (method, path)


class Recording(Inner):
    """The application behind the gate: records the scope it was given."""

    scope: dict | None = None

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        await super().__call__(scope, receive, send)


@pytest.mark.django_db(transaction=True)
async def test_a_bearer_tokens_user_and_flow_go_on_to_the_view_and_a_sessions_do_not(user, token, settings):
    own = await Flow.objects.acreate(owner=user, name="mine", graph={"nodes": []})

    async def scope_behind_gate(headers):
        inner = Recording()

        async def send(message: dict) -> None:
            pass

        scope = {"type": "http", "method": "POST", "path": f"/api/flows/{own.pk}/run", "headers": headers}
        await UploadGateASGIMiddleware(inner)(scope, None, send)
        assert inner.reached
        return inner.scope

    checked = (await scope_behind_gate([(b"authorization", f"Bearer {token}".encode())]))[VOUCHED]
    assert isinstance(checked, Vouched)
    assert checked.authorization == f"Bearer {token}"
    assert checked.user.pk == user.pk and checked.flow.pk == own.pk and checked.flow.graph == {"nodes": []}

    browser = DjangoClient()
    await browser.aforce_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    assert VOUCHED not in await scope_behind_gate([(b"cookie", cookie)])  # the view checks it, with CSRF


@pytest.mark.django_db(transaction=True)
async def test_two_authorization_headers_are_judged_as_the_view_reads_them_joined(user, other_user, token):
    from flows.models import ApiToken

    own = await Flow.objects.acreate(owner=user, name="mine", graph={})
    _, others = await sync_to_async(ApiToken.issue)(other_user, name="theirs")
    for first, second in ((token, token), (others, token), (token, others)):
        headers = [(b"authorization", f"Bearer {first}".encode()), (b"authorization", f"Bearer {second}".encode())]
        assert await through_gate(f"/api/flows/{own.pk}/run", headers) == (401, {"error": BAD_TOKEN}, False)
