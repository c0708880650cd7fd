"""A real live server (daphne) and a headless Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import LiveConsole, live_console

USERNAME = "ada"
PASSWORD = "tileflow-browser-pw"
# Steps of a third party, loaded as TILEFLOW_STEP_MODULES loads them: the palette must show them too.
CUSTOM_STEPS = "tests.browser.custom_steps"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots", action="store_true", default=False, help="write docs/screenshots/*.png from the browser tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the screenshot test out unless --screenshots is given (it writes into docs/)."""
    if config.getoption("--screenshots"):
        return
    kept = [item for item in items if "screenshots" not in item.keywords]
    deselected = [item for item in items if "screenshots" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def console_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    """One console for the whole browser session, with a third-party step module installed.

    The docs' screenshots show what an installation has out of the box: no test step in their palette.
    """
    steps = "" if request.config.getoption("--screenshots") else CUSTOM_STEPS
    with live_console(
        tmp_path_factory.mktemp("live"), username=USERNAME, password=PASSWORD, TILEFLOW_STEP_MODULES=steps
    ) as console:
        yield console


@pytest.fixture(scope="package", autouse=True)
def _sync_playwright_beside_django() -> Iterator[None]:
    """Let Django's fixtures run while Playwright's sync API holds an event loop in this thread.

    Only for the browser tests: everywhere else Django must keep refusing database calls from a loop.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Package scope: the sync API keeps an event loop running in this thread until it stops, and
# the async tests that follow in the same session need the thread without one.
@pytest.fixture(scope="package")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class ConsoleErrors(list):
    """Console errors and uncaught exceptions seen by a page."""

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda message: (
                message.type == "error" and self.append(f"console: {message.text} at {message.location.get('url', '')}")
            ),
        )
        page.on("pageerror", lambda error: self.append(f"pageerror: {error}"))


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser, console_server: LiveConsole, console_errors: ConsoleErrors, tmp_path: Path) -> Iterator:
    """A logged-in page at 1280 by 800 whose console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    console_errors.watch(page)
    page.goto(f"{console_server.url}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console_server.url}/")
    yield page
    context.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "screenshots: writes docs/screenshots (only with --screenshots)")
