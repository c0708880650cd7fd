"""The triggers page's shell: the names the administrator configured, never their paths or keys."""

from __future__ import annotations

import pytest

from flows.models import Flow
from flows.trigger_stores import forget_configuration
from tests.support.runs import COMPRESS_AND_WATERMARK

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress", graph=COMPRESS_AND_WATERMARK)


def test_the_form_offers_root_and_connection_names_only(client, user, flow, trigger_places, s3_server):
    client.force_login(user)
    page = client.get(f"/flows/{flow.id}/triggers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option translate="no">photos</option>' in html and '<option translate="no">store</option>' in html
    assert str(trigger_places) not in html and s3_server.secret_key not in html and s3_server.access_key not in html


def test_without_locations_the_page_says_who_configures_them(client, user, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "FOLDER_ROOTS": "", "S3_CONNECTIONS": ""}
    forget_configuration()
    client.force_login(user)
    html = client.get(f"/flows/{flow.id}/triggers/").content.decode()
    forget_configuration()
    assert 'id="no-locations"' in html and "TILEFLOW_FOLDER_ROOTS" in html and 'id="trigger-form"' not in html
