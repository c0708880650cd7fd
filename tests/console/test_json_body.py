"""A JSON body under /api/ that is not an object is refused; objects, other types and pages pass."""

import json

from django.http import HttpResponse
from django.test import RequestFactory

from console.json_body import JsonObjectBodyMiddleware

middleware = JsonObjectBodyMiddleware(lambda request: HttpResponse("through"))
factory = RequestFactory()


def test_a_list_or_a_number_is_refused():
    for body in ("[null, null]", "3", '"text"', "null"):
        response = middleware(factory.patch("/api/flows/x", body, content_type="application/json"))
        assert response.status_code == 400, body
        [error] = json.loads(response.content)["errors"]
        assert error == {"node": None, "message": "the request body must be a JSON object"}


def test_objects_bad_json_other_types_and_pages_pass():
    assert middleware(factory.post("/api/flows", "{}", content_type="application/json")).content == b"through"
    assert middleware(factory.post("/api/flows", "{nope", content_type="application/json")).content == b"through"
    assert middleware(factory.post("/api/flows", "[1]", content_type="text/plain")).content == b"through"
    assert middleware(factory.post("/login/", "[1]", content_type="application/json")).content == b"through"
    assert middleware(factory.get("/api/flows")).content == b"through"
