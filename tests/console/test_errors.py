"""Errors under /api/ answer JSON whatever produced them; pages keep Django's error pages."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, HttpResponseNotAllowed
from django.test import RequestFactory

from console import errors


@pytest.fixture
def factory() -> RequestFactory:
    return RequestFactory()


def test_a_non_json_error_under_api_becomes_json_and_keeps_its_headers(factory):
    middleware = errors.ApiErrorsAsJsonMiddleware(lambda request: HttpResponseNotAllowed(["GET", "HEAD"]))
    response = middleware(factory.delete("/api/steps"))
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, HEAD"
    assert json.loads(response.content) == {"error": "DELETE is not allowed here; allowed: GET, HEAD"}


def test_other_answers_pass_untouched(factory):
    teapot = HttpResponse("short and stout", status=418, content_type="text/plain")
    middleware = errors.ApiErrorsAsJsonMiddleware(lambda request: teapot)
    assert middleware(factory.get("/flows/new/")) is teapot  # a page
    ok = HttpResponse("fine")
    assert errors.ApiErrorsAsJsonMiddleware(lambda request: ok)(factory.get("/api/steps")) is ok
    converted = errors.ApiErrorsAsJsonMiddleware(lambda request: teapot)(factory.get("/api/steps"))
    assert json.loads(converted.content) == {"error": "i'm a teapot"}


def test_the_handlers_answer_json_under_api_only(factory):
    api, page = factory.get("/api/nope"), factory.get("/nope/")
    assert json.loads(errors.page_not_found(api, Exception()).content) == {"error": "no such API path: GET /api/nope"}
    assert errors.page_not_found(page, Exception())["Content-Type"].startswith("text/html")
    refused = errors.bad_request(api, DisallowedHost("evil.example"))
    assert refused.status_code == 400 and "TILEFLOW_ALLOWED_HOSTS" in json.loads(refused.content)["error"]
    assert errors.bad_request(page, DisallowedHost("evil.example"))["Content-Type"].startswith("text/html")
    assert json.loads(errors.permission_denied(api, Exception()).content) == {"error": "forbidden"}
    assert errors.server_error(api).status_code == 500
    assert errors.server_error(page)["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_api_without_its_slash_is_a_json_404_as_every_unknown_api_path(client, method):
    answer = getattr(client, method)("/api")
    assert answer.status_code == 404
    assert answer.json() == {"error": f"no such API path: {method.upper()} /api"}
    assert client.get("/api/").json() == {"error": "no such API path: GET /api/"}  # nothing to redirect to
