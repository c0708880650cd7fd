"""Runs seen in the browser: the live preview, cancel, failure, the executions filter, run again, a live page."""

from __future__ import annotations

import re
from pathlib import Path

import pillow_heif
import pytest

from tests.browser.helpers import (
    PLAIN_GRAPH,
    RUN_TIMEOUT_MS,
    create_flow,
    node,
    open_editor,
    start_run,
    wait_finished,
    wait_run_status,
)
from tests.support.http import Client
from tests.support.runs import image_bytes

pytestmark = pytest.mark.browser

LARGE = (6000, 4000)
# Blur and a tiled watermark over every tile, then PNG: a few seconds for LARGE on two cores.
SLOW_GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "soft", "type": "blur", "params": {"radius": 3}},
        {"id": "mark", "type": "watermark", "params": {"text": "Tileflow", "position": "tiled"}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "soft"}, {"from": "soft", "to": "mark"}, {"from": "mark", "to": "out"}],
}
PREVIEW = "#run-results img[data-output='out']"
# The final pixels of an image, drawn small: a preview cut short would leave its last rows transparent.
BOTTOM_ROW_OPAQUE = """(image) => {
  const canvas = Object.assign(document.createElement('canvas'), {width: 60, height: 40});
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0, 60, 40);
  return [...context.getImageData(0, 39, 60, 1).data].filter((_, i) => i % 4 === 3).every((alpha) => alpha === 255);
}"""


@pytest.fixture(scope="module")
def client(console_server) -> Client:
    return Client(console_server.url, console_server.auth)


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "large.jpg"
    path.write_bytes(image_bytes(*LARGE))
    return path


@pytest.fixture(scope="module")
def small_jpeg() -> bytes:
    return image_bytes(900, 600, seed=3)


@pytest.fixture(scope="module")
def truncated_bmp() -> bytes:
    """An image whose header is fine and whose pixels stop half way: its run fails while decoding."""
    whole = image_bytes(1600, 1200, format="BMP", seed=5)
    return whole[: len(whole) // 2]


@pytest.fixture(scope="module")
def truncated_jpeg() -> bytes:
    """A JPEG cut in its pixel data: refused at upload (it has no end-of-image marker)."""
    whole = image_bytes(1600, 1200, seed=5)
    return whole[: len(whole) // 2]


def unexpected(console_errors) -> list[str]:
    """Console errors other than a live preview refused because its run had already ended (409)."""
    return [e for e in console_errors if not ("status of 409" in e and "follow=1" in e)]


def run_in_editor(page, console_server, client: Client, name: str, graph: dict, image: Path) -> None:
    """Save `graph` as a flow, open it in the editor and start it on `image` from the run panel."""
    open_editor(page, f"{console_server.url}/flows/{create_flow(client, name, graph)}/")
    page.click("#tab-run")
    page.set_input_files("#run-file", str(image))
    page.click("#run")


def test_run_panel_preview_fills_in_while_running(page, console_server, client, large_photo, console_errors):
    run_in_editor(page, console_server, client, "preview-large", SLOW_GRAPH, large_photo)
    # The image already has its size, and paints, while the run is still going: the output streams into it.
    page.wait_for_function(
        """(selector) => {
          const image = document.querySelector(selector);
          return image && image.naturalWidth > 0 && document.querySelector('#run-status').textContent === 'running';
        }""",
        arg=PREVIEW,
        timeout=RUN_TIMEOUT_MS,
    )
    preview = page.locator(PREVIEW)
    assert "follow=1" in preview.get_attribute("src")
    assert page.locator("#run-results figure.result-live").count() == 1
    page.evaluate("(selector) => { document.querySelector(selector).dataset.seen = 'during-run'; }", PREVIEW)

    wait_run_status(page, "succeeded")
    page.wait_for_function("(selector) => document.querySelector(selector).complete", arg=PREVIEW)
    # The same element, not reloaded: now a result with its download button, at the output's full size.
    assert preview.get_attribute("data-seen") == "during-run"
    assert preview.is_visible()
    assert preview.bounding_box()["height"] > 100
    size = preview.evaluate("(image) => [image.naturalWidth, image.naturalHeight]")
    assert size == list(LARGE)
    assert preview.evaluate(BOTTOM_ROW_OPAQUE)
    assert page.locator("#run-results figure.result-live").count() == 0
    execution_id = page.get_attribute("#run-link", "href").strip("/").rsplit("/", 1)[1]
    download = page.get_attribute("#run-results a[download]", "href")
    assert download == f"/api/executions/{execution_id}/output?node=out"
    assert page.locator(".output-progress").is_hidden()
    for node_id in ("in", "soft", "mark", "out"):
        assert node(page, node_id).get_attribute("data-status") == "done", node_id
    assert unexpected(console_errors) == []


def test_cancel_from_the_editor(page, console_server, client, large_photo, console_errors):
    run_in_editor(page, console_server, client, "cancel-large", SLOW_GRAPH, large_photo)
    page.wait_for_selector(".drawflow-node[data-status='running']", timeout=RUN_TIMEOUT_MS)
    page.click("#run-cancel")
    wait_run_status(page, "cancelled")

    assert "status-cancelled" in page.get_attribute("#run-status", "class")
    assert page.locator("#run-cancel").is_hidden()
    assert page.locator("#run").is_enabled()
    states = {node_id: node(page, node_id).get_attribute("data-status") for node_id in ("in", "soft", "mark", "out")}
    assert set(states.values()) <= {"done", "cancelled"}, states
    assert states["out"] == "cancelled", states
    assert "state-cancelled" in node(page, "out").get_attribute("class")
    assert page.locator("#run-results figure").count() == 0  # no half-made preview is left as a result

    execution_id = page.get_attribute("#run-link", "href").strip("/").rsplit("/", 1)[1]
    execution = wait_finished(client, execution_id)
    assert execution["status"] == "cancelled"
    assert execution["nodes"]["out"]["done"] < execution["nodes"]["out"]["total"]
    assert unexpected(console_errors) == []


def test_failed_run_shows_the_reason(page, console_server, client, truncated_bmp, tmp_path, console_errors):
    broken = tmp_path / "broken.bmp"
    broken.write_bytes(truncated_bmp)
    run_in_editor(page, console_server, client, "truncated-input", PLAIN_GRAPH, broken)
    wait_run_status(page, "failed")

    page.locator("#run-error").wait_for(state="visible")
    assert "truncated" in page.locator("#run-error").inner_text()
    assert node(page, "in").get_attribute("data-status") == "failed"
    assert "state-failed" in node(page, "in").get_attribute("class")
    assert node(page, "out").get_attribute("data-status") != "done"
    assert page.locator("#run-results figure").count() == 0
    assert unexpected(console_errors) == []


def test_a_refused_upload_says_why_and_starts_nothing(
    page, console_server, client, truncated_jpeg, tmp_path, console_errors
):
    broken = tmp_path / "cut.jpg"
    broken.write_bytes(truncated_jpeg)
    run_in_editor(page, console_server, client, "refused-input", PLAIN_GRAPH, broken)
    page.locator("#run-error").wait_for(state="visible")
    assert page.locator("#run-error").inner_text() == (
        "Could not start the run: the JPEG file is truncated (it has no end-of-image marker)"
    )
    assert page.locator("#run").is_enabled()  # fix the file and try again
    # The browser logs the refused request (400) itself; nothing else may go wrong.
    assert [error for error in unexpected(console_errors) if "status of 400" not in error] == []


@pytest.mark.parametrize("name", ["t.tiff", "h.heic"])
def test_an_image_the_browser_cannot_show_still_runs(page, console_server, client, tmp_path, name, console_errors):
    notes = tmp_path / "notes.txt"
    notes.write_text("no image")
    picture = tmp_path / name
    if name.endswith(".heic"):
        pillow_heif.register_heif_opener()
        picture.write_bytes(image_bytes(320, 200, format="HEIF"))
    else:
        picture.write_bytes(image_bytes(320, 200, format="TIFF"))
    open_editor(page, f"{console_server.url}/flows/{create_flow(client, f'unshown-{name}', PLAIN_GRAPH)}/")
    page.click("#tab-run")

    page.set_input_files("#run-file", str(picture))
    placeholder = page.locator("#run-placeholder")
    placeholder.wait_for(state="visible")  # Chromium shows neither TIFF nor HEIC: a neutral box instead
    assert re.search(rf"{re.escape(name)} · [\d.,]+ K?B", placeholder.inner_text())  # its name and size
    assert page.locator("#run-error").is_hidden()
    assert page.locator(".run-thumb").is_hidden()

    page.set_input_files("#run-file", str(notes))  # neither named, typed nor made as an image: refused here
    page.locator("#run-error").wait_for(state="visible")
    assert "notes.txt is not an image Tileflow reads" in page.inner_text("#run-error")
    assert page.locator("#run").is_disabled() and placeholder.is_hidden()

    page.set_input_files("#run-file", str(picture))
    page.click("#run")
    wait_run_status(page, "succeeded")
    assert unexpected(console_errors) == []


def test_executions_filter_by_status(page, console_server, client, small_jpeg, truncated_bmp, console_errors):
    flow_id = create_flow(client, "filter-by-status", PLAIN_GRAPH)
    good = wait_finished(client, start_run(client, flow_id, small_jpeg))
    bad = wait_finished(client, start_run(client, flow_id, truncated_bmp))
    assert (good["status"], bad["status"]) == ("succeeded", "failed")

    page.goto(f"{console_server.url}/executions/?flow={flow_id}")
    rows = page.locator("#execution-table tbody tr")
    assert rows.count() == 2
    for status, expected in (("failed", bad), ("succeeded", good)):
        page.select_option("#status-filter", status)
        page.wait_for_url(re.compile(rf"status={status}"))
        assert rows.count() == 1
        assert rows.first.locator(".badge").inner_text() == status
        assert rows.first.locator("a").first.get_attribute("href") == f"/executions/{expected['id']}/"
        assert f"flow={flow_id}" in page.url  # the flow filter is kept
    page.select_option("#status-filter", "cancelled")
    page.wait_for_url(re.compile(r"status=cancelled"))
    assert rows.count() == 0
    assert "No executions with status “cancelled”" in page.locator(".empty-line").inner_text()
    page.select_option("#status-filter", "")
    page.wait_for_url(re.compile(r"status=$"))
    assert rows.count() == 2
    assert console_errors == []


def test_run_again_from_the_execution_page(page, console_server, client, small_jpeg, console_errors):
    flow_id = create_flow(client, "run-again", PLAIN_GRAPH)
    first = wait_finished(client, start_run(client, flow_id, small_jpeg))
    assert first["status"] == "succeeded"
    page.goto(f"{console_server.url}/executions/{first['id']}/")
    page.wait_for_selector("#execution.ready")
    page.click("#rerun")
    page.wait_for_url(lambda url: re.search(r"/executions/[0-9a-f-]{36}/$", url) and first["id"] not in url)
    second_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.wait_for_selector("#execution.ready")
    page.wait_for_function(
        "() => document.querySelector('#status-badge').textContent === 'succeeded'", timeout=RUN_TIMEOUT_MS
    )
    second = wait_finished(client, second_id)
    assert second["status"] == "succeeded"
    assert second["flow"] == flow_id
    assert second["outputs"][0]["size"] == first["outputs"][0]["size"]  # the same input, the same PNG
    page.wait_for_function("() => document.querySelector(\"#images img[data-output='out']\")?.naturalWidth === 900")
    assert console_errors == []


def test_execution_page_goes_live_then_shows_the_end(page, console_server, client, large_photo, console_errors):
    flow_id = create_flow(client, "live-page", SLOW_GRAPH)
    execution_id = start_run(client, flow_id, large_photo.read_bytes())
    page.goto(f"{console_server.url}/executions/{execution_id}/")
    page.wait_for_selector("#execution.ready")
    opened = page.evaluate(
        """() => ({
          status: document.querySelector('#status-badge').textContent,
          tiles: [...document.querySelectorAll('#node-table tbody tr td:nth-child(4)')].map((cell) => cell.textContent),
        })"""
    )
    assert opened["status"] in ("queued", "running"), opened
    assert any(not re.fullmatch(r"(\d+)/\1", tiles) for tiles in opened["tiles"]), opened
    assert page.locator("#cancel").is_visible()
    assert "follow=1" in page.get_attribute("#images img[data-output='out']", "src")

    page.wait_for_function(
        "() => document.querySelector('#status-badge').textContent === 'succeeded'", timeout=RUN_TIMEOUT_MS
    )
    cells = page.locator("#node-table tbody tr td:nth-child(4)")
    assert cells.count() == 4
    for tiles in cells.all_inner_texts():
        assert re.fullmatch(r"(\d+)/\1", tiles), tiles
    assert page.locator("#cancel").is_hidden()
    page.wait_for_function("() => document.querySelector(\"#images img[data-output='out']\").complete")
    assert page.locator("#images img[data-output='out']").evaluate("(i) => [i.naturalWidth, i.naturalHeight]") == list(
        LARGE
    )
    assert page.locator("#images a[download][data-output='out']").count() == 1

    # Opened later, the page shows the finished run as it is stored: no socket needed, the plain download.
    page.goto(f"{console_server.url}/executions/{execution_id}/")
    page.wait_for_selector("#execution.ready")
    assert page.locator("#status-badge").inner_text() == "succeeded"
    assert page.locator("#cancel").is_hidden()
    assert page.get_attribute("#images img[data-output='out']", "src") == (
        f"/api/executions/{execution_id}/output?node=out"
    )
    assert page.locator("#timeline .gantt-tile").count() > 0
    assert unexpected(console_errors) == []
