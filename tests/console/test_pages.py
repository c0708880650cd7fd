"""The console's pages: rendered for their owner, 404 for others, a login redirect for anonymous visitors."""

import pytest
from django.urls import reverse

from flows.models import Execution, Flow

GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "out"}],
}


@pytest.fixture
def flow(owner):
    return Flow.objects.create(owner=owner, name="<b>shrink</b>", graph=GRAPH)


@pytest.fixture
def execution(owner, flow):
    return Execution.objects.create(
        owner=owner, flow=flow, flow_name=flow.name, graph=GRAPH, status="succeeded", input_size=2048
    )


def page_urls(flow, execution):
    return [
        "/",
        "/flows/new/",
        f"/flows/{flow.id}/",
        "/executions/",
        f"/executions/?flow={flow.id}",
        "/executions/?status=succeeded",
        f"/executions/{execution.id}/",
    ]


def test_login_page_renders(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b"console.css" in response.content


def test_login_then_home(client, owner):
    response = client.post("/login/", {"username": "alice", "password": "alice-secret-pw"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_every_page_renders_for_its_owner(client, owner, flow, execution):
    client.force_login(owner)
    for url in page_urls(flow, execution):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"console.css" in response.content


def test_names_are_escaped(client, owner, flow, execution):
    client.force_login(owner)
    for url in ["/", f"/flows/{flow.id}/", f"/executions/{execution.id}/"]:
        content = client.get(url).content
        assert b"<b>shrink</b>" not in content, url
        assert b"&lt;b&gt;shrink&lt;/b&gt;" in content, url


def test_home_lists_flows_with_last_run(client, owner, flow, execution):
    client.force_login(owner)
    response = client.get("/")
    assert response.context["flows"][0].last_status == "succeeded"
    assert list(response.context["executions"]) == [execution]
    assert reverse("flow-new").encode() in response.content


def test_execution_list_filters(client, owner, flow, execution):
    client.force_login(owner)
    Execution.objects.create(owner=owner, flow=None, flow_name="other", graph=GRAPH, status="failed")
    assert len(client.get("/executions/").context["executions"]) == 2
    assert client.get("/executions/?status=failed").context["executions"][0].flow_name == "other"
    assert client.get(f"/executions/?flow={flow.id}").context["executions"] == [execution]
    assert len(client.get("/executions/?status=bogus").context["executions"]) == 2


def test_execution_page_embeds_frozen_graph(client, owner, execution):
    client.force_login(owner)
    response = client.get(f"/executions/{execution.id}/")
    assert b'id="execution-graph"' in response.content
    assert b'"type": "source"' in response.content


def test_other_users_pages_are_404(client, stranger, flow, execution):
    client.force_login(stranger)
    assert client.get(f"/flows/{flow.id}/").status_code == 404
    assert client.get(f"/executions/{execution.id}/").status_code == 404
    assert client.get(f"/executions/?flow={flow.id}").status_code == 404
    assert len(client.get("/").context["flows"]) == 0


def test_anonymous_visitors_are_sent_to_login(client, flow, execution):
    for url in page_urls(flow, execution):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    response = client.get(f"/flows/{flow.id}/")
    assert response["Location"] == f"/login/?next=/flows/{flow.id}/"


def test_staff_see_the_workers_on_the_home_page_and_others_do_not(client, owner):
    client.force_login(owner)
    assert b'id="worker-table"' not in client.get("/").content
    owner.is_staff = True
    owner.save()
    page = client.get("/").content.decode()
    assert 'id="worker-table"' in page
    assert page.count("<tr><td>") == 1  # the embedded worker of this process


def test_the_home_page_says_so_when_the_workers_cannot_be_listed(client, owner, monkeypatch):
    from runtime import api as runtime

    async def unreachable(**_):
        raise runtime.WorkersUnknown("the channel layer at redis://127.0.0.1:1/0 is unreachable (refused)")

    monkeypatch.setattr(runtime, "workers", unreachable)
    owner.is_staff = True
    owner.save()
    client.force_login(owner)
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "The workers cannot be listed: Redis does not answer." in page and "redis://127.0.0.1:1/0" in page
    assert 'id="worker-table"' not in page


def test_the_home_page_shows_a_worker_that_is_stopping(client, owner, monkeypatch):
    from runtime import api as runtime
    from runtime import roster

    async def listed(**_):
        return [
            roster.entry(threads=2, runs=1, capacity=2, draining=True),
            {**roster.entry(threads=2, runs=0, capacity=2), "name": "other:1"},
        ]

    monkeypatch.setattr(runtime, "workers", listed)
    owner.is_staff = True
    owner.save()
    client.force_login(owner)
    page = client.get("/").content.decode()
    assert page.count("(stopping: finishing its runs)") == 1
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert page.count("（正在停止：完成手头的运行）") == 1


def test_batch_page_and_home_links_to_batches_and_run_on_many(client, owner, stranger, flow):
    from flows.models import Batch

    batch = Batch.objects.create(owner=owner, flow=flow, flow_name=flow.name, graph=GRAPH, status="running")
    client.force_login(owner)
    page = client.get(f"/batches/{batch.id}/").content.decode()
    assert f'data-batch-id="{batch.id}"' in page and "batch/batch-page.js" in page
    assert "&lt;b&gt;shrink&lt;/b&gt;" in page and "<b>shrink</b>" not in page
    assert f'href="/api/batches/{batch.id}/results"' in page
    home = client.get("/").content.decode()
    assert f'href="/batches/{batch.id}/"' in home
    assert f'data-run-many data-flow-id="{flow.id}"' in home and "batch/run-many.js" in home
    editor = client.get(f"/flows/{flow.id}/").content.decode()
    assert f'data-run-many data-flow-id="{flow.id}"' in editor
    client.force_login(stranger)
    assert client.get(f"/batches/{batch.id}/").status_code == 404
    assert f"/batches/{batch.id}/" not in client.get("/").content.decode()
