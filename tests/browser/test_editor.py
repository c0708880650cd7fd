"""The editor prevents mistakes and handles many nodes: links checked as drawn, clipboard, selection, groups."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.browser.helpers import connect, create_flow, fetch_json, node, open_editor
from tests.support.http import Client

pytestmark = pytest.mark.browser

CHAIN = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 120}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}, "position": {"x": 290, "y": 120}},
        {"id": "mark", "type": "watermark", "params": {"text": "水印"}, "position": {"x": 540, "y": 120}},
        {"id": "out", "type": "output", "params": {"format": "png"}, "position": {"x": 790, "y": 120}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "mark"}, {"from": "mark", "to": "out"}],
}
EDGES = (
    "() => [...document.querySelectorAll('#canvas .connection')].map((c) => `${c.dataset.from}>${c.dataset.to}`).sort()"
)
POSITION = "(n) => [parseFloat(n.style.left), parseFloat(n.style.top)]"


@pytest.fixture(scope="module")
def client(console_server) -> Client:
    return Client(console_server.url, console_server.auth)


def flow_page(page, console_server, client, graph=CHAIN) -> str:
    flow_id = create_flow(client, f"editor-{uuid.uuid4().hex[:8]}", graph)
    open_editor(page, f"{console_server.url}/flows/{flow_id}/")
    return flow_id


def click_node(page, node_id: str, **options) -> None:
    node(page, node_id).locator(".node-head").click(**options)


def test_wiring_mistakes_are_refused_as_drawn(page, console_server, console_errors, client):
    flow_page(page, console_server, client)
    # A link that would close a cycle is refused at the cursor, naming the loop.
    connect(page, "mark", "shrink")
    assert page.evaluate(EDGES) == ["in>shrink", "mark>out", "shrink>mark"]
    tip = page.locator("#wire-tip")
    assert tip.is_visible() and tip.get_attribute("data-kind") == "refused"
    assert "mark → shrink" in tip.inner_text() and "cycle" in tip.inner_text()
    box = tip.bounding_box()
    target = node(page, "shrink").locator(".input").bounding_box()
    assert abs(box["x"] - target["x"]) < 60 and abs(box["y"] - target["y"]) < 60  # shown where the pointer let go

    # A second link into a one-input port replaces the old one, and says so; one undo brings the old one back.
    connect(page, "in", "mark")
    assert page.evaluate(EDGES) == ["in>mark", "in>shrink", "mark>out"]
    assert tip.get_attribute("data-kind") == "replaced" and "shrink" in tip.inner_text()
    page.locator("#canvas").click(position={"x": 20, "y": 300})
    page.keyboard.press("Control+z")
    assert page.evaluate(EDGES) == ["in>shrink", "mark>out", "shrink>mark"]

    # A graph that arrives whole with a mistake (here a file) has the exact link marked and named.
    bad = json.loads(json.dumps(CHAIN))
    bad["edges"].append({"from": "in", "to": "mark"})
    page.set_input_files(
        "#import-flow",
        files=[
            {
                "name": "bad.json",
                "mimeType": "application/json",
                "buffer": json.dumps({"name": "bad", "graph": bad}).encode(),
            }
        ],
    )
    page.wait_for_selector("#canvas .connection.edge-error")
    wrong = page.eval_on_selector_all(
        "#canvas .connection.edge-error", "(cs) => cs.map((c) => `${c.dataset.from}>${c.dataset.to}`)"
    )
    assert sorted(wrong) == ["in>mark", "shrink>mark"]  # both links into the one-input port, no other
    assert "in → mark" in page.locator("#flow-errors").inner_text()
    assert console_errors == []


def test_copy_paste_duplicate_and_groups(page, console_server, console_errors, client):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    flow_id = flow_page(page, console_server, client)
    click_node(page, "shrink")
    click_node(page, "mark", modifiers=["Shift"])
    assert page.locator(".drawflow-node.multi-selected").count() == 2
    page.keyboard.press("Control+c")
    copied = json.loads(page.evaluate("() => navigator.clipboard.readText()"))
    assert [n["id"] for n in copied["graph"]["nodes"]] == ["shrink", "mark"]
    assert copied["graph"]["edges"] == [{"from": "shrink", "to": "mark"}]

    # Into another tab: a new flow gets the two nodes and their link, under fresh ids.
    other = page.context.new_page()
    open_editor(other, f"{console_server.url}/flows/new/")
    other.locator("#canvas").click(position={"x": 30, "y": 30})
    other.keyboard.press("Control+v")
    other.wait_for_selector('.drawflow-node[data-node-id="shrink"]')
    assert other.evaluate(EDGES) == ["shrink>mark"]
    assert other.locator(".drawflow-node").count() == 3
    other.close()

    # Duplicate: copies land beside the originals, never on them; paste again lands further on.
    page.keyboard.press("Control+d")
    assert page.locator(".drawflow-node").count() == 6
    copies = page.eval_on_selector_all(
        ".drawflow-node.multi-selected", "(ns) => ns.map((n) => n.dataset.nodeId).sort()"
    )
    assert copies == ["resize-1", "watermark-1"]
    places = page.eval_on_selector_all(".drawflow-node", f"(ns) => ns.map({POSITION})")
    assert len({tuple(p) for p in places}) == 6
    assert "resize-1>watermark-1" in page.evaluate(EDGES)
    page.keyboard.press("Delete")
    assert page.locator(".drawflow-node").count() == 4

    # Box-select two nodes, group them, title the group; dragging its title moves both.
    canvas = page.locator("#canvas").bounding_box()
    first, last = node(page, "shrink").bounding_box(), node(page, "mark").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(first["x"] - 15, first["y"] - 40)
    page.mouse.down()
    page.mouse.move(last["x"] + last["width"] + 10, last["y"] + last["height"] + 10, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")
    assert page.locator(".drawflow-node.multi-selected").count() == 2
    page.keyboard.press("Control+g")
    page.keyboard.type("Make it small")
    page.keyboard.press("Enter")
    group = page.locator(".tf-group")
    assert group.count() == 1 and group.locator(".tf-group-title").inner_text() == "Make it small"
    before = [node(page, n).evaluate(POSITION) for n in ("shrink", "mark", "out")]
    head = group.locator(".tf-group-head").bounding_box()
    page.mouse.move(head["x"] + 20, head["y"] + 10)
    page.mouse.down()
    page.mouse.move(head["x"] + 20, min(head["y"] + 150, canvas["y"] + canvas["height"] - 30), steps=6)
    page.mouse.up()
    after = [node(page, n).evaluate(POSITION) for n in ("shrink", "mark", "out")]
    assert after[0][1] > before[0][1] + 50 and after[1][1] - before[1][1] == after[0][1] - before[0][1]
    assert after[2] == before[2]

    # The context menu offers what applies to a node of the group; ungroup is undone like any edit.
    node(page, "mark").locator(".node-head").click(button="right")
    actions = page.eval_on_selector_all("#context-menu [data-action]", "(items) => items.map((i) => i.dataset.action)")
    assert {"copy", "cut", "duplicate", "group", "ungroup", "delete"} <= set(actions)
    page.click('#context-menu [data-action="ungroup"]')
    assert group.count() == 0
    page.keyboard.press("Control+z")
    assert page.locator(".tf-group").count() == 1

    page.keyboard.press("Control+s")
    page.wait_for_selector("#saved-mark", state="visible")
    saved = fetch_json(page, f"/api/flows/{flow_id}")
    assert saved["graph"]["groups"] == [{"id": "group-1", "title": "Make it small", "nodes": ["shrink", "mark"]}]
    open_editor(page, f"{console_server.url}/flows/{flow_id}/")
    assert page.locator(".tf-group .tf-group-title").inner_text() == "Make it small"

    # Steps added from the keyboard never land on top of each other; the shortcut sheet opens on "?".
    for _ in range(3):
        page.focus('.palette-item[data-type="grayscale"]')
        page.keyboard.press("Enter")
    places = page.eval_on_selector_all('.drawflow-node[data-type="grayscale"]', f"(ns) => ns.map({POSITION})")
    assert len({tuple(p) for p in places}) == 3
    page.locator("#canvas").click(position={"x": 20, "y": 20})
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert console_errors == []


def test_minimap_and_touchpad_gestures_move_the_view(page, console_server, console_errors, client):
    flow_page(page, console_server, client)
    transform = "() => document.querySelector('#canvas .drawflow').style.transform"
    start = page.evaluate(transform)
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.wheel(80, 30)  # two fingers sliding on a touchpad: the view pans
    panned = page.evaluate(transform)
    assert panned != start and panned.split("scale(")[1] == start.split("scale(")[1]  # moved, same zoom
    page.keyboard.down("Control")  # a pinch arrives as a wheel with Ctrl held
    page.mouse.wheel(0, -40)
    page.keyboard.up("Control")
    zoom = float(page.evaluate(transform).split("scale(")[1].rstrip(")"))
    assert zoom > 1.4 * float(panned.split("scale(")[1].rstrip(")"))  # spreading the fingers zooms in
    before = page.evaluate(transform)
    minimap = page.locator(".minimap").bounding_box()
    page.mouse.click(minimap["x"] + 5, minimap["y"] + 5)  # its top-left corner: the view goes there
    assert page.evaluate(transform) != before
    assert console_errors == []


def test_forms_and_versions_keep_their_text_in_place(page, console_server, client, console_errors):
    long_name = "A" * 120
    flow_id = create_flow(client, long_name, CHAIN)
    renamed = {"name": f"short-{uuid.uuid4().hex[:6]}", "graph": CHAIN}
    status, body = client.json("PUT", f"/api/flows/{flow_id}", renamed)
    assert status == 200, body
    open_editor(page, f"{console_server.url}/flows/{flow_id}/")

    click_node(page, "shrink")
    hint = page.locator('#node-panel [data-param="scale"] .field-hint').inner_text()
    assert hint.count("(0, 1]") == 1, hint  # its description states the range: not said twice

    click_node(page, "out")
    assert "[1, 100]" in page.locator('#node-panel [data-param="quality"] .field-hint').inner_text()
    field = page.locator('#node-panel [data-param="progressive"]')
    box = field.locator("input[type=checkbox]").bounding_box()
    label = field.locator("label").bounding_box()
    assert abs((box["y"] + box["height"] / 2) - (label["y"] + label["height"] / 2)) < 4  # on the label's line
    assert box["x"] + box["width"] <= label["x"]  # right before it, not centred across the panel
    assert box["x"] - field.bounding_box()["x"] < 4

    page.click("#tab-versions")
    page.wait_for_selector('#version-list [data-version="2"]')
    overflowing = page.eval_on_selector_all(
        "#version-list .version", "(cards) => cards.filter((c) => c.scrollWidth > c.clientWidth).length"
    )
    assert overflowing == 0
    assert long_name in page.inner_text('#version-list [data-version="2"]')  # wrapped, not cut
    assert console_errors == []
