"""Every page in 简体中文, chosen with the switcher: no English word left in the text, titles, labels or menus.

User data (flow names, node ids, file names, usernames) is marked translate="no", as HTML provides, and
is left out; so are code, keyboard keys, and names that are the same in Chinese (PNG, JPEG, JSON, …).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.helpers import create_flow, node, open_editor, start_run, wait_finished
from tests.support.http import Client
from tests.support.runs import image_bytes

pytestmark = pytest.mark.browser

GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 120}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}, "position": {"x": 290, "y": 120}},
        {"id": "mark", "type": "watermark", "params": {"text": "水印"}, "position": {"x": 540, "y": 120}},
        {"id": "out", "type": "output", "params": {"format": "jpeg"}, "position": {"x": 790, "y": 120}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "mark"}, {"from": "mark", "to": "out"}],
    "groups": [{"id": "g", "title": "尺寸", "nodes": ["shrink"]}],
}
# Words that are the same in a Chinese interface: product, format and standard names.
KEPT = {
    "Tileflow", "PNG", "JPEG", "WebP", "AVIF", "GIF", "BMP", "TIFF", "HEIC", "JSON", "EXIF", "ICC", "Pillow", "libvips",
    "GaussianBlur", "convert", "ITU", "Lanczos", "zip", "ZIP", "Ctrl", "Shift", "Delete", "Enter", "S3", "URL", "API",
    "ID", "px", "LittleCMS", "XMP", "IPTC", "GPS", "TILEFLOW_FOLDER_ROOTS", "TILEFLOW_S3_CONNECTIONS", "POST", "sRGB",
    "English",
}  # fmt: skip
ENGLISH = re.compile(r"[A-Za-z][A-Za-z0-9_']{2,}")
# The flows' node ids and param names are user data too, quoted inside translated sentences ("缩放 (shrink)").
NODE_IDS = re.compile(r"\b(in|shrink|mark|out|source|format|jpeg|scale|text)\b")
QUERY = re.compile(r"\?\w+=|#[0-9a-fA-F]{6}")  # an API parameter or a colour value quoted in a sentence
# Text nodes and the attributes people read, outside user data and code.
VISIBLE_TEXT = """() => {
  // A third party's step (tests/browser/custom_steps.py) shows its own texts: it ships no translation.
  const userData = '[translate="no"], code, kbd, script, style, noscript, [lang]:not([lang^="zh"]):not(html), '
    + '.palette-item[data-type="tint"], .palette-group.cat-studio-extras > h3';
  const skip = (el) => el.closest(userData);
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    if (text.parentElement && !skip(text.parentElement) && text.textContent.trim()) found.push(text.textContent.trim());
  }
  for (const el of document.querySelectorAll('[title], [aria-label], [placeholder], [alt]')) {
    if (skip(el)) continue;
    for (const name of ['title', 'aria-label', 'placeholder', 'alt']) {
      if (el.getAttribute(name)) found.push(el.getAttribute(name));
    }
  }
  found.push(document.title);
  return found;
}"""


def english_left(page) -> list[str]:
    left = []
    for text in page.evaluate(VISIBLE_TEXT):
        words = [word for word in ENGLISH.findall(NODE_IDS.sub("", QUERY.sub("", text))) if word not in KEPT]
        if words:
            left.append(text)
    return left


@pytest.fixture(scope="module")
def client(console_server) -> Client:
    return Client(console_server.url, console_server.auth)


def test_every_page_in_simplified_chinese(page, console_server, console_errors, client):
    flow_id = create_flow(client, "中文流程", GRAPH)
    execution = wait_finished(client, start_run(client, flow_id, image_bytes(640, 480)))
    batch_status, _, batch_body = client.upload(f"/api/flows/{flow_id}/batches", image_bytes(64, 64), "one.jpg")
    assert batch_status == 201, batch_body
    batch_id = json.loads(batch_body)["id"]

    # The switcher, from the English page the first visit gets, makes every page Chinese and stays chosen.
    page.goto(f"{console_server.url}/")
    page.select_option("#language-select", "zh-hans")
    page.wait_for_selector('html[lang="zh-hans"]')
    pages = [
        "/",
        "/flows/new/",
        f"/flows/{flow_id}/",
        "/executions/",
        f"/executions/{execution['id']}/",
        f"/batches/{batch_id}/",
        f"/flows/{flow_id}/triggers/",
    ]
    problems = {}
    for path in pages:
        if path.startswith("/flows/") and not path.endswith("triggers/"):
            open_editor(page, f"{console_server.url}{path}")
        else:
            page.goto(f"{console_server.url}{path}", wait_until="networkidle")
        assert page.locator("html").get_attribute("lang") == "zh-hans", path
        left = english_left(page)
        if path == f"/flows/{flow_id}/":
            # The editor's menus, sheet and panels, open: their texts too.
            page.click("#flow-menu-button")
            left += english_left(page)
            node(page, "mark").locator(".node-head").click()
            left += english_left(page)
            node(page, "mark").locator(".node-head").click(button="right")
            left += english_left(page)
            page.keyboard.press("Escape")
            for tab in ("#tab-run", "#tab-versions"):
                page.click(tab)
                page.wait_for_timeout(300)
                left += english_left(page)
            page.fill("#palette-search", "模糊")
            assert page.locator(".palette-item").evaluate_all("(items) => items.map((i) => i.dataset.type)") == ["blur"]
            page.fill("#palette-search", "blur")
            assert page.locator(".palette-item").count() == 1  # both languages find it
        if left:
            problems[path] = sorted(set(left))
    assert problems == {}, json.dumps(problems, ensure_ascii=False, indent=1)
    # Dates and numbers follow the language too.
    page.goto(f"{console_server.url}/executions/{execution['id']}/", wait_until="networkidle")
    assert re.fullmatch(r"[\d.,]+ (毫秒|秒)", page.locator('[data-stat="total"] .stat-value').inner_text())
    page.goto(f"{console_server.url}/login/")
    assert page.locator("h1").inner_text() == "登录 Tileflow"
    assert console_errors == []
