"""Gestures and checks the browser tests share."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PIL import Image, ImageDraw

from tests.support.http import Client

FINISHED = ("succeeded", "failed", "cancelled")
PLAIN_GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "out"}],
}
READY_TIMEOUT_MS = 15_000
RUN_TIMEOUT_MS = 90_000


def make_photo(path: Path, size: tuple[int, int] = (1100, 700)) -> Path:
    """Write a PNG with gradients and shapes, so that resampling errors would show."""
    width, height = size
    image = Image.new("RGB", size)
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = ((x * 255) // width, (y * 255) // height, ((x + y) * 97) % 256)
    draw = ImageDraw.Draw(image)
    draw.ellipse((100, 80, 500, 420), fill=(240, 200, 40))
    draw.rectangle((600, 300, 1000, 650), fill=(30, 60, 200))
    image.save(path)
    return path


def open_editor(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#editor.ready", timeout=READY_TIMEOUT_MS)


def node(page, node_id: str):
    return page.locator(f'.drawflow-node[data-node-id="{node_id}"]')


def drag_step(page, step_type: str, x: int, y: int) -> None:
    """Drag a step from the palette and drop it at (x, y) inside the canvas."""
    page.drag_and_drop(f'.palette-item[data-type="{step_type}"]', "#canvas", target_position={"x": x, "y": y})


def connect(page, source: str, target: str) -> None:
    """Drag from the output port of `source` to the input port of `target`."""
    start = node(page, source).locator(".output").bounding_box()
    end = node(page, target).locator(".input").bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=8)
    page.mouse.up()


def select_node(page, node_id: str) -> None:
    node(page, node_id).locator(".node-head").click()
    page.wait_for_selector(f'#node-id-input[value="{node_id}"]')


def fetch_json(page, path: str):
    return page.evaluate("async (path) => (await fetch(path, {headers: {Accept: 'application/json'}})).json()", path)


def create_flow(client: Client, name: str, graph: dict) -> str:
    """Save a flow through the API (as its owner, with the console user's token) and return its id."""
    status, flow = client.json("POST", "/api/flows", {"name": name, "graph": graph})
    assert status == 201, flow
    return flow["id"]


def start_run(client: Client, flow_id: str, image: bytes, name: str = "photo.jpg") -> str:
    """Start an execution of a saved flow on `image` and return its id."""
    status, _, body = client.upload(f"/api/flows/{flow_id}/executions", image, name)
    assert status == 201, body
    return json.loads(body)["id"]


def wait_finished(client: Client, execution_id: str, timeout: float = RUN_TIMEOUT_MS / 1000) -> dict:
    """Poll the API until the execution has ended; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, execution = client.json("GET", f"/api/executions/{execution_id}")
        assert status == 200, execution
        if execution["status"] in FINISHED:
            return execution
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_id} still {execution['status']} after {timeout} s")


def wait_run_status(page, status: str) -> None:
    """Wait until the editor's run panel shows `status` and has settled (the total time comes last)."""
    page.wait_for_function(
        """(status) => document.querySelector('#run-status')?.textContent === status
          && document.querySelector('#run-stats [data-stat="total"]') !== null""",
        arg=status,
        timeout=RUN_TIMEOUT_MS,
    )
