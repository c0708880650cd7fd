"""Under ASGI the stock middleware runs on the event loop, and sessions, CSRF and messages still work."""

import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.test import AsyncClient

from flows.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

SPIED = [
    (SecurityMiddleware, "process_request"),
    (SecurityMiddleware, "process_response"),
    (SessionMiddleware, "process_request"),
    (SessionMiddleware, "process_response"),
    (CommonMiddleware, "process_request"),
    (CommonMiddleware, "process_response"),
    (CsrfViewMiddleware, "process_request"),
    (CsrfViewMiddleware, "process_view"),
    (CsrfViewMiddleware, "process_response"),
    (AuthenticationMiddleware, "process_request"),
    (MessageMiddleware, "process_request"),
    (MessageMiddleware, "process_response"),
    (XFrameOptionsMiddleware, "process_response"),
]


@pytest.fixture
def calls(monkeypatch):
    """Record (class, method, thread id) for every call of a stock middleware method by the ASGI handler.

    Views decorated with `csrf_protect` (the login page) run CsrfViewMiddleware's methods too, from
    their own instance in sync mode: those calls are left out.
    """
    seen: list[tuple[str, str, int]] = []

    def spy(cls, name):
        original = getattr(cls, name)

        def method(self, *args):
            if self.async_mode:
                seen.append((cls.__name__, name, threading.get_ident()))
            return original(self, *args)

        return method

    for cls, name in SPIED:
        monkeypatch.setattr(cls, name, spy(cls, name))
    return seen


async def test_an_api_call_passes_the_middleware_without_a_thread(calls, user):
    _, secret = await sync_to_async(ApiToken.issue)(user, name="tests")
    client = AsyncClient()
    loop_thread = threading.get_ident()

    assert (await client.get("/api/steps", headers={"Authorization": f"Bearer {secret}"})).status_code == 200

    names = {(cls, name) for cls, name, _ in calls}
    assert names == {(cls.__name__, name) for cls, name in SPIED}, names
    assert [(cls, name) for cls, name, thread in calls if thread != loop_thread] == []


async def test_logging_in_saves_the_session_and_checks_csrf_in_a_thread(calls, user):
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get("/login/")
    token = page.cookies["csrftoken"].value  # set by CsrfViewMiddleware.process_response, inline
    credentials = {"username": "alice", "password": "alice-secret-pw"}

    refused = await client.post("/login/", credentials)
    answer = await client.post("/login/", {**credentials, "csrfmiddlewaretoken": token})

    assert refused.status_code == 403  # the check ran, in a thread (it reads the form)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert "sessionid" in answer.cookies  # saved by SessionMiddleware.process_response, in a thread
    assert (await client.get("/")).status_code == 200
    loop_thread = threading.get_ident()
    checks = [thread for cls, name, thread in calls if name == "process_view"]
    saves = [thread for cls, name, thread in calls if cls == "SessionMiddleware" and name == "process_response"]
    assert len(checks) == 4 and checks[0] == checks[3] == loop_thread  # the GETs
    assert loop_thread not in checks[1:3]  # the POSTs
    assert saves[0] == saves[1] == loop_thread and saves[2] != loop_thread  # only the login modified the session


async def test_messages_added_by_a_view_are_stored_and_shown(calls, django_user_model):
    admin = await sync_to_async(django_user_model.objects.create_superuser)("root", password="root-secret-pw")
    token, _ = await sync_to_async(ApiToken.issue)(admin, name="to revoke")
    client = AsyncClient()
    await client.aforce_login(admin)

    revoked = await client.post(
        "/admin/flows/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )

    assert revoked.status_code == 200
    assert "Revoked 1 token(s)." in revoked.content.decode()  # stored by one response, shown by the next
    loop_thread = threading.get_ident()
    stores = [thread for cls, name, thread in calls if cls == "MessageMiddleware" and name == "process_response"]
    assert stores[0] != loop_thread  # a message was added: storing it may read the session
