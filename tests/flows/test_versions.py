"""Versions of a flow: every save is kept, listed with what it changed, and restorable as a new save."""

import pytest

from tests.flows.documents import example_document, example_graph

pytestmark = pytest.mark.django_db


def create(api_client, **changes):
    response = api_client.post("/api/flows", example_document(**changes), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def put(api_client, flow_id, document):
    response = api_client.put(f"/api/flows/{flow_id}", document, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_versions_list_what_each_save_changed(api_client):
    flow = create(api_client)
    graph = example_graph()
    graph["nodes"][1]["params"] = {"scale": 0.25, "resample": "bilinear"}  # shrink: scale changed, resample added
    del graph["nodes"][2]["params"]["opacity"]  # mark: opacity removed
    graph["nodes"].append({"id": "grey", "type": "grayscale", "params": {}})
    graph["edges"] = [
        {"from": "in", "to": "shrink"},
        {"from": "shrink", "to": "grey"},
        {"from": "grey", "to": "mark"},
        {"from": "mark", "to": "out"},
    ]
    put(api_client, flow["id"], example_document(name="smaller", graph=graph))

    versions = api_client.get(f"/api/flows/{flow['id']}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["current"] for v in versions] == [True, False]
    latest, first = versions[0]["changes"], versions[1]["changes"]
    assert [n["node"] for n in first["nodes_added"]] == ["in", "mark", "out", "shrink"]
    assert latest["nodes_added"] == [{"node": "grey", "type": "grayscale"}]
    assert latest["nodes_removed"] == []
    assert latest["nodes_changed"] == [
        {"node": "mark", "params_removed": {"opacity": 0.5}},
        {
            "node": "shrink",
            "params_added": {"resample": "bilinear"},
            "params_changed": {"scale": {"from": 0.5, "to": 0.25}},
        },
    ]
    assert latest["edges_added"] == [{"from": "grey", "to": "mark"}, {"from": "shrink", "to": "grey"}]
    assert latest["edges_removed"] == [{"from": "shrink", "to": "mark"}]
    assert latest["renamed"] == {"from": "compress-and-watermark", "to": "smaller"}


def test_restore_makes_an_old_version_current_as_a_new_one(api_client):
    flow = create(api_client)
    graph = example_graph()
    graph["nodes"][1]["params"] = {"scale": 0.1}
    put(api_client, flow["id"], example_document(graph=graph))

    restored = api_client.post(f"/api/flows/{flow['id']}/versions/1/restore")
    assert restored.status_code == 200, restored.content
    assert restored.json()["version"] == 3
    assert restored.json()["graph"] == example_graph()
    versions = api_client.get(f"/api/flows/{flow['id']}/versions").json()["versions"]
    assert versions[0]["restored_from"] == 1
    assert versions[0]["changes"]["nodes_changed"] == [
        {"node": "shrink", "params_changed": {"scale": {"from": 0.1, "to": 0.5}}}
    ]
    old = api_client.get(f"/api/flows/{flow['id']}/versions/2").json()
    assert old["graph"] == graph

    assert api_client.post(f"/api/flows/{flow['id']}/versions/9/restore").status_code == 404


def test_another_users_versions_are_404(api_client, client, other_user):
    flow = create(api_client)
    client.defaults.pop("HTTP_AUTHORIZATION")
    client.force_login(other_user)
    assert client.get(f"/api/flows/{flow['id']}/versions").status_code == 404
    assert client.post(f"/api/flows/{flow['id']}/versions/1/restore").status_code == 404
