"""Login throttling (console/throttle.py): per username and address, on the login page and the admin's."""

import pytest
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


def test_the_admin_login_shares_the_throttle(django_user_model):
    django_user_model.objects.create_superuser("root", password="root-secret-pw")
    client = Client(REMOTE_ADDR="10.0.0.4")
    for _ in range(3):
        login(client, "wrong", username="root", path="/admin/login/")
    refused = login(client, "root-secret-pw", username="root", path="/admin/login/")
    assert refused.status_code == 200 and b"Too many failed login attempts" in refused.content
    assert "_auth_user_id" not in client.session
