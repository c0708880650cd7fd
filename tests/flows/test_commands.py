"""createtoken, revoketoken and ensureadmin as an operator runs them."""

import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from flows.auth import authenticate_bearer
from flows.models import ApiToken

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out, **options)
    return out.getvalue()


def test_createtoken_prints_the_token_alone_on_its_last_line(user):
    output = run("createtoken", user.username, "--name", "ci")
    token = output.strip().splitlines()[-1]
    assert token.startswith("tf_") and " " not in token
    row = ApiToken.objects.get()
    assert (row.owner, row.name, row.digest, row.prefix) == (user, "ci", ApiToken.hash(token), token[:10])
    assert token not in output.strip().splitlines()[0]  # shown once, on its own line
    assert authenticate_bearer(f"Bearer {token}") == user


def test_createtoken_for_unknown_or_inactive_user(user):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run("createtoken", "nobody")
    user.is_active = False
    user.save()
    with pytest.raises(CommandError, match="inactive"):
        run("createtoken", user.username)
    assert not ApiToken.objects.exists()


def test_revoketoken_by_prefix_id_or_token(user):
    rows = [ApiToken.issue(user, name=str(index)) for index in range(3)]
    for (row, token_text), argument in zip(rows, ["prefix", "id", "token"], strict=True):
        value = {"prefix": row.prefix, "id": str(row.id), "token": token_text}[argument]
        assert "Revoked token" in run("revoketoken", value)
        row.refresh_from_db()
        assert row.revoked_at is not None, argument
        assert authenticate_bearer(f"Bearer {token_text}") is None
    assert "already revoked" in run("revoketoken", str(rows[1][0].id))


def test_revoketoken_refuses_unknown_short_or_ambiguous(user):
    for prefix, digest in (("tf_abcd123", "1" * 64), ("tf_abcd456", "2" * 64)):
        ApiToken.objects.create(owner=user, prefix=prefix, digest=digest)
    with pytest.raises(CommandError, match="no token matches"):
        run("revoketoken", "tf_zzzzzzz")
    with pytest.raises(CommandError, match="no token matches"):
        run("revoketoken", "tf_")
    with pytest.raises(CommandError, match="matches 2 tokens"):
        run("revoketoken", "tf_abcd")
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 2
    assert "Revoked token" in run("revoketoken", "tf_abcd4")
    assert ApiToken.objects.get(revoked_at__isnull=True).prefix == "tf_abcd123"


def test_ensureadmin_creates_admin_with_a_random_password_once(monkeypatch):
    monkeypatch.delenv("TILEFLOW_ADMIN_PASSWORD", raising=False)
    first = run("ensureadmin")
    password = next(line.split()[1] for line in first.splitlines() if line.strip().startswith("Password:"))
    assert "http://127.0.0.1:8000/login/" in first
    assert "User:      admin" in first
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert authenticate(username="admin", password=password) == admin

    second = run("ensureadmin")
    assert password not in second
    assert "'admin'" in second and "first run" in second
    assert "python manage.py changepassword admin" in second
    assert get_user_model().objects.count() == 1


def test_ensureadmin_passwords_differ_between_installations(monkeypatch):
    monkeypatch.delenv("TILEFLOW_ADMIN_PASSWORD", raising=False)
    passwords = set()
    for _ in range(2):
        get_user_model().objects.all().delete()
        output = run("ensureadmin")
        passwords.add(next(line.split()[1] for line in output.splitlines() if "Password:" in line))
    assert len(passwords) == 2


def test_ensureadmin_uses_the_configured_password(monkeypatch):
    monkeypatch.setenv("TILEFLOW_ADMIN_PASSWORD", "a-long-configured-pass")
    output = run("ensureadmin")
    assert "from TILEFLOW_ADMIN_PASSWORD" in output
    assert authenticate(username="admin", password="a-long-configured-pass") is not None


def test_ensureadmin_leaves_an_existing_superuser_alone(django_user_model):
    django_user_model.objects.create_superuser("root", password="x-secret-x")
    output = run("ensureadmin")
    assert "'root'" in output and "changepassword root" in output
    assert not django_user_model.objects.filter(username="admin").exists()


def test_ensureadmin_never_takes_over_an_ordinary_admin_account(django_user_model):
    ordinary = django_user_model.objects.create_user("admin", password="ordinary-pw-1")
    output = run("ensureadmin")
    assert "createsuperuser" in output
    ordinary.refresh_from_db()
    assert not ordinary.is_superuser
    assert authenticate(username="admin", password="ordinary-pw-1") == ordinary
