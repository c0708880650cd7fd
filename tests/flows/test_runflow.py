"""`manage.py runflow` (CONTRACT §5): by id, by name or from a document file, with progress and clean failures."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from PIL import Image, ImageChops

from flows.models import Flow
from runtime.testing import chain, reference_flow
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_channel_layer")]


def runflow(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("runflow", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(900, 600))
    return path


def test_runs_a_saved_flow_by_name_and_by_id(user, photo, tmp_path):
    flow = Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)
    for reference in (flow.name, str(flow.id)):
        target = tmp_path / f"out-{reference[:4]}.jpg"
        code, out, err = runflow(reference, str(photo), "-o", str(target))
        assert code == 0, err
        with Image.open(target) as result:
            assert result.format == "JPEG" and result.size == (450, 300)
        for node in ("in", "shrink", "mark", "out"):
            assert f"{node}" in out
        assert "100%" in out and f"wrote {target}" in out


def test_runs_a_document_file_exactly_as_pillow(photo, tmp_path):
    graph = chain(("rotate", {"angle": 90}), ("grayscale", {}), output={"format": "png"})
    document = tmp_path / "flow.json"
    document.write_text(json.dumps({"name": "turn", "graph": graph}))
    target = tmp_path / "nested" / "turned.png"
    code, _, err = runflow(str(document), str(photo), "-o", str(target), "--quiet")
    assert code == 0, err
    expected = reference_flow(graph, Image.open(photo))["out"]
    with Image.open(target) as result:
        assert ImageChops.difference(result, expected).getbbox() is None


@pytest.mark.parametrize(
    ("flow_arg", "input_bytes", "reason"),
    [
        ("no-such-flow", None, "no flow with id or name 'no-such-flow'"),
        ("document", b"not an image", "not an image"),
        ("bad-document", None, "is not valid"),
    ],
)
def test_fails_with_one_line_reason(user, tmp_path, photo, flow_arg, input_bytes, reason):
    if flow_arg == "document":
        path = tmp_path / "flow.json"
        path.write_text(json.dumps({"graph": chain(("grayscale", {}))}))
        flow_arg = str(path)
    if flow_arg == "bad-document":
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"graph": {"nodes": [], "edges": []}}))
        flow_arg = str(path)
    source = photo
    if input_bytes is not None:
        source = tmp_path / "broken.jpg"
        source.write_bytes(input_bytes)
    target = tmp_path / "out.png"
    code, _, err = runflow(flow_arg, str(source), "-o", str(target))
    assert code == 1
    assert err.count("\n") <= 1 and err.startswith("runflow: ")
    assert reason in err
    assert not target.exists()
    assert not list(tmp_path.glob(".runflow-*"))
