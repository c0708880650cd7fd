"""Flows one manages and starts from: templates, rename/duplicate/delete, draft runs, versions, node inspection."""

from __future__ import annotations

import re
import uuid

import pytest
from PIL import Image

from tests.browser.helpers import RUN_TIMEOUT_MS, create_flow, fetch_json, make_photo, node, open_editor, select_node
from tests.support.http import Client

pytestmark = pytest.mark.browser

GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 120}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}, "position": {"x": 290, "y": 120}},
        {"id": "grey", "type": "grayscale", "params": {}, "position": {"x": 540, "y": 120}},
        {"id": "out", "type": "output", "params": {"format": "png"}, "position": {"x": 790, "y": 120}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "grey"}, {"from": "grey", "to": "out"}],
}


@pytest.fixture(scope="module")
def client(console_server) -> Client:
    return Client(console_server.url, console_server.auth)


def wait_succeeded(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('#run-status')?.dataset.status === 'succeeded'"
        " && document.querySelector('#run-stats [data-stat=\"total\"]') !== null",
        timeout=RUN_TIMEOUT_MS,
    )


def test_a_template_runs_from_the_home_page_in_one_click(page, console_server, console_errors):
    page.goto(f"{console_server.url}/")
    cards = page.locator(".template-card")
    assert sorted(cards.evaluate_all("(cs) => cs.map((c) => c.dataset.template)")) == [
        "compress",
        "compress-and-watermark",
        "rotate",
        "thumbnails",
        "watermark",
    ]
    page.click('[data-use-template="thumbnails"]')
    page.wait_for_url(re.compile(r"/flows/[0-9a-f-]{36}/$"))
    wait_succeeded(page)
    assert page.locator("#run-results figure").count() == 3  # the fan-out's three outputs
    for output in ("large-jpeg", "medium-jpeg", "small-webp"):
        assert node(page, output).get_attribute("data-status") == "done"
    assert page.locator(".tf-group .tf-group-title").inner_text() == "Sizes"
    # The same template again is a copy, not an error.
    page.goto(f"{console_server.url}/")
    page.click('[data-use-template="thumbnails"]')
    page.wait_for_url(re.compile(r"/flows/[0-9a-f-]{36}/$"))
    assert page.locator("#flow-name").input_value() == "thumbnails (2)"
    assert console_errors == []


def test_rename_duplicate_delete_from_the_list(page, console_server, console_errors, client):
    name = f"managed-{uuid.uuid4().hex[:6]}"
    flow_id = create_flow(client, name, GRAPH)
    page.goto(f"{console_server.url}/")
    row = page.locator(f'tr[data-flow-id="{flow_id}"]')
    row.locator('[data-flow-action="rename"]').click()
    page.fill("#rename-input", f"{name}-renamed")
    page.click('#rename [value="ok"]')
    page.wait_for_selector(f'tr[data-flow-name="{name}-renamed"]')
    page.locator(f'tr[data-flow-id="{flow_id}"] [data-flow-action="duplicate"]').click()
    page.wait_for_selector(f'tr[data-flow-name="{name}-renamed (copy)"]')
    copy_id = page.locator(f'tr[data-flow-name="{name}-renamed (copy)"]').get_attribute("data-flow-id")

    # Delete asks first; cancelling keeps the flow, confirming removes it and keeps its runs' frozen graph.
    copy_row = page.locator(f'tr[data-flow-id="{copy_id}"]')
    copy_row.locator('[data-flow-action="delete"]').click()
    page.locator("#confirm").wait_for()  # once its triggers are counted: none here, so none are named
    assert page.inner_text("#confirm-text").endswith("? Its executions stay, with the graph they ran.")
    page.click('#confirm [value="cancel"]')
    assert copy_row.count() == 1
    copy_row.locator('[data-flow-action="delete"]').click()
    page.click("#confirm-ok")
    page.wait_for_selector(f'tr[data-flow-id="{copy_id}"]', state="detached")
    assert client.json("GET", f"/api/flows/{copy_id}")[0] == 404
    assert client.json("GET", f"/api/flows/{flow_id}")[1]["name"] == f"{name}-renamed"
    assert console_errors == []


def test_a_run_leaves_the_saved_flow_unchanged_and_a_version_is_restored(
    page, console_server, console_errors, client, tmp_path
):
    flow_id = create_flow(client, f"drafts-{uuid.uuid4().hex[:6]}", GRAPH)
    open_editor(page, f"{console_server.url}/flows/{flow_id}/")
    select_node(page, "shrink")
    page.fill("#node-panel input[name=scale]", "0.25")
    page.keyboard.press("Tab")
    photo = make_photo(tmp_path / "photo.png", (800, 400))
    page.click("#tab-run")
    page.set_input_files("#run-file", str(photo))
    page.click("#run")
    wait_succeeded(page)
    saved = fetch_json(page, f"/api/flows/{flow_id}")
    assert saved["version"] == 1 and saved["graph"]["nodes"][1]["params"] == {"scale": 0.5}
    assert page.locator("#dirty-mark").is_visible()  # the edit is still unsaved
    [execution] = fetch_json(page, f"/api/executions?flow={flow_id}")["executions"]
    assert execution["draft"] is True
    assert execution["graph"]["nodes"][1]["params"] == {"scale": 0.25}
    assert execution["outputs"][0]["size"] > 0

    # The node's own output: a preview of what it produced in that run, its size, mode and timing.
    select_node(page, "grey")
    inspected = page.locator('#node-inspect img[data-inspect="grey"]')
    page.wait_for_function("() => document.querySelector('#node-inspect img')?.naturalWidth > 0")
    assert inspected.evaluate("(i) => [i.naturalWidth, i.naturalHeight]") == [200, 100]
    assert page.locator('#node-inspect [data-fact="size"] dd').inner_text() == "200 × 100 px"
    assert page.locator('#node-inspect [data-fact="mode"] dd').inner_text() == "L"
    assert page.locator('#node-inspect [data-fact="busy"] dd').inner_text() != "—"
    # "grey" feeds the output, so its preview (small enough to keep its size) is exactly the run's result.
    download = "async (url) => [...new Uint8Array(await (await fetch(url)).arrayBuffer())]"
    preview_url = fetch_json(page, f"/api/executions/{execution['id']}/nodes/grey")["url"]
    (tmp_path / "grey.png").write_bytes(bytes(page.evaluate(download, preview_url)))
    (tmp_path / "out.png").write_bytes(bytes(page.evaluate(download, execution["outputs"][0]["url"])))
    with Image.open(tmp_path / "grey.png") as preview, Image.open(tmp_path / "out.png") as result:
        assert preview.mode == result.mode == "L" and preview.size == (200, 100)
        assert preview.tobytes() == result.tobytes()

    # Save makes version 2; the Versions tab says what changed, and restoring version 1 brings 0.5 back.
    page.keyboard.press("Control+s")
    page.wait_for_selector("#saved-mark", state="visible")
    page.click("#tab-versions")
    page.wait_for_selector('#version-list [data-version="2"]')
    assert "shrink: scale 0.5 → 0.25" in page.locator('#version-list [data-version="2"]').inner_text()
    page.click('#version-list [data-restore="1"]')
    page.wait_for_selector('#version-list [data-version="3"]')
    assert "restored from version 1" in page.locator('#version-list [data-version="3"]').inner_text()
    restored = fetch_json(page, f"/api/flows/{flow_id}")
    assert restored["version"] == 3 and restored["graph"]["nodes"][1]["params"] == {"scale": 0.5}
    select_node(page, "shrink")
    assert page.locator("#node-panel input[name=scale]").input_value() == "0.5"
    assert page.locator("#dirty-mark").is_hidden()
    assert console_errors == []
