"""Batches in the browser: "Run on many…" from the flows list and the editor, the batch page filling in live."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from tests.browser.helpers import RUN_TIMEOUT_MS, create_flow, open_editor
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def client(console_server) -> Client:
    return Client(console_server.url, console_server.auth)


@pytest.fixture(scope="module")
def flow_id(client) -> str:
    return create_flow(client, "batch-in-browser", COMPRESS_AND_WATERMARK)


@pytest.fixture
def folder(tmp_path):
    """A folder as a person drops it: photos in a sub-folder, a broken one, a note that is no image."""
    root = tmp_path / "holiday"
    (root / "day1").mkdir(parents=True)
    for index, name in enumerate(("a.jpg", "day1/b.jpg", "day1/c.png")):
        format = "PNG" if name.endswith(".png") else "JPEG"
        (root / name).write_bytes(image_bytes(480, 320, format=format, seed=index))
    (root / "day1" / "broken.jpg").write_bytes(image_bytes(480, 320)[:1500])
    (root / "notes.txt").write_text("left out")
    return root


def test_run_on_many_from_the_flows_list_fills_the_batch_page(page, console_server, flow_id, folder, console_errors):
    page.goto(f"{console_server.url}/")
    page.click(f"[data-run-many][data-flow-id='{flow_id}']")
    dialog = page.locator("#run-many")
    assert dialog.is_visible()
    page.set_input_files("#run-many-folder", str(folder))
    summary = page.locator("#run-many-summary")
    assert summary.inner_text() == "4 images · 1 other file left out"
    page.click("#run-many-start")
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}/$"), timeout=RUN_TIMEOUT_MS)

    page.locator("#batch-status.status-failed").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.inner_text("#batch-counts").startswith("4 of 4 done · 3 succeeded · 1 failed")
    items = page.locator("#batch-grid .batch-item")
    assert items.count() == 4
    names = [name.strip() for name in page.locator("#batch-grid .batch-name").all_inner_texts()]
    assert sorted(names) == ["holiday/a.jpg", "holiday/day1/b.jpg", "holiday/day1/broken.jpg", "holiday/day1/c.png"]
    failed = page.locator(".batch-item[data-status=failed]")
    assert failed.count() == 1 and "broken.jpg" in failed.inner_text()
    assert failed.locator(".batch-item-error").inner_text()
    # Thumbnails of the results: decoded by the browser, so real images.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.batch-item[data-status=succeeded] img')]"
        ".filter((img) => img.complete && img.naturalWidth === 240).length === 3",
        timeout=RUN_TIMEOUT_MS,
    )
    page.click("[data-filter=failed]")
    assert page.locator("#batch-grid .batch-item:visible").count() == 1
    assert page.locator("#batch-cancel").is_hidden()

    with page.expect_download() as download:
        page.click("#batch-download")
    with zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())) as results:
        assert sorted(results.namelist()) == [
            "errors.json",
            "holiday/a.jpg",
            "holiday/day1/b.jpg",
            "holiday/day1/c.jpg",
        ]
        assert [entry["name"] for entry in json.loads(results.read("errors.json"))] == ["holiday/day1/broken.jpg"]
    assert not console_errors, console_errors


def test_run_on_many_from_the_editor_takes_a_zip_and_follows_live(
    page, console_server, flow_id, tmp_path, console_errors
):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for index in range(6):
            zipped.writestr(f"set/{index}.jpg", image_bytes(900, 600, seed=index))
    open_editor(page, f"{console_server.url}/flows/{flow_id}/")
    page.click("#flow-menu-button")  # the editor keeps it in its Flow menu
    page.click("[data-run-many]")
    page.set_input_files("#run-many-files", str(archive))
    assert page.inner_text("#run-many-summary") == "the archive photos.zip"
    page.click("#run-many-start")
    page.wait_for_url(re.compile(r"/batches/"), timeout=RUN_TIMEOUT_MS)
    seen = page.evaluate(
        """() => new Promise((resolve) => {
          const counts = [];
          const line = document.getElementById('batch-counts');
          if (line.textContent.startsWith('6 of 6')) resolve([line.textContent]);
          new MutationObserver(() => {
            counts.push(line.textContent);
            if (line.textContent.startsWith('6 of 6')) resolve(counts);
          }).observe(line, {childList: true, characterData: true, subtree: true});
        })"""
    )
    done = [int(text.split(" of ")[0]) for text in seen]
    assert done == sorted(done) and done[-1] == 6
    page.locator("#batch-status.status-succeeded").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.locator("#batch-grid .batch-item[data-status=succeeded]").count() == 6
    assert page.locator("#batch-download").is_visible()
    assert not console_errors, console_errors
