"""Login throttling (console/throttle.py): per username and address, on the login page and the admin's."""

import re

import pytest
import requests
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def _empty_cache(settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "LOGIN_ATTEMPTS_PER_MINUTE": 3}
    cache.clear()
    yield
    cache.clear()


def login(client: Client, password: str, username: str = "alice", path: str = "/login/"):
    return client.post(path, {"username": username, "password": password})


def test_after_the_limit_even_the_right_password_is_refused_with_429(user):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        assert login(client, "wrong").status_code == 200
    blocked = login(client, "alice-secret-pw")
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 61
    assert b"Too many failed login attempts" in blocked.content
    assert "_auth_user_id" not in client.session


def test_the_counter_is_per_username_and_address(user, other_user):
    attacker = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        login(attacker, "wrong")
    assert login(attacker, "wrong").status_code == 429
    # Another address for the same user, and another user from the same address, still log in.
    assert login(Client(REMOTE_ADDR="10.0.0.2"), "alice-secret-pw").status_code == 302
    assert login(attacker, "bob-secret-pw", username="bob").status_code == 302
    assert login(attacker, "alice-secret-pw", username="ALICE ").status_code == 429  # same name, other spelling


def test_a_success_clears_the_counter(user):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for _ in range(2):
        login(client, "wrong")
    assert login(client, "alice-secret-pw").status_code == 302
    client.logout()
    for _ in range(2):
        assert login(client, "wrong").status_code == 200
    assert login(client, "alice-secret-pw").status_code == 302


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_admin_login_shares_the_throttle_and_answers_429(django_user_model, path):
    django_user_model.objects.create_superuser("root", password="root-secret-pw")
    client = Client(REMOTE_ADDR="10.0.0.4")
    for _ in range(3):
        assert login(client, "wrong", username="root", path=path).status_code == 200
    for other in ("/login/", "/admin/login/"):  # the counter is shared between the two forms
        refused = login(client, "root-secret-pw", username="root", path=other)
        assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 61
        assert b"Too many failed login attempts" in refused.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "spelling",
    [
        "\uff43arol",  # full-width c: NFKC folds it to "c"
        "ｃａｒｏｌ",
        "Carol",
        " carol ",
        "ca\u0072ol",
        "\u1d9c" + "arol",  # modifier letter small c: NFKC "c"
    ],
)
def test_look_alike_spellings_share_the_counter(django_user_model, spelling):
    django_user_model.objects.create_user("carol", password="carol-secret-pw")
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(3):
        login(client, "wrong", username="carol")
    refused = login(client, "carol-secret-pw", username=spelling)
    assert refused.status_code == 429, spelling
    assert "_auth_user_id" not in client.session


def test_the_full_width_name_logs_in_when_not_throttled(django_user_model):
    """The spelling the throttle folds is one authentication accepts: the throttle guards the same account."""
    django_user_model.objects.create_user("carol", password="carol-secret-pw")
    client = Client(REMOTE_ADDR="10.0.0.6")
    assert login(client, "carol-secret-pw", username="\uff43arol").status_code == 302


def test_through_daphne_a_look_alike_name_is_throttled(hostile_console):
    session = requests.Session()
    url = f"{hostile_console.url}/login/"

    def attempt(username: str) -> requests.Response:
        page = session.get(url, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"username": username, "password": "wrong", "csrfmiddlewaretoken": token}
        return session.post(url, data=form, timeout=30, allow_redirects=False)

    for _ in range(10):  # the hostile console's TILEFLOW_LOGIN_ATTEMPTS_PER_MINUTE (the default)
        assert attempt("dora").status_code == 200
    refused = attempt("\uff44ora")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
