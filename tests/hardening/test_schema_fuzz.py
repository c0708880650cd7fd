"""Every operation of the OpenAPI document, executions included, fuzzed by schemathesis: no 5xx, and every
answer (status, content type, body) is one the document describes.

First the whole schema against a real Daphne with a token, all checks, valid and invalid data (the
schemathesis command line, bounded here; `make fuzz` runs it for minutes: FUZZ_SECONDS). Then in-process,
once with made-up ids, once with the ids of the caller's own flow and finished execution, so the bodies of
real objects are checked too.
"""

import os
import subprocess
from pathlib import Path

import pytest
import schemathesis
from django.core.files.base import ContentFile
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from flows.models import Execution, ExecutionOutput, Flow
from tests.support.runs import image_bytes
from tests.support.services import PYTHON, ROOT

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))

schema = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application())
GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "out"}],
}
# ignored_auth would replay with a made-up credential that still carries our token (test_permissions checks
# refusals); a schema-valid body may still hold an invalid graph or an undecodable image; and a query
# parameter sent twice (`limit=1&limit=2`) is not an error in Django, which reads the last value.
EXCLUDED = [ignored_auth, positive_data_acceptance, negative_data_rejection]


def test_the_whole_schema_through_daphne_with_all_checks(hostile_console):
    """0 server errors, 0 undocumented statuses, valid data accepted (schemathesis.toml), for valid and invalid data."""
    command = [
        str(Path(PYTHON).parent / "st"),
        "--no-color",
        "run",
        f"{hostile_console.url}/api/schema",
        "--header",
        f"Authorization: Bearer {hostile_console.token}",
        # Every check (schemathesis' default; `--checks all` here would override schemathesis.toml's exceptions).
        "--mode",
        "all",
        "--max-examples",
        "10" if FUZZ_SECONDS <= 60 else "200",
        "--max-time",
        str(FUZZ_SECONDS),
        "--continue-on-failure",
        "--generation-database",
        "none",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=FUZZ_SECONDS + 600)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]


@pytest.fixture
def _keep_the_test_connection():
    """The WSGI handler closes the test's database connection around each request; the test client prevents it."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def own_ids(user) -> dict[str, str]:
    """The caller's flow and succeeded execution (with an output, without a stored input)."""
    flow = Flow.objects.create(owner=user, name="mine", graph=GRAPH)
    execution = Execution.objects.create(
        owner=user, flow=flow, flow_name=flow.name, graph=GRAPH, status="succeeded", finished_at=timezone.now()
    )
    output = ExecutionOutput(execution=execution, node="out", content_type="image/png", complete=True)
    output.file.save("out.png", ContentFile(image_bytes(20, 10, format="PNG")), save=False)
    output.size = output.file.size
    output.save()
    return {"flow_id": str(flow.id), "execution_id": str(execution.id)}


def check(case, token: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, response.text
    case.validate_response(response, excluded_checks=EXCLUDED)


@pytest.mark.django_db
@pytest.mark.usefixtures("_keep_the_test_connection")
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_request_gets_a_documented_answer(case, token):
    check(case, token)


@pytest.mark.django_db
@pytest.mark.usefixtures("_keep_the_test_connection")
# Calls that start a run are left out here: under WSGI each request's event loop ends with it, and the run with
# it (the server is ASGI). test_hostile_images and test_limits run them on the caller's flow in-process.
@(
    schema.include(path_regex=r"\{(flow|execution)_id\}")
    .exclude(path_regex=r"/(run|executions|rerun|batches)$")
    .parametrize()
)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_requests_on_own_objects_get_a_documented_answer(case, token, own_ids):
    for name, value in own_ids.items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value
    check(case, token)
