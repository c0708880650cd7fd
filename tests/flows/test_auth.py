"""Who may call the API: bearer tokens (revocable, last use recorded), the session with CSRF, and ownership."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.http import Http404
from django.test import Client
from django.utils import timezone

from flows.auth import authenticate_bearer, get_owned_or_404
from flows.models import ApiToken, Flow
from tests.flows.documents import CONTRACT_EXAMPLE, example_graph

pytestmark = pytest.mark.django_db

UNAUTHENTICATED = {"error": "authentication required: log in, or send 'Authorization: Bearer <token>'"}
BAD_TOKEN = {"error": "invalid, revoked or malformed token: send 'Authorization: Bearer <token>'"}


@pytest.fixture
def flow(user):
    return Flow.objects.create(owner=user, name="mine", graph=example_graph())


def test_no_credentials_is_401(client, flow):
    for response in (
        client.get("/api/flows"),
        client.get("/api/steps"),
        client.get(f"/api/flows/{flow.id}"),
        client.post("/api/flows", CONTRACT_EXAMPLE, content_type="application/json"),
        client.delete(f"/api/flows/{flow.id}"),
    ):
        assert response.status_code == 401
        assert response.json() == UNAUTHENTICATED
    assert Flow.objects.count() == 1


@pytest.mark.parametrize("header", ["Bearer tf_not-a-token", "Bearer ", "Basic YWxpY2U6YWxpY2U=", "tf_xyz"])
def test_bad_token_is_401(client, flow, header):
    response = client.get(f"/api/flows/{flow.id}", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN


def test_revoked_token_is_401(client, user, token, flow):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(f"/api/flows/{flow.id}", **headers).status_code == 200
    out = io.StringIO()
    call_command("revoketoken", ApiToken.objects.get().prefix, stdout=out)
    response = client.get(f"/api/flows/{flow.id}", **headers)
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN


def test_inactive_users_token_is_refused(user, token):
    assert authenticate_bearer(f"Bearer {token}") == user
    user.is_active = False
    user.save()
    assert authenticate_bearer(f"Bearer {token}") is None


def test_authenticate_bearer_parses_the_header(user, token):
    assert authenticate_bearer(f"bearer   {token} ") == user
    assert authenticate_bearer(token) is None
    assert authenticate_bearer(None) is None
    assert authenticate_bearer("") is None
    assert authenticate_bearer(f"Bearer {token}x") is None


def test_last_used_is_written_at_most_once_a_minute(user, token):
    row = ApiToken.objects.get()
    assert row.last_used_at is None
    authenticate_bearer(f"Bearer {token}")
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)
    authenticate_bearer(f"Bearer {token}")
    row.refresh_from_db()
    assert row.last_used_at == first
    # A minute later the next call records itself again.
    ApiToken.objects.update(last_used_at=first - timedelta(seconds=61))
    authenticate_bearer(f"Bearer {token}")
    row.refresh_from_db()
    assert row.last_used_at > first - timedelta(seconds=1)


def test_another_users_flow_is_404(client, flow, other_user):
    other_token = ApiToken.issue(other_user)[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {other_token}"}
    url = f"/api/flows/{flow.id}"
    document = {**CONTRACT_EXAMPLE, "name": "stolen"}
    for response in (
        client.get(url, **headers),
        client.put(url, document, content_type="application/json", **headers),
        client.delete(url, **headers),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "no such flow"}
    assert client.get("/api/flows", **headers).json() == {"flows": []}
    flow.refresh_from_db()
    assert (flow.name, flow.version) == ("mine", 1)


@pytest.mark.parametrize("flow_id", ["nope", "123", str(uuid.uuid4()), "%20", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_or_unknown_id_is_404(api_client, flow_id):
    response = api_client.get(f"/api/flows/{flow_id}")
    assert response.status_code == 404
    assert response.json() == {"error": "no such flow"}


def test_get_owned_or_404(user, other_user, flow):
    assert get_owned_or_404(Flow, user, str(flow.id)) == flow
    assert get_owned_or_404(Flow.objects.filter(name="mine"), user, flow.id) == flow
    for owner, object_id in ((other_user, flow.id), (user, "x"), (user, None), (user, uuid.uuid4())):
        with pytest.raises(Http404):
            get_owned_or_404(Flow, owner, object_id)
    with pytest.raises(Http404):
        get_owned_or_404(Flow.objects.filter(name="other"), user, flow.id)


def test_session_needs_csrf_for_unsafe_calls(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/flows").status_code == 200  # safe calls need no token

    refused = browser.post("/api/flows", CONTRACT_EXAMPLE, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json() == {"error": "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header"}
    assert not Flow.objects.exists()

    # The editor's way: the csrftoken cookie (as any page sets it) echoed in X-CSRFToken.
    browser.get("/login/")
    csrf = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/flows", CONTRACT_EXAMPLE, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 201, accepted.content
    assert Flow.objects.get().owner == user


def test_bearer_calls_need_no_csrf(user, token):
    script = Client(enforce_csrf_checks=True)
    response = script.post(
        "/api/flows", CONTRACT_EXAMPLE, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 201


def test_logged_out_browser_gets_401_not_a_csrf_error():
    response = Client(enforce_csrf_checks=True).post("/api/flows", CONTRACT_EXAMPLE, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED


@pytest.mark.django_db(transaction=True)
async def test_on_the_event_loop_the_token_the_upload_gate_checked_is_not_looked_up_again(user, token, flow):
    from asgiref.sync import sync_to_async
    from django.test import AsyncRequestFactory
    from ninja.errors import AuthenticationError

    from flows.auth import VOUCHED, Vouched, bearer_auth

    def request(authorization: str, checked: Vouched | None):
        made = AsyncRequestFactory().post("/api/flows/x/run", headers={"Authorization": authorization})
        if checked is not None:
            made.scope[VOUCHED] = checked
        return made

    # What the gate vouched for is taken as it is: this token was never issued, so a lookup would refuse it.
    unissued = Vouched("Bearer never-issued", user, flow)
    assert await bearer_auth(request("Bearer never-issued", unissued)) == user
    # Another header than the one the gate checked is looked up, and refused when it is bad.
    with pytest.raises(AuthenticationError):
        await bearer_auth(request("Bearer something-else", unissued))
    assert (await bearer_auth(request(f"Bearer {token}", None))).pk == user.pk
    # A sync view's thread gets the user itself, not a coroutine.
    assert (await sync_to_async(bearer_auth)(request(f"Bearer {token}", None))).pk == user.pk
