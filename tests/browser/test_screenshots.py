"""Docs screenshots: the editor, a run as it goes and when done, its execution page (only with --screenshots)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.helpers import RUN_TIMEOUT_MS, open_editor, select_node
from tests.support.runs import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.screenshots]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DOCUMENT = {
    "name": "compress-and-watermark",
    "description": "Halve the image, stamp a watermark, encode as PNG.",
    "graph": {
        "nodes": [
            {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 150}},
            {"id": "shrink", "type": "resize", "params": {"scale": 0.5}, "position": {"x": 290, "y": 80}},
            {"id": "soften", "type": "blur", "params": {"radius": 1.5}, "position": {"x": 290, "y": 250}},
            {
                "id": "mark",
                "type": "watermark",
                "params": {"text": "© ACME 水印", "opacity": 0.6},
                "position": {"x": 540, "y": 80},
            },
            {"id": "out", "type": "output", "params": {"format": "png"}, "position": {"x": 790, "y": 80}},
            {
                "id": "preview",
                "type": "output",
                "params": {"format": "jpeg", "quality": 70},
                "position": {"x": 540, "y": 250},
            },
        ],
        "edges": [
            {"from": "in", "to": "shrink"},
            {"from": "shrink", "to": "mark"},
            {"from": "mark", "to": "out"},
            {"from": "in", "to": "soften"},
            {"from": "soften", "to": "preview"},
        ],
    },
}

CREATE = """async (doc) => {
  const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
  const response = await fetch('/api/flows', {method: 'POST', body: JSON.stringify(doc),
    headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf}});
  return [response.status, await response.json()];
}"""


def test_screenshots(page, console_server, console_errors, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{console_server.url}/")
    status, flow = page.evaluate(CREATE, DOCUMENT)
    assert status == 201, flow
    open_editor(page, f"{console_server.url}/flows/{flow['id']}/")
    select_node(page, "mark")
    page.screenshot(path=str(SCREENSHOTS / "editor.png"))

    page.click("#tab-run")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(6000, 4000, seed=11))
    page.set_input_files("#run-file", str(photo))
    page.click("#run")
    # Mid-run: the previews have filled in most of the way while the nodes count their tiles. The browser paints
    # a streamed image a moment after its bytes arrive, hence the short pause.
    page.wait_for_function(
        """() => {
          const out = document.querySelector('.drawflow-node[data-node-id="out"]');
          const done = Number(out.dataset.done), total = Number(out.dataset.total);
          return document.querySelector('#run-status').textContent === 'running' && total > 0 && done >= total * 0.7;
        }""",
        timeout=RUN_TIMEOUT_MS,
    )
    page.wait_for_timeout(150)
    page.screenshot(path=str(SCREENSHOTS / "run-live.png"))
    assert page.locator("#run-status").inner_text() == "running", "the run ended before the mid-run screenshot"
    page.wait_for_function(
        """() => document.querySelector('#run-status')?.textContent === 'succeeded'
          && document.querySelector('#run-stats [data-stat="total"]') !== null""",
        timeout=RUN_TIMEOUT_MS,
    )
    page.wait_for_function("() => [...document.querySelectorAll('#run-results img')].every(i => i.complete)")
    page.wait_for_timeout(400)  # let the progress bars finish their short transition
    page.screenshot(path=str(SCREENSHOTS / "run.png"))
    page.click("#run-link")
    page.wait_for_selector("#execution.ready")
    page.wait_for_function("() => [...document.querySelectorAll('#images img')].every(i => i.complete)")
    page.wait_for_timeout(400)
    page.screenshot(path=str(SCREENSHOTS / "execution.png"), full_page=True)
    assert (SCREENSHOTS / "editor.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "run.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "run-live.png").stat().st_size > 10_000
    assert console_errors == []
