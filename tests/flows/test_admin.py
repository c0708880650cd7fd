"""Admin pages: flows and executions to look at, tokens to revoke, nothing that bypasses validation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import ApiToken, Execution, ExecutionOutput, Flow
from tests.flows.documents import example_graph

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="root-secret-pw"))
    return client


@pytest.fixture
def execution(user):
    flow = Flow.objects.create(owner=user, name="shrink-it", graph=example_graph())
    started = timezone.now() - timedelta(seconds=10)
    execution = Execution.objects.create(
        owner=user,
        flow=flow,
        flow_name=flow.name,
        flow_version=1,
        graph=flow.graph,
        status=Execution.Status.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(seconds=2.5),
        nodes={"shrink": {"status": "done", "done": 4, "total": 4}},
    )
    ExecutionOutput.objects.create(execution=execution, node="out", content_type="image/jpeg", size=1234)
    return execution


def test_flow_pages_show_the_graph_read_only(staff, execution):
    flow = execution.flow
    listing = staff.get("/admin/flows/flow/")
    assert listing.status_code == 200
    assert "shrink-it" in listing.content.decode()
    page = staff.get(f"/admin/flows/flow/{flow.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&quot;watermark&quot;" in html  # the graph, pretty-printed
    assert 'name="graph"' not in html and 'name="name"' not in html
    assert staff.get("/admin/flows/flow/add/").status_code == 403


def test_execution_list_columns_filters_and_read_only_page(staff, execution):
    listing = staff.get("/admin/flows/execution/")
    assert listing.status_code == 200
    html = listing.content.decode()
    for column in ("column-status", "column-flow_link", "column-owner", "column-created_at", "column-duration"):
        assert column in html
    assert "2.50 s" in html
    assert "shrink-it (v1)" in html
    assert staff.get("/admin/flows/execution/?status__exact=failed").content.decode().count("shrink-it (v1)") == 0
    filtered = staff.get(f"/admin/flows/execution/?status__exact=succeeded&owner__id__exact={execution.owner_id}")
    assert "shrink-it (v1)" in filtered.content.decode()

    page = staff.get(f"/admin/flows/execution/{execution.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&quot;total&quot;: 4" in html
    assert "image/jpeg" in html
    assert 'name="status"' not in html and 'name="graph"' not in html
    assert staff.post(f"/admin/flows/execution/{execution.id}/change/", {"status": "failed"}).status_code == 403
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED


def test_token_pages_hide_the_digest_and_revoke(staff, user):
    live, _ = ApiToken.issue(user, name="live")
    gone, _ = ApiToken.issue(user, name="gone")
    page = staff.get(f"/admin/flows/apitoken/{live.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert live.digest not in html and 'name="digest"' not in html
    assert staff.get("/admin/flows/apitoken/add/").status_code == 403

    response = staff.post(
        "/admin/flows/apitoken/",
        {"action": "revoke", "_selected_action": [str(gone.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 1 token(s)." in response.content.decode()
    gone.refresh_from_db()
    live.refresh_from_db()
    assert gone.revoked_at is not None and live.revoked_at is None
