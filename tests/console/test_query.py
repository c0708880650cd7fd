"""A query parameter given twice under /api/ is an error naming it; pages and single values pass."""

import json

from django.http import HttpResponse
from django.test import RequestFactory

from console.query import SingleValuedQueryMiddleware

middleware = SingleValuedQueryMiddleware(lambda request: HttpResponse("through"))


def test_a_repeated_parameter_is_refused_by_name():
    response = middleware(RequestFactory().get("/api/executions?flow=a&flow=b&status=x&status=y&limit=1"))
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "the query parameter 'flow', 'status' is given more than once"}


def test_single_values_and_pages_pass():
    assert middleware(RequestFactory().get("/api/executions?flow=a&limit=1")).content == b"through"
    assert middleware(RequestFactory().get("/executions/?status=a&status=b")).content == b"through"


def test_a_number_past_64_bits_is_refused():
    response = middleware(RequestFactory().get("/api/batches?offset=15870802787589739773952"))
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "the query parameter 'offset' is out of range"}
    assert middleware(RequestFactory().get("/api/batches?offset=4611686018427387904")).content == b"through"


def test_what_looks_like_a_number_but_is_not_one_passes_to_the_view_and_digits_of_any_script_count():
    # \x1c matched the old pattern's \s, and int() refused it: the middleware itself answered 500.
    for query in ("secret=%1C0", "limit=%1F12%1E", "offset=%E2%80%A812"):
        assert middleware(RequestFactory().get(f"/api/triggers/x/events?{query}")).content == b"through", query
    arabic_indic = "\u0669" * 30  # int() reads these digits: 10^30 - 1
    response = middleware(RequestFactory().get("/api/batches", {"offset": arabic_indic}))
    assert response.status_code == 400
    assert middleware(RequestFactory().get("/api/batches", {"offset": " 12\t"})).content == b"through"
