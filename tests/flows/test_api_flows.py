"""The flow API as a script uses it: token from the command, create, read, list, replace, refuse, delete."""

import io
import re
import uuid

import pytest
from django.core.management import call_command

from flows.models import Flow
from tests.flows.documents import CONTRACT_EXAMPLE, example_document, example_graph

pytestmark = pytest.mark.django_db


def command_token(username: str) -> str:
    out = io.StringIO()
    call_command("createtoken", username, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post_flow(client, document, **headers):
    return client.post("/api/flows", document, content_type="application/json", **headers)


def node_errors(response) -> list[tuple[str | None, str]]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"errors"}
    return [(error["node"], error["message"]) for error in body["errors"]]


def test_how_we_will_check(client, user):
    """The issue's script: a token, create, read back identically, list, replace (version grows)."""
    auth = bearer(command_token(user.username))

    created = post_flow(client, CONTRACT_EXAMPLE, **auth)
    assert created.status_code == 201, created.content
    flow = created.json()
    assert set(flow) == {"id", "name", "description", "graph", "version", "created_at", "updated_at"}
    assert {key: flow[key] for key in ("name", "description", "graph")} == CONTRACT_EXAMPLE
    assert flow["version"] == 1
    uuid.UUID(flow["id"])

    read = client.get(f"/api/flows/{flow['id']}", **auth)
    assert read.status_code == 200
    assert read.json() == flow

    listed = client.get("/api/flows", **auth)
    assert listed.status_code == 200
    assert listed.json() == {"flows": [flow]}

    graph = example_graph()
    graph["nodes"][1]["params"] = {"width": 800}
    replaced = client.put(
        f"/api/flows/{flow['id']}",
        example_document(name="renamed", graph=graph),
        content_type="application/json",
        **auth,
    )
    assert replaced.status_code == 200, replaced.content
    body = replaced.json()
    assert (body["id"], body["name"], body["graph"], body["version"]) == (flow["id"], "renamed", graph, 2)
    assert body["created_at"] == flow["created_at"]
    assert body["updated_at"] >= flow["updated_at"]
    assert client.get(f"/api/flows/{flow['id']}", **auth).json() == body


def cyclic():
    graph = example_graph()
    graph["edges"].append({"from": "mark", "to": "shrink"})
    return graph


def two_sources():
    graph = example_graph()
    graph["nodes"].append({"id": "in2", "type": "source", "params": {}})
    graph["edges"].append({"from": "in2", "to": "mark"})
    return graph


def no_output():
    graph = example_graph()
    graph["nodes"].pop()
    graph["edges"].pop()
    return graph


def with_node(node_id, **fields):
    graph = example_graph()
    for node in graph["nodes"]:
        if node["id"] == node_id:
            node.update(fields)
    return graph


def orphan():
    graph = example_graph()
    graph["nodes"].append({"id": "lost", "type": "grayscale", "params": {}})
    return graph


def edge_to_nowhere():
    graph = example_graph()
    graph["edges"].append({"from": "mark", "to": "zz"})
    return graph


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        (cyclic(), ("shrink", "cycle: shrink → mark → shrink")),
        (two_sources(), (None, "graph has 2 source nodes: 'in', 'in2'")),
        (no_output(), (None, "graph has no output node")),
        (with_node("shrink", type="sharpen"), ("shrink", "node 'shrink': unknown step type 'sharpen'")),
        (orphan(), ("lost", "node 'lost' is not reachable from the source")),
        (orphan(), ("lost", "node 'lost' cannot reach an output")),
        (edge_to_nowhere(), (None, "edge 3 ('mark' → 'zz'): node 'zz' does not exist")),
        (
            with_node("mark", params={"text": "© ACME", "opacity": 7}),
            ("mark", "node 'mark': opacity must be between 0 and 1"),
        ),
        (
            with_node("shrink", type="rotate", params={"angle": 45}),
            ("shrink", "node 'shrink': angle must be one of 90, 180, 270"),
        ),
    ],
)
def test_invalid_graphs_are_refused_with_named_errors(api_client, graph, expected):
    response = post_flow(api_client, example_document(graph=graph))
    assert expected in node_errors(response)
    assert not Flow.objects.exists()


def test_replace_with_invalid_graph_keeps_the_flow(api_client):
    flow = post_flow(api_client, CONTRACT_EXAMPLE).json()
    response = api_client.put(
        f"/api/flows/{flow['id']}", example_document(graph=cyclic()), content_type="application/json"
    )
    assert ("shrink", "cycle: shrink → mark → shrink") in node_errors(response)
    assert api_client.get(f"/api/flows/{flow['id']}").json() == flow


def test_name_is_unique_per_owner(api_client, client, other_user):
    assert post_flow(api_client, CONTRACT_EXAMPLE).status_code == 201
    again = post_flow(api_client, example_document(graph=cyclic()))
    assert node_errors(again) == [
        (None, "you already have a flow named 'compress-and-watermark'; flow names are unique per user"),
        ("shrink", "node 'shrink': a step takes exactly one input, but 2 nodes feed it: 'in', 'mark'"),
        ("shrink", "cycle: shrink → mark → shrink"),
    ]
    assert post_flow(client, CONTRACT_EXAMPLE, **bearer(command_token(other_user.username))).status_code == 201


def test_replace_may_keep_its_name_but_not_take_another(api_client):
    first = post_flow(api_client, CONTRACT_EXAMPLE).json()
    second = post_flow(api_client, example_document(name="second")).json()
    url = f"/api/flows/{second['id']}"
    same_name = api_client.put(url, example_document(name="second"), content_type="application/json")
    assert same_name.status_code == 200
    assert same_name.json()["version"] == 2
    taken = api_client.put(url, example_document(name=first["name"]), content_type="application/json")
    assert node_errors(taken) == [
        (None, "you already have a flow named 'compress-and-watermark'; flow names are unique per user")
    ]


def test_delete(api_client):
    flow = post_flow(api_client, CONTRACT_EXAMPLE).json()
    response = api_client.delete(f"/api/flows/{flow['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert api_client.get(f"/api/flows/{flow['id']}").json() == {"error": "no such flow"}
    assert api_client.delete(f"/api/flows/{flow['id']}").status_code == 404


def test_list_holds_only_the_callers_flows_newest_change_first(api_client, other_user):
    Flow.objects.create(owner=other_user, name="theirs", graph=example_graph())
    older = post_flow(api_client, example_document(name="older")).json()
    newer = post_flow(api_client, example_document(name="newer")).json()
    names = [flow["name"] for flow in api_client.get("/api/flows").json()["flows"]]
    assert names == ["newer", "older"]
    api_client.put(f"/api/flows/{older['id']}", example_document(name="older"), content_type="application/json")
    names = [flow["name"] for flow in api_client.get("/api/flows").json()["flows"]]
    assert names == ["older", "newer"]
    assert newer["id"] != older["id"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", None),
        ("[1, 2]", [(None, "the request body must be a JSON object")]),
        ("", [(None, "the request body must be a JSON object")]),
        ('{"name": "  ", "graph": {}}', [(None, "name must not be empty")]),
        ("{}", [(None, "name is required"), (None, "graph is required")]),
        ('{"name": "", "graph": []}', [(None, "name must not be empty"), (None, "graph must be an object")]),
        ('{"name": 5, "graph": {}}', None),
    ],
)
def test_malformed_bodies_are_4xx_in_the_contract_shape(api_client, body, expected):
    response = api_client.post("/api/flows", body, content_type="application/json")
    assert response.status_code == 400
    payload = response.json()
    assert "detail" not in payload
    if expected is None:
        assert set(payload) in ({"error"}, {"errors"})
        text = payload.get("error") or payload["errors"][0]["message"]
        assert text
    else:
        assert node_errors(response) == expected


def test_bad_json_names_the_problem(api_client):
    response = api_client.post("/api/flows", "{not json", content_type="application/json")
    assert response.json()["error"].startswith("the request body is not valid JSON")


def test_graph_limits_come_from_settings(api_client, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_NODES": 3, "MAX_WATERMARK_TEXT": 4}
    errors = node_errors(post_flow(api_client, CONTRACT_EXAMPLE))
    assert errors == [
        (None, "graph has 4 nodes; the limit is 3"),
        ("mark", "node 'mark': text is 6 characters long; the limit is 4"),
    ]


def test_steps_catalog(api_client):
    response = api_client.get("/api/steps")
    assert response.status_code == 200
    steps = {entry["type"]: entry for entry in response.json()["steps"]}
    assert {"source", "output", "resize", "watermark", "rotate", "grayscale", "blur"} <= set(steps)
    for entry in steps.values():
        assert {"type", "label", "category", "description", "params_schema"} <= set(entry)
        assert entry["params_schema"]["type"] == "object"
    watermark = steps["watermark"]["params_schema"]
    assert watermark["title"] == "Text watermark"
    assert watermark["required"] == ["text"]
    assert watermark["properties"]["opacity"] == {
        "default": 0.5,
        "maximum": 1,
        "minimum": 0,
        "title": "Opacity",
        "type": "number",
    }
    assert watermark["properties"]["color"]["format"] == "color"
    assert watermark["properties"]["position"]["enum"][-1] == "tiled"
    # Optional values read as their type, with no null default: "left out" means automatic.
    assert watermark["properties"]["font_size"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 2000,
        "title": "Font Size",
        "description": "pixels; automatic when left out",
    }
    scale = steps["resize"]["params_schema"]["properties"]["scale"]
    assert "anyOf" not in scale and "default" not in scale
    assert (scale["type"], scale["exclusiveMinimum"], scale["maximum"]) == ("number", 0, 1)
    assert steps["rotate"]["params_schema"]["properties"]["angle"]["enum"] == [90, 180, 270]
    assert steps["grayscale"]["params_schema"] == {
        "additionalProperties": False,
        "properties": {},
        "title": "Grayscale",
        "type": "object",
    }


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert {"/api/steps", "/api/flows", "/api/flows/{flow_id}"} <= set(paths)
    assert set(paths["/api/flows/{flow_id}"]) >= {"get", "put", "delete"}
    assert set(paths["/api/flows"]) >= {"get", "post"}
    schemes = document["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"http", "apiKey"}

    docs = client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    # Every script and stylesheet is ours: no CDN, no other host (the CSRF token may spell "cdn" by chance).
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/") and not source.startswith("//") for source in sources), sources


def test_swagger_assets_are_served_locally():
    from django.contrib.staticfiles import finders

    for asset in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"):
        assert finders.find(asset), asset


def test_rename_keeps_the_graph_and_adds_a_version(api_client):
    flow = post_flow(api_client, CONTRACT_EXAMPLE).json()
    renamed = api_client.patch(f"/api/flows/{flow['id']}", {"name": "  thumbs  "}, content_type="application/json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "thumbs"
    assert renamed.json()["graph"] == CONTRACT_EXAMPLE["graph"]
    assert renamed.json()["version"] == 2
    post_flow(api_client, example_document(name="other"))
    taken = api_client.patch(f"/api/flows/{flow['id']}", {"name": "other"}, content_type="application/json")
    assert node_errors(taken) == [(None, "you already have a flow named 'other'; flow names are unique per user")]


def test_duplicate_gets_a_free_name_and_its_own_history(api_client):
    flow = post_flow(api_client, CONTRACT_EXAMPLE).json()
    first = api_client.post(f"/api/flows/{flow['id']}/duplicate")
    second = api_client.post(f"/api/flows/{flow['id']}/duplicate")
    assert first.status_code == second.status_code == 201, first.content
    assert first.json()["name"] == "compress-and-watermark (copy)"
    assert second.json()["name"] == "compress-and-watermark (copy) (2)"
    assert first.json()["graph"] == CONTRACT_EXAMPLE["graph"] and first.json()["version"] == 1
    named = api_client.post(f"/api/flows/{flow['id']}/duplicate", {"name": "mine"}, content_type="application/json")
    assert named.json()["name"] == "mine"
    for wrong in ({"name": None}, {"name": 3}, {"name": " "}, ["mine"]):
        refused = api_client.post(f"/api/flows/{flow['id']}/duplicate", wrong, content_type="application/json")
        assert refused.status_code == 400 and ("name" in str(refused.json()) or "object" in str(refused.json()))


def test_import_as_a_copy_when_the_name_exists(api_client):
    post_flow(api_client, CONTRACT_EXAMPLE)
    assert post_flow(api_client, CONTRACT_EXAMPLE).status_code == 400
    copy = api_client.post("/api/flows?on_conflict=copy", CONTRACT_EXAMPLE, content_type="application/json")
    assert copy.status_code == 201
    assert copy.json()["name"] == "compress-and-watermark (2)"


def test_deleting_a_flow_keeps_its_executions_graph(api_client, user):
    from flows.models import Execution

    flow = post_flow(api_client, CONTRACT_EXAMPLE).json()
    execution = Execution.objects.create(
        owner=user, flow_id=flow["id"], flow_name=flow["name"], graph=flow["graph"], status="succeeded"
    )
    assert api_client.delete(f"/api/flows/{flow['id']}").status_code == 204
    execution.refresh_from_db()
    assert execution.flow_id is None
    assert execution.graph == CONTRACT_EXAMPLE["graph"] and execution.flow_name == "compress-and-watermark"


def test_steps_follow_accept_language_and_carry_the_other_language(api_client):
    chinese = api_client.get("/api/steps", HTTP_ACCEPT_LANGUAGE="zh-Hans").json()["steps"]
    blur = next(step for step in chinese if step["type"] == "blur")
    assert blur["label"] == "高斯模糊"
    assert blur["category_key"] == "Filter"
    assert "Gaussian blur" in blur["aliases"]
    assert blur["params_schema"]["properties"]["radius"]["title"] == "半径"
    english = api_client.get("/api/steps", HTTP_ACCEPT_LANGUAGE="en").json()["steps"]
    blur = next(step for step in english if step["type"] == "blur")
    assert blur["label"] == "Gaussian blur"
    assert "高斯模糊" in blur["aliases"]
    watermark = next(step for step in english if step["type"] == "watermark")
    assert watermark["params_schema"]["properties"]["position"]["x-choice-labels"]["bottom-right"] == "bottom right"
