"""The execution calls of CONTRACT §3, through the HTTP API, with runs on the in-memory layer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from flows.models import Execution, Flow
from runtime.testing import chain
from tests.support.runs import (
    COMPRESS_AND_WATERMARK,
    TokenClient,
    decode,
    image_bytes,
    read_stream,
    upload,
    wait_finished,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


async def test_background_run_succeeds_and_downloads(http, flow):
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(1100, 700))})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["flow"] == str(flow.id)
    assert created["status"] in ("queued", "running")
    assert set(created["nodes"]) == {"in", "shrink", "mark", "out"}

    finished = await wait_finished(http, created["id"])
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["error"] is None
    for node, counts in finished["nodes"].items():
        assert counts["done"] == counts["total"] > 0, node
        assert counts["status"] == "done"
    assert finished["started_at"] <= finished["first_output_at"] <= finished["finished_at"]
    [output] = finished["outputs"]
    assert output["node"] == "out" and output["content_type"] == "image/jpeg"
    assert output["url"] == f"/api/executions/{created['id']}/output?node=out"

    download = await http.get(output["url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"
    data = await read_stream(download)
    assert len(data) == output["size"]
    assert decode(data).size == (550, 350)


async def test_run_streams_the_result_and_records_the_execution(http, flow):
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(image_bytes(1300, 1100))})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "image/jpeg"
    execution_id = response["X-Execution-Id"]
    image = decode(await read_stream(response))
    assert image.size == (650, 550)
    finished = await wait_finished(http, execution_id)
    assert finished["status"] == "succeeded"


async def test_run_picks_one_of_several_outputs(http, user):
    graph = {
        "nodes": [
            {"id": "in", "type": "source", "params": {}},
            {"id": "full", "type": "output", "params": {"format": "jpeg"}},
            {"id": "thumb-size", "type": "resize", "params": {"scale": 0.1}},
            {"id": "thumb", "type": "output", "params": {"format": "png"}},
        ],
        "edges": [
            {"from": "in", "to": "full"},
            {"from": "in", "to": "thumb-size"},
            {"from": "thumb-size", "to": "thumb"},
        ],
    }
    flow = await Flow.objects.acreate(owner=user, name="fan-out", graph=graph)
    response = await http.post(f"/api/flows/{flow.id}/run?output=thumb", {"image": upload(image_bytes(800, 600))})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert decode(await read_stream(response)).size == (80, 60)
    finished = await wait_finished(http, response["X-Execution-Id"])
    assert {output["node"] for output in finished["outputs"]} == {"full", "thumb"}
    several = await http.get(f"/api/executions/{finished['id']}/output")
    assert several.status_code == 400 and "full" in several.json()["error"]

    wrong = await http.post(f"/api/flows/{flow.id}/run?output=in", {"image": upload(image_bytes(80, 60))})
    assert wrong.status_code == 400
    assert "'in' is not an output" in wrong.json()["error"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all, just words", "not an image"),
    ],
)
async def test_bad_uploads_get_a_clear_4xx(http, flow, data, reason):
    for call in ("executions", "run"):
        response = await http.post(f"/api/flows/{flow.id}/{call}", {"image": upload(data)})
        assert 400 <= response.status_code < 500, (call, response.status_code)
        assert reason in response.json()["error"].lower()
    assert await Execution.objects.acount() == 0


async def test_missing_image_field_is_a_400(http, flow):
    response = await http.post(f"/api/flows/{flow.id}/executions", {})
    assert response.status_code == 400
    assert "image" in response.json()["error"]


async def test_a_truncated_jpeg_is_refused_before_anything_runs(http, flow):
    data = image_bytes(900, 900)
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(data[: len(data) // 2])})
    assert response.status_code == 400
    assert response.json()["error"] == "the JPEG file is truncated (it has no end-of-image marker)"
    assert await Execution.objects.acount() == 0


async def test_an_image_that_breaks_while_decoding_fails_the_run_with_the_reason(http, flow):
    data = image_bytes(900, 900, format="BMP")
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(data[: len(data) // 2], "cut.bmp")})
    assert response.status_code == 422  # the first band never came: the answer is still an error
    assert "truncated" in response.json()["error"]
    execution = await Execution.objects.aget()
    finished = await wait_finished(http, str(execution.id))
    assert finished["status"] == "failed"
    assert "truncated" in finished["error"]
    assert finished["outputs"] == []


async def test_cancel_stops_a_run_within_a_second(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "TILE_SIZE": 64, "MAX_TILES_IN_FLIGHT": 2}
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(3000, 2000))})
    execution_id = response.json()["id"]
    while (await http.get(f"/api/executions/{execution_id}")).json()["nodes"]["shrink"]["done"] == 0:
        await asyncio.sleep(0.01)
    early = await http.get(f"/api/executions/{execution_id}/output")
    assert early.status_code == 409

    asked = time.monotonic()
    cancelled = await http.post(f"/api/executions/{execution_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled", cancelled.json()["error"]
    assert time.monotonic() - asked < 1.0
    body = await wait_finished(http, execution_id, timeout=1)
    assert body["status"] == "cancelled" and body["outputs"] == []
    counts = body["nodes"]["shrink"]["done"]
    assert counts < body["nodes"]["shrink"]["total"]
    await asyncio.sleep(0.3)  # nothing of that run goes on
    again = (await http.get(f"/api/executions/{execution_id}")).json()
    assert again["nodes"]["shrink"]["done"] == counts
    assert not list((settings.MEDIA_ROOT / "outputs" / execution_id).glob("*"))


async def test_list_is_newest_first_and_filters_by_flow_and_status(http, flow, user):
    other = await Flow.objects.acreate(owner=user, name="gray", graph=chain(("grayscale", {})))
    ids = []
    for target in (flow, other, flow):
        response = await http.post(f"/api/flows/{target.id}/executions", {"image": upload(image_bytes(64, 48))})
        ids.append(response.json()["id"])
        await wait_finished(http, ids[-1])
    listed = (await http.get("/api/executions")).json()["executions"]
    assert [entry["id"] for entry in listed] == ids[::-1]
    only_flow = (await http.get(f"/api/executions?flow={flow.id}")).json()["executions"]
    assert [entry["id"] for entry in only_flow] == [ids[2], ids[0]]
    assert (await http.get("/api/executions?status=failed")).json()["executions"] == []


async def test_rerun_uses_the_same_input(http, flow):
    first = (await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(300, 200))})).json()
    await wait_finished(http, first["id"])
    again = await http.post(f"/api/executions/{first['id']}/rerun")
    assert again.status_code == 201
    second = await wait_finished(http, again.json()["id"])
    assert second["status"] == "succeeded"
    assert second["input"]["width"] == 300 and second["input"]["size"] == first["input"]["size"]
    original = await http.get(first["input"]["url"])
    assert original.status_code == 200


async def test_other_users_and_anonymous_get_nothing(flow, other_user, http):
    from flows.models import ApiToken

    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(64, 64))})
    execution_id = response.json()["id"]
    await wait_finished(http, execution_id)
    _, other_token = await sync_to_async(ApiToken.issue)(other_user)
    stranger = TokenClient(other_token)
    anonymous = TokenClient(None)
    calls = [
        ("post", f"/api/flows/{flow.id}/executions"),
        ("post", f"/api/flows/{flow.id}/run"),
        ("get", f"/api/executions/{execution_id}"),
        ("get", f"/api/executions/{execution_id}/output?node=out"),
        ("get", f"/api/executions/{execution_id}/input"),
        ("post", f"/api/executions/{execution_id}/cancel"),
        ("post", f"/api/executions/{execution_id}/rerun"),
        ("get", "/api/executions/not-a-uuid"),
    ]
    for method, url in calls:
        data = {"image": upload(image_bytes(32, 32))} if url.endswith(("executions", "run")) else {}
        seen = await getattr(stranger, method)(url, data)
        assert seen.status_code == 404, (url, seen.status_code)
        assert "error" in seen.json()
        nobody = await getattr(anonymous, method)(url, data)
        assert nobody.status_code == 401, (url, nobody.status_code)
    assert (await stranger.get("/api/executions")).json() == {"executions": []}


async def test_follow_streams_a_running_output_as_it_is_written(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "TILE_SIZE": 64, "MAX_TILES_IN_FLIGHT": 2}
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(1600, 1200))})
    execution_id = response.json()["id"]
    live = await http.get(f"/api/executions/{execution_id}/output?node=out&follow=1")
    assert live.status_code == 200 and live["Content-Type"] == "image/jpeg"
    data = await read_stream(live)
    finished = await wait_finished(http, execution_id)
    assert finished["status"] == "succeeded"
    assert len(data) == finished["outputs"][0]["size"]
    assert decode(data).size == (800, 600)


async def test_run_stores_its_upload_after_the_first_band_and_before_the_response_ends(http, flow, monkeypatch):
    from flows import executions
    from runtime.api import local_run

    data = image_bytes(1300, 1100)
    writes = []
    original = executions.store_input

    def store_input(execution, payload):
        conductor = local_run(execution.id)
        writes.append(conductor is not None and conductor.first_output.is_set())
        time.sleep(0.3)  # a slow disk: the file is not there yet when the input is asked for
        original(execution, payload)

    monkeypatch.setattr(executions, "store_input", store_input)
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(data)})
    assert response.status_code == 200
    execution_id = response["X-Execution-Id"]

    # Asked for at once, the input waits for its pending write instead of a missing file.
    stored = await http.get(f"/api/executions/{execution_id}/input")
    assert stored.status_code == 200
    assert await read_stream(stored) == data
    await read_stream(response)
    assert writes == [True]  # once, and after the run's first band was out


async def test_an_input_or_output_whose_file_is_gone_answers_404_not_500(http, flow):
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(64, 64))})
    execution_id = response.json()["id"]
    await wait_finished(http, execution_id)
    execution = await Execution.objects.aget(pk=execution_id)
    Path(execution.input_file.path).unlink()  # removed behind the database's back
    gone = await http.get(f"/api/executions/{execution_id}/input")
    assert gone.status_code == 404 and gone.json() == {"error": "the input of this execution is not stored"}
    output = await execution.outputs.aget(node="out")
    Path(output.file.path).unlink()
    gone = await http.get(f"/api/executions/{execution_id}/output")
    assert gone.status_code == 404 and gone.json() == {"error": "the output of node 'out' is not stored"}


async def test_run_whose_upload_cannot_be_stored_ends_its_stream_and_fails(http, flow, monkeypatch):
    from flows import executions
    from runtime.api import RunFailed

    def disk_full(execution, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(executions, "store_input", disk_full)
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(image_bytes(1300, 1100))})
    assert response.status_code == 200  # the first band was on its way before the write was tried
    with pytest.raises(RunFailed, match="the upload could not be stored: No space left on device"):
        await read_stream(response)

    finished = await wait_finished(http, response["X-Execution-Id"])
    assert finished["status"] == "failed"
    assert finished["error"] == "the upload could not be stored: No space left on device"


async def test_background_run_whose_upload_cannot_be_stored_is_a_507(http, flow, monkeypatch):
    from flows import executions

    def disk_full(execution, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(executions, "store_input", disk_full)
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(300, 200))})

    assert response.status_code == 507
    assert response.json() == {"error": "the upload could not be stored: No space left on device"}
    [execution] = [row async for row in Execution.objects.all()]
    assert execution.status == "failed" and execution.error == response.json()["error"]


async def test_run_that_fails_before_its_first_band_and_cannot_store_its_upload_says_507(http, flow, monkeypatch):
    from flows import executions

    def disk_full(execution, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(executions, "store_input", disk_full)
    data = image_bytes(900, 900, format="BMP")
    response = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(data[: len(data) // 2], "cut.bmp")})

    assert response.status_code == 507  # no byte went out: the storage failure is the answer
    assert response.json() == {"error": "the upload could not be stored: No space left on device"}
    finished = await wait_finished(http, response["X-Execution-Id"])
    assert finished["status"] == "failed" and finished["error"] == response.json()["error"]


async def test_a_draft_run_uses_the_sent_graph_and_leaves_the_flow_alone(http, flow):
    import json

    from tests.flows.documents import example_graph

    draft = example_graph()
    draft["nodes"][1]["params"] = {"scale": 0.25}
    response = await http.post(
        f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(800, 400)), "graph": json.dumps(draft)}
    )
    assert response.status_code == 201, response.content
    finished = await wait_finished(http, response.json()["id"])
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["draft"] is True and finished["graph"] == draft
    assert finished["flow_version"] == 1
    download = await http.get(finished["outputs"][0]["url"])
    assert decode(await read_stream(download)).size == (200, 100)
    await flow.arefresh_from_db()
    assert flow.graph == COMPRESS_AND_WATERMARK and flow.version == 1

    streamed = await http.post(
        f"/api/flows/{flow.id}/run", {"image": upload(image_bytes(800, 400)), "graph": json.dumps(draft)}
    )
    assert streamed.status_code == 200
    assert decode(await read_stream(streamed)).size == (200, 100)


async def test_an_invalid_draft_graph_is_refused_naming_the_node(http, flow):
    import json

    bad = {"nodes": [{"id": "in", "type": "source"}, {"id": "out", "type": "output", "params": {"quality": 500}}]}
    bad["edges"] = [{"from": "in", "to": "out"}]
    response = await http.post(
        f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(64, 64)), "graph": json.dumps(bad)}
    )
    assert response.status_code == 400
    assert [error["node"] for error in response.json()["errors"]] == ["out"]
    broken = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(image_bytes(64, 64)), "graph": "{nope"})
    assert broken.status_code == 400 and "graph" in broken.json()["error"]


async def test_a_node_of_a_finished_run_is_inspected_and_its_preview_kept(http, flow, other_user):
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(1600, 1000))})
    finished = await wait_finished(http, response.json()["id"])
    inspected = await http.get(f"/api/executions/{finished['id']}/nodes/shrink")
    assert inspected.status_code == 200, inspected.content
    facts = inspected.json()
    assert {key: facts[key] for key in ("node", "width", "height", "mode")} == {
        "node": "shrink",
        "width": 800,
        "height": 500,
        "mode": "RGB",
    }
    preview = await http.get(facts["url"])
    assert preview.status_code == 200 and preview["Content-Type"] == "image/png"
    image = decode(await read_stream(preview))
    assert image.size == (480, 300)  # downscaled to fit 480 px, the aspect ratio kept
    assert (await http.get(f"/api/executions/{finished['id']}/nodes/nope")).status_code == 409
    from flows.models import ApiToken

    _, stranger_token = await sync_to_async(ApiToken.issue)(other_user)
    stranger = TokenClient(stranger_token)
    assert (await stranger.get(f"/api/executions/{finished['id']}/nodes/shrink")).status_code == 404


@pytest.mark.parametrize("writing", [0.0, 0.5])  # the run still going when the write fails, or done
async def test_a_streamed_run_whose_row_cannot_be_written_is_stopped_and_leaves_nothing(
    flow, user, monkeypatch, writing
):
    from types import SimpleNamespace

    from django.conf import settings
    from django.db import OperationalError

    from flows import executions as service
    from flows.streamed_run import StreamedUpload, start_streamed
    from runtime import api as runtime

    photo = runtime.UploadStream()
    photo.feed(image_bytes(1600, 1200, seed=3))
    photo.end()
    header = await asyncio.to_thread(runtime.probe, photo, 10**9, complete=False)
    assert header.streamable  # the run starts at once, while the row is written
    streamed = StreamedUpload(header, photo, None, asyncio.create_task(asyncio.sleep(0)))
    started: list = []
    original_launch = service.launch

    async def launch(*args, **kwargs):
        started.append(await original_launch(*args, **kwargs))
        return started[-1]

    def locked(execution):
        time.sleep(writing)  # the run is under way meanwhile
        raise OperationalError("database is locked")

    monkeypatch.setattr(service, "launch", launch)
    monkeypatch.setattr(service, "insert_execution", locked)
    with pytest.raises(OperationalError):
        await start_streamed(SimpleNamespace(auth=user), await Flow.objects.aget(pk=flow.pk), streamed, None)
    (conductor,) = started
    assert conductor.finished.is_set() and conductor.status == ("cancelled" if writing == 0 else "succeeded")
    assert not await Execution.objects.aexists()
    outputs = Path(settings.MEDIA_ROOT) / "outputs"
    assert not outputs.exists() or not any(outputs.rglob("*.*"))


async def test_two_images_in_one_upload_are_refused_by_both_calls(http, flow):
    from flows.streamed_upload import SEVERAL_IMAGES

    images = [upload(image_bytes(80, 60, seed=1), "a.jpg"), upload(image_bytes(80, 60, seed=2), "b.jpg")]
    for call in ("executions", "run"):
        response = await http.post(f"/api/flows/{flow.id}/{call}", {"image": images})
        assert (response.status_code, response.json()) == (400, {"error": SEVERAL_IMAGES}), call
        for image in images:
            image.seek(0)
    assert await Execution.objects.acount() == 0


async def test_downloads_keep_names_in_any_script_with_an_ascii_fallback(http, user):
    flow = await Flow.objects.acreate(owner=user, name="水印流程", graph=COMPRESS_AND_WATERMARK)
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(90, 60), "照片.jpg")})
    assert response.status_code == 201, response.content
    execution = (await wait_finished(http, response.json()["id"]))["id"]

    given = await http.get(f"/api/executions/{execution}/input")
    assert given["Content-Disposition"] == "inline; filename=\"input.jpg\"; filename*=UTF-8''%E7%85%A7%E7%89%87.jpg"
    result = await http.get(f"/api/executions/{execution}/output")
    assert result["Content-Disposition"] == (
        "attachment; filename=\"output-out.jpg\"; filename*=UTF-8''%E6%B0%B4%E5%8D%B0%E6%B5%81%E7%A8%8B-out.jpg"
    )
    ran = await http.post(f"/api/flows/{flow.id}/run", {"image": upload(image_bytes(90, 60), "照片.jpg")})
    await read_stream(ran)
    assert ran["Content-Disposition"] == result["Content-Disposition"].replace("attachment", "inline")


async def test_ascii_names_are_downloaded_as_before(http, flow):
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(90, 60), "p 1.jpg")})
    execution = (await wait_finished(http, response.json()["id"]))["id"]
    assert (await http.get(f"/api/executions/{execution}/input"))[
        "Content-Disposition"
    ] == "inline; filename=\"p_1.jpg\"; filename*=UTF-8''p%201.jpg"
    output = await http.get(f"/api/executions/{execution}/output")
    assert output["Content-Disposition"] == 'attachment; filename="compress-and-watermark-out.jpg"'
