"""Every answer carries a policy that runs only the console's own scripts and styles, and cannot be framed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from console.headers import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parents[2]


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";"))}


def test_the_policy_allows_only_this_origin_for_code():
    policy = directives(CONTENT_SECURITY_POLICY)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)


@pytest.mark.parametrize("path", ["/login/", "/api/steps", "/api/nope", "/admin/login/"])
def test_through_daphne_every_answer_has_the_headers(hostile_console, path):
    answer = requests.get(f"{hostile_console.url}{path}", headers=hostile_console.auth, timeout=30)
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I), "an inline script"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"<style[\s>]", re.I), "an inline style sheet"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.parametrize("template", sorted((ROOT / "templates").rglob("*.html")), ids=lambda path: path.name)
def test_no_template_holds_what_the_policy_would_block(template):
    text = template.read_text()
    for pattern, what in INLINE:
        found = pattern.search(text)
        assert found is None, f"{template.relative_to(ROOT)} has {what}: {found.group(0)!r}"
