"""The triggers page in a real Chromium against a live console with a folder root: create, watch, pause, delete."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import ConsoleErrors
from tests.browser.helpers import PLAIN_GRAPH, create_flow, make_photo
from tests.support.http import Client
from tests.support.services import LiveConsole, live_console

pytestmark = pytest.mark.browser
USERNAME, PASSWORD = "tess", "tileflow-triggers-pw"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("photos")


@pytest.fixture(scope="module")
def triggers_console(tmp_path_factory, photos) -> Iterator[LiveConsole]:
    with live_console(
        tmp_path_factory.mktemp("triggers-live"),
        username=USERNAME,
        password=PASSWORD,
        TILEFLOW_FOLDER_ROOTS=f"photos={photos}",
        TILEFLOW_TRIGGER_POLL_SECONDS="0.3",
        TILEFLOW_TRIGGER_SETTLE_SECONDS="0.2",
    ) as console:
        yield console


@pytest.fixture
def triggers_page(browser, triggers_console: LiveConsole, console_errors: ConsoleErrors) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    console_errors.watch(page)
    page.goto(f"{triggers_console.url}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{triggers_console.url}/")
    yield page
    context.close()


def test_create_watch_pause_and_delete_a_trigger(triggers_page, triggers_console, photos, console_errors, tmp_path):
    page = triggers_page
    client = Client(triggers_console.url, headers=triggers_console.auth)
    flow_id = create_flow(client, "to-png", PLAIN_GRAPH)
    (photos / "inbox").mkdir()
    page.goto(f"{triggers_console.url}/flows/{flow_id}/triggers/")
    page.wait_for_selector("#no-triggers:not([hidden])")
    assert page.locator("#source-root option").all_inner_texts() == ["photos"]

    page.fill("#source-path", "../etc")
    page.fill("#destination-path", "done")
    page.click("#create-trigger")
    page.wait_for_selector("#trigger-form-errors:not([hidden])")
    assert "may not contain '..'" in page.inner_text("#trigger-form-errors")

    page.fill("#source-path", "inbox")
    page.click("#create-trigger")
    card = page.locator("article.trigger")
    card.wait_for()
    assert card.locator(".trigger-route").inner_text() == "photos:/inbox → photos:/done"
    assert card.get_attribute("data-enabled") == "true"
    assert page.locator("#trigger-form-errors").is_hidden()

    (photos / "inbox" / "trip").mkdir()
    make_photo(tmp_path / "beach.png", (300, 200))
    shutil.copy(tmp_path / "beach.png", photos / "inbox" / "trip" / "beach.png")
    page.locator(".trigger-details summary").click()
    row = page.locator('.trigger-events tr[data-key="trip/beach.png"]')
    row.locator(".status-succeeded").wait_for(timeout=60_000)
    assert "done/trip/beach.png" in row.inner_text()
    assert (photos / "done" / "trip" / "beach.png").is_file()
    assert row.locator("a").get_attribute("href").startswith("/executions/")
    assert "1 done" in card.locator(".trigger-counts").inner_text()
    assert card.locator(".trigger-secret").count() == 0  # only S3 triggers take notifications

    page.click('article.trigger button[data-action="pause"]')
    page.wait_for_selector('article.trigger[data-enabled="false"]')
    assert card.locator(".trigger-state").inner_text() == "paused"
    status, triggers = client.json("GET", f"/api/triggers?flow={flow_id}")
    assert status == 200 and triggers["triggers"][0]["enabled"] is False
    page.click('article.trigger button[data-action="resume"]')
    page.wait_for_selector('article.trigger[data-enabled="true"]')

    (photos / "inbox").rename(photos / "inbox-moved")  # the folder vanishes: the card says so
    page.wait_for_selector("article.trigger .trigger-error", timeout=60_000)
    assert "does not exist" in card.locator(".trigger-error").inner_text()
    (photos / "inbox-moved").rename(photos / "inbox")
    page.wait_for_selector("article.trigger .trigger-error", state="detached", timeout=60_000)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click('article.trigger button[data-action="delete"]')
    page.wait_for_selector("#no-triggers:not([hidden])")
    assert page.locator("article.trigger").count() == 0
    assert client.json("GET", f"/api/triggers?flow={flow_id}")[1] == {"triggers": []}
    refused = [error for error in console_errors if "status of 400" in error and "/triggers" in error]
    assert len(refused) == 1 and console_errors == refused  # the "../etc" we sent, nothing else


def test_the_editor_links_to_the_triggers_page(triggers_page, triggers_console):
    client = Client(triggers_console.url, headers=triggers_console.auth)
    flow_id = create_flow(client, "linked", PLAIN_GRAPH)
    triggers_page.goto(f"{triggers_console.url}/flows/{flow_id}/")
    triggers_page.click("#flow-menu-button")  # the editor keeps it in its Flow menu
    triggers_page.click("#open-triggers")
    triggers_page.wait_for_url(f"{triggers_console.url}/flows/{flow_id}/triggers/")
    assert triggers_page.locator("h1").inner_text().startswith("Triggers")


def test_deleting_a_flow_says_its_triggers_go_too(triggers_page, triggers_console, photos):
    page = triggers_page
    client = Client(triggers_console.url, headers=triggers_console.auth)
    flow_id = create_flow(client, "watched", PLAIN_GRAPH)
    for folder in ("a", "b"):
        (photos / f"in-{folder}").mkdir()
        route = {"source": {"root": "photos", "path": f"in-{folder}"}, "destination": {"root": "photos", "path": "out"}}
        status, body = client.json("POST", f"/api/flows/{flow_id}/triggers", {"type": "folder", **route})
        assert status == 201, body

    page.goto(f"{triggers_console.url}/")
    page.locator(f'tr[data-flow-id="{flow_id}"] [data-flow-action="delete"]').click()
    page.locator("#confirm").wait_for()
    assert page.inner_text("#confirm-text") == (
        "Delete the flow “watched”? Its 2 triggers stop and are deleted too;"
        " its executions stay, with the graph they ran."
    )
    page.click('#confirm [value="cancel"]')

    page.goto(f"{triggers_console.url}/flows/{flow_id}/")
    page.click("#flow-menu-button")
    page.click("#delete-flow")
    page.locator("#confirm").wait_for()
    assert "Its 2 triggers stop and are deleted too" in page.inner_text("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_url(f"{triggers_console.url}/")
    assert client.json("GET", f"/api/triggers?flow={flow_id}")[1] == {"triggers": []}
