"""English and 简体中文: Accept-Language on a first visit, the switcher's cookie after, and the scripts' catalog."""

from pathlib import Path

import pytest
from django.conf import settings

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_compiled_catalogs_are_current():
    """`make test` and `make run` compile the .po files; a stale .mo would show old strings."""
    for domain in ("django", "djangojs"):
        po, mo = LOCALE / f"{domain}.po", LOCALE / f"{domain}.mo"
        assert mo.exists(), f"{mo} is missing: run `make test` (or manage.py compilemessages)"
        assert mo.stat().st_mtime >= po.stat().st_mtime, f"{mo} is older than its .po: run compilemessages"


def test_first_visit_follows_accept_language(client, db):
    response = client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    assert '<html lang="zh-hans">' in response.text
    assert "登录 Tileflow" in response.text
    english = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")
    assert "Log in to Tileflow" in english.text


def test_switcher_choice_is_remembered_over_accept_language(client, owner):
    client.force_login(owner)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/executions/"})
    assert response.status_code == 302
    assert response["Location"] == "/executions/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hans"
    assert int(cookie["max-age"]) >= 30 * 24 * 3600
    page = client.get("/executions/", HTTP_ACCEPT_LANGUAGE="en")
    assert "执行记录" in page.text
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "Recent executions" in client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN").text


@pytest.mark.parametrize(("language", "expected"), [("zh-hans", "运行此流程"), ("en", "运行此流程")])
def test_script_catalog_follows_the_language(client, db, language, expected):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get("/jsi18n/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    escaped = expected.encode("ascii", "backslashreplace").decode()  # the catalog is JSON with \u escapes
    assert (escaped in response.text or expected in response.text) == (language != "en")
