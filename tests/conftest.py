"""Fixtures shared by every test: isolated media and step modules."""

import json

import pytest
from hypothesis import settings as hypothesis_settings

# This machine is small and shared: time limits per example would fail tests at random, not bugs.
hypothesis_settings.register_profile("tileflow", deadline=None)
hypothesis_settings.load_profile("tileflow")


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-secret-pw")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-secret-pw")


@pytest.fixture
def owner(user):
    """The user whose objects a test protects (an alias that reads better in permission tests)."""
    return user


@pytest.fixture
def stranger(other_user):
    """Another user, who must see none of the owner's objects."""
    return other_user


@pytest.fixture
def token(user) -> str:
    """Return a fresh API token of `user` (the text, as a script would hold it)."""
    from flows.models import ApiToken

    return ApiToken.issue(user, name="tests")[1]


@pytest.fixture
def api_client(client, token):
    """Return a test client that sends `user`'s bearer token with every request."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def fresh_channel_layer():
    """Give the test its own in-memory channel layer (its queues belong to the test's event loop)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Run the browser tests last: Playwright's sync API holds an event loop in the main thread."""
    items.sort(key=lambda item: "tests/browser/" in str(item.path).replace("\\", "/"))


@pytest.fixture
def http(token):
    """Return an async test client that sends `user`'s bearer token with every request."""
    from tests.support.runs import TokenClient

    return TokenClient(token)


@pytest.fixture(scope="session")
def hostile_console(tmp_path_factory):
    """One real console (Daphne) for raw-socket tests of limits and errors: a 2 s body timeout, its own TMPDIR."""
    from tests.support.services import live_console

    workdir = tmp_path_factory.mktemp("hostile")
    (workdir / "tmp").mkdir()
    with live_console(workdir, TMPDIR=str(workdir / "tmp"), TILEFLOW_BODY_TIMEOUT_SECONDS="2") as console:
        console.tmp = workdir / "tmp"
        yield console


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's standalone server) on loopback, for the whole session."""
    from tests.support.s3 import s3_server as start

    with start(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def trigger_places(settings, tmp_path, s3_server):
    """Configure a folder root `photos` and an S3 connection `store`; return the root's path."""
    from flows.trigger_stores import forget_configuration

    root = tmp_path / "photos"
    root.mkdir()
    settings.TILEFLOW = {
        **settings.TILEFLOW,
        "FOLDER_ROOTS": f"photos={root},spare={tmp_path / 'spare'}",
        "S3_CONNECTIONS": json.dumps({"store": s3_server.connection()}),
        "S3_TIMEOUT_SECONDS": 3.0,
        "TRIGGER_POLL_SECONDS": 0.2,
        "TRIGGER_SETTLE_SECONDS": 0.0,
    }
    forget_configuration()
    yield root
    forget_configuration()
