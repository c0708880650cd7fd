"""Hostile and broken uploads (tests/hardening/corpus.py), posted to `run` and to `executions`.

Each gets exactly its expected answer: a 4xx naming the reason with nothing stored, a failed execution
naming the reason with no output left behind, or a run whose result equals Pillow's whole-image
reference. Never a 500, a hang, or an execution left "running"; a normal run still succeeds afterwards.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image, ImageChops

from flows.models import Execution, Flow
from tests.hardening.corpus import Specimen, corpus
from tests.support.runs import COMPRESS_AND_WATERMARK, TokenClient, image_bytes, read_stream, upload, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

# The identity flow with a lossless output: the result must equal the decoded source exactly.
IDENTITY = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "out"}],
}
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="identity", graph=IDENTITY)


def assert_same_pixels(data: bytes, expected: Image.Image) -> None:
    with Image.open(io.BytesIO(data)) as result:
        result.load()
        assert result.size == expected.size
        assert result.mode == expected.mode, result.mode
        assert ImageChops.difference(result, expected).getbbox() is None, "pixels differ from Pillow's reference"


def stored_files(settings) -> list[str]:
    return sorted(
        str(path.relative_to(settings.MEDIA_ROOT)) for path in settings.MEDIA_ROOT.rglob("*") if path.is_file()
    )


async def check_executions_call(http: TokenClient, flow: Flow, specimen: Specimen, settings) -> None:
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(specimen.data, specimen.filename)})
    if specimen.outcome == "refused":
        assert response.status_code == specimen.status, response.content
        assert specimen.reason in response.json()["error"]
        assert await Execution.objects.acount() == 0
        assert stored_files(settings) == []
        return
    assert response.status_code == 201, response.content
    finished = await wait_finished(http, response.json()["id"], timeout=30)
    if specimen.outcome == "failed":
        assert finished["status"] == "failed"
        assert specimen.reason in finished["error"]
        assert finished["outputs"] == []
        assert not list((settings.MEDIA_ROOT / "outputs" / finished["id"]).glob("*"))
        return
    assert finished["status"] == "succeeded", finished["error"]
    download = await http.get(f"/api/executions/{finished['id']}/output")
    assert download.status_code == 200
    assert_same_pixels(await read_stream(download), specimen.reference(specimen.data))


async def check_run_call(http: TokenClient, flow: Flow, specimen: Specimen, settings) -> None:
    before = await Execution.objects.acount()
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(specimen.data, specimen.filename)})
    if specimen.outcome == "refused":
        assert response.status_code == specimen.status, response.content
        assert specimen.reason in response.json()["error"]
        assert await Execution.objects.acount() == before
        return
    if specimen.outcome == "failed":
        # The file breaks before the first band is complete: no byte was streamed, so the answer is JSON.
        assert response.status_code == 422, response.status_code
        assert specimen.reason in response.json()["error"]
        finished = await wait_finished(http, response["X-Execution-Id"], timeout=30)
        assert finished["status"] == "failed" and finished["outputs"] == []
        return
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    assert_same_pixels(await read_stream(response), specimen.reference(specimen.data))
    assert (await wait_finished(http, response["X-Execution-Id"], timeout=30))["status"] == "succeeded"


@pytest.mark.parametrize("name", sorted(corpus()))
async def test_specimen_on_both_calls(name, http, flow, settings):
    specimen = corpus()[name]
    await check_executions_call(http, flow, specimen, settings)
    await check_run_call(http, flow, specimen, settings)
    assert not await Execution.objects.exclude(status__in=FINISHED).aexists(), "an execution was left unfinished"


async def test_whole_corpus_at_once_then_a_normal_run_succeeds(http, flow, user):
    """Every specimen started together: none stops the server's runs; a normal run then works."""
    responses = await asyncio.gather(
        *(
            http.post(f"/api/flows/{flow.id}/executions", {"image": upload(specimen.data, specimen.filename)})
            for specimen in corpus().values()
        )
    )
    assert all(400 <= r.status_code < 500 or r.status_code == 201 for r in responses), [
        r.status_code for r in responses
    ]
    started = [r.json()["id"] for r in responses if r.status_code == 201]
    expected = sum(1 for specimen in corpus().values() if specimen.outcome != "refused")
    assert len(started) == expected
    for execution_id in started:
        assert (await wait_finished(http, execution_id, timeout=60))["status"] in ("succeeded", "failed")

    normal = await Flow.objects.acreate(owner=user, name="normal", graph=COMPRESS_AND_WATERMARK)
    response = await http.post(f"/api/flows/{normal.id}/run", {"image": upload(image_bytes(640, 480))})
    assert response.status_code == 200
    with Image.open(io.BytesIO(await read_stream(response))) as result:
        assert result.size == (320, 240)
    assert (await wait_finished(http, response["X-Execution-Id"]))["status"] == "succeeded"
    assert not await Execution.objects.exclude(status__in=FINISHED).aexists()
