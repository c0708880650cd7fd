"""The sepia example of docs/steps.md, copied out of the page, loaded by setting, run end to end."""

from __future__ import annotations

import importlib.util
import io
import re

import pytest
from PIL import Image, ImageChops

from runtime import registry as registry_module
from runtime.registry import StepRegistry
from tests.support.http import Client
from tests.support.runs import image_bytes
from tests.support.services import ROOT, live_console


def example_module(tmp_path) -> str:
    page = (ROOT / "docs" / "steps.md").read_text()
    match = re.search(r"<!-- example: (\w+)\.py -->\n```python\n(.*?)```", page, re.S)
    assert match, "docs/steps.md lost its example"
    (tmp_path / f"{match.group(1)}.py").write_text(match.group(2))
    return match.group(1)


def load_privately(tmp_path, name: str, monkeypatch):
    """Import the example without touching this process's step registry."""
    monkeypatch.setattr(registry_module, "registry", StepRegistry())
    spec = importlib.util.spec_from_file_location(f"example_{name}", tmp_path / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documented_custom_step_is_listed_and_runs(tmp_path, monkeypatch):
    name = example_module(tmp_path)
    with live_console(tmp_path / "live", TILEFLOW_STEP_MODULES=name, PYTHONPATH=str(tmp_path)) as console:
        client = Client(console.url, console.auth)
        status, catalog = client.json("GET", "/api/steps")
        assert status == 200
        sepia = next(entry for entry in catalog["steps"] if entry["type"] == "sepia")
        assert sepia["category"] == "Colour" and sepia["label"] == "Sepia"
        assert sepia["description"] == "Tone the image in warm browns, like an old photograph."
        strength = sepia["params_schema"]["properties"]["strength"]
        assert (strength["minimum"], strength["maximum"], strength["default"]) == (0, 1, 1.0)

        graph = {
            "nodes": [
                {"id": "in", "type": "source", "params": {}},
                {"id": "old", "type": "sepia", "params": {"strength": 0.8}},
                {"id": "out", "type": "output", "params": {"format": "png"}},
            ],
            "edges": [{"from": "in", "to": "old"}, {"from": "old", "to": "out"}],
        }
        status, flow = client.json("POST", "/api/flows", {"name": "old-photo", "graph": graph})
        assert status == 201, flow
        photo = image_bytes(1100, 700, format="PNG")
        chunks = list(client.stream(f"/api/flows/{flow['id']}/run", photo))
        assert chunks[0][1] == 200
        result = Image.open(io.BytesIO(b"".join(chunk for *_, chunk in chunks)))
        result.load()

        status, invalid = client.json(
            "POST",
            "/api/flows",
            {
                "name": "too-strong",
                "graph": {
                    **graph,
                    "nodes": [
                        *graph["nodes"][:1],
                        {"id": "old", "type": "sepia", "params": {"strength": 3}},
                        graph["nodes"][2],
                    ],
                },
            },
        )
        assert status == 400
        assert invalid["errors"] == [{"node": "old", "message": "node 'old': strength must be between 0 and 1"}]

    expected = load_privately(tmp_path, name, monkeypatch).tone(Image.open(io.BytesIO(photo)), 0.8)
    assert ImageChops.difference(result, expected).getbbox() is None


@pytest.mark.parametrize("module", ["no_such_step_module"])
def test_a_missing_step_module_stops_the_start_with_its_name(tmp_path, module):
    from tests.support.services import manage, project_env

    done = manage("check", env=project_env(tmp_path, TILEFLOW_STEP_MODULES=module), check=False)
    assert done.returncode != 0
    assert module in done.stderr
