"""The console without a precise pointer, and on a small screen: keyboard links, visible focus, 1024 wide."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.browser.helpers import PLAIN_GRAPH, create_flow, node, open_editor, start_run, wait_finished
from tests.support.http import Client
from tests.support.runs import image_bytes

pytestmark = pytest.mark.browser

# Every element that takes the focus shows a ring of at least 2 px (an outline: shadows hide under cards).
FOCUS_RING = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return {ring: false, what: 'BODY'};
  const style = getComputedStyle(element);
  const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const what = element.dataset.nodeId || element.id || element.dataset.type || element.textContent.trim().slice(0, 30);
  return {ring, what: what || element.tagName};
}"""


def add_with_keyboard(page, step_type: str) -> str:
    """Add a step from the palette with the keyboard; return the new node's id."""
    before = set(page.eval_on_selector_all(".drawflow-node", "(nodes) => nodes.map((n) => n.dataset.nodeId)"))
    page.focus(f'.palette-item[data-type="{step_type}"]')
    page.keyboard.press("Enter")
    after = set(page.eval_on_selector_all(".drawflow-node", "(nodes) => nodes.map((n) => n.dataset.nodeId)"))
    (added,) = after - before
    return added


def link_with_keyboard(page, source: str, target: str) -> None:
    """Select `source` from the keyboard, press C, and choose `target` in the "Connect to…" list."""
    node(page, source).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#node-id-input[value="{source}"]')
    page.keyboard.press("c")
    assert page.evaluate("() => document.activeElement.id") == "connect-to"
    page.select_option("#connect-to", target)


def link_options(page) -> list[str]:
    values = page.eval_on_selector_all("#connect-to option", "(options) => options.map((o) => o.value)")
    return [value for value in values if value]


def test_build_and_link_a_flow_with_the_keyboard(page, console_server, console_errors):
    open_editor(page, f"{console_server.url}/flows/new/")
    resize = add_with_keyboard(page, "resize")
    page.fill("#node-panel input[name=scale]", "0.5")
    gray = add_with_keyboard(page, "grayscale")
    output = add_with_keyboard(page, "output")
    assert (resize, gray, output) == ("resize-1", "grayscale-1", "output-1")

    link_with_keyboard(page, "source", resize)
    assert page.locator("#canvas .connection").count() == 1
    # The list offers only what may be linked: not the node itself, its upstream, or what it already feeds.
    node(page, resize).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#node-id-input[value="{resize}"]')
    assert sorted(link_options(page)) == sorted([gray, output])
    assert page.locator(".link-list li").all_inner_texts()[0].startswith("← Image input (source)")
    link_with_keyboard(page, resize, gray)
    assert page.evaluate("() => document.activeElement.id") == "connect-to"  # focus stays where the user was
    assert link_options(page) == [output]
    link_with_keyboard(page, gray, output)
    node(page, output).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#node-id-input[value="{output}"]')
    assert page.locator("#connect-to").count() == 0  # an output feeds nothing

    # A link into a port that has one replaces it; a link is removed from the list too, and made again.
    link_with_keyboard(page, resize, output)
    assert page.locator("#canvas .connection").count() == 3
    assert page.locator(f'#canvas .connection[data-to="{output}"]').get_attribute("data-from") == resize
    page.click(f'.link-list li[data-to="{output}"] button')
    assert page.locator("#canvas .connection").count() == 2
    assert output in link_options(page)
    link_with_keyboard(page, gray, output)
    assert page.locator("#canvas .connection").count() == 3

    # Arrow keys move the focused node.
    left = node(page, output).evaluate("(n) => n.offsetLeft")
    node(page, output).focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    assert node(page, output).evaluate("(n) => n.offsetLeft") == left + 80

    page.fill("#flow-name", "made-with-keys")
    page.keyboard.press("Control+s")
    assert page.locator("#flow-errors").is_hidden(), page.locator("#flow-errors").inner_text()
    page.wait_for_url(re.compile(r"/flows/[0-9a-f-]{36}/$"))
    page.wait_for_selector("#dirty-mark", state="hidden")
    flow_id = page.url.rstrip("/").rsplit("/", 1)[1]
    saved = page.evaluate("async (id) => (await fetch(`/api/flows/${id}`)).json()", flow_id)
    edges = {(edge["from"], edge["to"]) for edge in saved["graph"]["edges"]}
    assert edges == {("source", resize), (resize, gray), (gray, output)}
    positions = {n["id"]: n["position"] for n in saved["graph"]["nodes"]}
    assert positions[output]["x"] == left + 80
    assert console_errors == []


def test_custom_and_parameterless_steps_render_their_forms(page, console_server, console_errors):
    open_editor(page, f"{console_server.url}/flows/new/")
    group = page.locator(".palette-group", has=page.locator("h3", has_text="Studio extras"))
    assert group.locator('.palette-item[data-type="tint"]').inner_text().startswith("Colour tint")

    tint = add_with_keyboard(page, "tint")
    field = page.locator('#node-panel [data-param="color"]')
    assert field.locator("input[type=color]").input_value() == "#ff8800"
    text = field.locator("input.color-text")
    assert text.input_value() == "#ff8800"
    text.fill("#12ab")
    assert "colour like #ff8800" in field.locator(".field-error").inner_text()
    text.fill("#12ab34")
    assert field.locator(".field-error").inner_text() == ""
    assert field.locator("input[type=color]").input_value() == "#12ab34"
    assert "color #12ab34" in node(page, tint).locator(".node-summary").inner_text()
    assert page.locator('#node-panel [data-param="amount"] input[type=number]').input_value() == "0.3"

    add_with_keyboard(page, "grayscale")
    assert page.locator("#node-panel .params-form").inner_text() == "This step has no parameters."
    assert page.locator("#node-panel .params-form input").count() == 0
    assert page.locator("#connect-to").is_visible()
    assert console_errors == []


def test_the_hidden_import_input_is_no_tab_stop(page, console_server, console_errors):
    open_editor(page, f"{console_server.url}/flows/new/")
    page.focus("#flow-menu-button")
    page.keyboard.press("Tab")  # the Flow menu is closed: nothing of it, nor the file input, is next
    assert page.evaluate("() => document.activeElement.id") == "save"
    page.focus("#flow-menu-button")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "import-item"
    page.evaluate(  # record the click that would open the file chooser (a dialog headless Chromium may not show)
        """() => document.getElementById("import-flow").addEventListener("click", (event) => {
            event.preventDefault();
            window.importClicked = true;
        })"""
    )
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.importClicked === true", timeout=5000)
    assert console_errors == []


@pytest.mark.parametrize("start", ["editor", "/executions/", "/"])
def test_keyboard_focus_is_always_visible(page, console_server, console_errors, start):
    client = Client(console_server.url, console_server.auth)
    if start == "editor":
        # Two branches, so that "shrink" has somewhere left to link to.
        graph = {
            "nodes": [
                *PLAIN_GRAPH["nodes"],
                {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
                {"id": "gray", "type": "grayscale", "params": {}},
                {"id": "out2", "type": "output", "params": {}},
            ],
            "edges": [
                {"from": "in", "to": "shrink"},
                {"from": "shrink", "to": "out"},
                {"from": "in", "to": "gray"},
                {"from": "gray", "to": "out2"},
            ],
        }
        open_editor(page, f"{console_server.url}/flows/{create_flow(client, f'focus-{uuid.uuid4()}', graph)}/")
    else:
        page.goto(f"{console_server.url}{start}", wait_until="networkidle")
    seen = []
    for _ in range(80):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_RING)
        if focus["what"] == "BODY":
            break
        seen.append(focus)
        if focus["what"] == "shrink" and "node-id-input" not in [f["what"] for f in seen]:
            page.keyboard.press("Enter")  # select it: its parameter form and links join the tab order
    visited = [f["what"] for f in seen]
    assert visited[0] == "Skip to content"
    if start == "editor":
        for expected in ("flow-name", "save", "palette-search", "resize", "in", "shrink", "tab-node", "connect-to"):
            assert expected in visited, (expected, visited)
    assert [f["what"] for f in seen if not f["ring"]] == []
    assert console_errors == []


@pytest.mark.parametrize(("width", "height"), [(1024, 768), (800, 600)])
def test_pages_stay_usable_on_small_screens(page, console_server, console_errors, width, height):
    client = Client(console_server.url, console_server.auth)
    flow_id = create_flow(client, f"small-screen-{width}", PLAIN_GRAPH)
    execution = wait_finished(client, start_run(client, flow_id, image_bytes(600, 400)))
    page.set_viewport_size({"width": width, "height": height})
    for path in ("/", "/executions/", f"/executions/{execution['id']}/", f"/flows/{flow_id}/"):
        if path.startswith("/flows/"):
            open_editor(page, f"{console_server.url}{path}")
        else:
            page.goto(f"{console_server.url}{path}", wait_until="networkidle")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, path
    # The toolbar keeps one row with every control in view; the panels fold over the canvas, which keeps the room.
    toolbar = page.locator(".toolbar").bounding_box()
    assert toolbar["height"] <= 48
    for control in page.locator(".toolbar > :is(button, a, label, input), .toolbar .menu-wrap > button").all():
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, control.inner_text()
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] >= width - 10 and canvas["height"] >= height - 140
    assert page.locator(".palette").is_hidden() and page.locator(".side").is_hidden()
    # Fit keeps the nodes readable: never smaller than three quarters.
    page.click("#fit")
    transform = page.evaluate("() => document.querySelector('#canvas .drawflow').style.transform")
    zoom = float(transform.split("scale(")[1][:-1])
    assert zoom >= 0.75
    page.click("#toggle-palette")
    assert page.locator(".palette").is_visible()
    page.click("#toggle-palette")
    node(page, "in").locator(".node-head").click()
    assert page.locator(".side").is_visible()  # a selected node opens the details over the canvas
    page.click("#tab-run")
    run = page.locator("#run").bounding_box()
    assert run["x"] + run["width"] <= width
    page.click("#toggle-side")
    assert page.locator(".side").is_hidden()
    assert console_errors == []
