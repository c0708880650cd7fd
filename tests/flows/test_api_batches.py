"""The batch calls of CONTRACT §7 through the HTTP API: images and archives in, items run, results zipped."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from PIL import Image, ImageChops

from flows import batch_runner
from flows.models import Batch, BatchItem, Execution, Flow
from runtime import api as runtime
from runtime.testing import chain, reference_flow
from tests.support.runs import COMPRESS_AND_WATERMARK, TokenClient, decode, image_bytes, read_stream, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

TWO_OUTPUTS = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "small", "type": "resize", "params": {"scale": 0.5}},
        {"id": "jpeg", "type": "output", "params": {"format": "jpeg"}},
        {"id": "png", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "small"}, {"from": "small", "to": "jpeg"}, {"from": "small", "to": "png"}],
}


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


def zip_bytes(
    entries: dict[str, bytes], *, links: dict[str, str] | None = None, compression=zipfile.ZIP_STORED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


async def wait_batch(http: TokenClient, batch_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = (await http.get(f"/api/batches/{batch_id}")).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {body['status']} after {timeout} s")


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


async def test_images_and_an_archive_run_as_items_and_zip_their_results(http, flow, settings, tmp_path):
    archive = zip_bytes(
        {
            "trip/day1/a.jpg": image_bytes(320, 240, seed=1),
            "trip/b.png": image_bytes(200, 160, "PNG", seed=2),
            "notes.txt": b"not an image at all",
            "../escape.jpg": image_bytes(64, 64),
            "/etc/absolute.jpg": image_bytes(64, 64),
            "inner.zip": zip_bytes({"x.jpg": image_bytes(64, 64)}),
            "__MACOSX/trip/._a.jpg": b"resource fork",
            "trip/": b"",
        },
        links={"trip/link.jpg": "/etc/passwd"},
    )
    response = await http.post(
        f"/api/flows/{flow.id}/batches",
        {
            "image": [
                upload(image_bytes(400, 300, seed=3), "one.jpg"),
                upload(image_bytes(300, 200, seed=4), "two.jpg"),
            ],
            "path": ["holiday/one.jpg", ""],
            "archive": upload(archive, "photos.zip"),
        },
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["flow"] == str(flow.id) and created["total"] == 9
    by_name = {item["name"]: item for item in created["items"]}
    assert set(by_name) == {
        "holiday/one.jpg",
        "two.jpg",
        "trip/day1/a.jpg",
        "trip/b.png",
        "notes.txt",
        "../escape.jpg",
        "/etc/absolute.jpg",
        "inner.zip",
        "trip/link.jpg",
    }
    for unsafe in ("../escape.jpg", "/etc/absolute.jpg"):
        assert "unsafe name" in by_name[unsafe]["error"] and by_name[unsafe]["execution"] is None
    assert "symbolic link" in by_name["trip/link.jpg"]["error"]
    assert "nested archives" in by_name["inner.zip"]["error"]

    done = await wait_batch(http, created["id"])
    assert done["status"] == "failed"
    assert (done["succeeded"], done["failed"], done["cancelled"]) == (4, 5, 0)
    items = {item["name"]: item for item in done["items"]}
    assert "not an image" in items["notes.txt"]["error"].lower() and items["notes.txt"]["execution"] is None
    for name in ("holiday/one.jpg", "two.jpg", "trip/day1/a.jpg", "trip/b.png"):
        assert items[name]["status"] == "succeeded" and items[name]["execution"]
        assert items[name]["duration_ms"] is not None

    results = await http.get(f"/api/batches/{created['id']}/results")
    assert results.status_code == 200 and results["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(await read_stream(results))) as zipped:
        names = set(zipped.namelist())
        assert names == {"holiday/one.jpg", "two.jpg", "trip/day1/a.jpg", "trip/b.jpg", "errors.json"}
        assert decode(zipped.read("trip/day1/a.jpg")).size == (160, 120)
        assert decode(zipped.read("trip/b.jpg")).format == "JPEG"
        errors = {entry["name"]: entry for entry in json.loads(zipped.read("errors.json"))}
    assert set(errors) == {"notes.txt", "../escape.jpg", "/etc/absolute.jpg", "inner.zip", "trip/link.jpg"}
    assert all(entry["status"] == "failed" and entry["error"] for entry in errors.values())

    media = Path(settings.MEDIA_ROOT)
    assert not (tmp_path / "escape.jpg").exists() and not (media.parent / "escape.jpg").exists()
    written = files_under(media)
    assert all(name.startswith(("batches/", "outputs/")) for name in written), written
    assert not any("escape" in name or "passwd" in name or name.endswith(".zip") for name in written)


async def test_several_outputs_are_named_by_node_and_clashing_names_kept_apart(http, user):
    flow = await Flow.objects.acreate(owner=user, name="two", graph=TWO_OUTPUTS)
    response = await http.post(
        f"/api/flows/{flow.id}/batches",
        {
            "image": [
                upload(image_bytes(100, 80, seed=1), "a.jpg"),
                upload(image_bytes(100, 80, "PNG", seed=2), "a.png"),
            ]
        },
    )
    assert response.status_code == 201, response.content
    assert (await wait_batch(http, response.json()["id"]))["status"] == "succeeded"
    results = await http.get(f"/api/batches/{response.json()['id']}/results")
    with zipfile.ZipFile(io.BytesIO(await read_stream(results))) as zipped:
        assert sorted(zipped.namelist()) == ["a-jpeg-2.jpg", "a-jpeg.jpg", "a-png-2.png", "a-png.png"]
        assert "errors.json" not in zipped.namelist()
        assert decode(zipped.read("a-png.png")).size == (50, 40)


async def test_items_are_admitted_a_few_at_a_time_and_cancel_stops_the_rest(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "BATCH_CONCURRENCY": 2}
    images = [upload(image_bytes(700, 500, seed=seed), f"p{seed:02d}.jpg") for seed in range(12)]
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": images})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    assert (await http.get(f"/api/batches/{batch_id}/results")).status_code == 409

    most_running = 0
    while (await sync_to_async(BatchItem.objects.filter(batch_id=batch_id, status="succeeded").count)()) < 3:
        running = await sync_to_async(BatchItem.objects.filter(batch_id=batch_id, status="running").count)()
        most_running = max(most_running, running, len(runtime.local_run_ids()))
        await asyncio.sleep(0.01)
    assert 1 <= most_running <= 2
    # Items not yet admitted have no execution: nothing waits for them in the runtime.
    assert await sync_to_async(BatchItem.objects.filter(batch_id=batch_id, execution=None).count)() >= 6

    cancelled = await http.post(f"/api/batches/{batch_id}/cancel")
    assert cancelled.status_code == 202
    body = await wait_batch(http, batch_id, timeout=30)
    assert body["status"] == "cancelled"
    assert body["cancelled"] >= 5 and body["succeeded"] >= 3
    assert body["succeeded"] + body["failed"] + body["cancelled"] == 12
    assert not runtime.local_run_ids()
    results = await http.get(f"/api/batches/{batch_id}/results")
    with zipfile.ZipFile(io.BytesIO(await read_stream(results))) as zipped:
        errors = json.loads(zipped.read("errors.json"))
    assert len(errors) == 12 - body["succeeded"]
    assert {entry["status"] for entry in errors} <= {"cancelled", "failed"}
    assert all(entry["error"] for entry in errors), errors  # every item that did not succeed says why


def second_entry(data: bytearray) -> tuple[int, int]:
    """Return where the second entry's local header starts in a zip, and where its compressed bytes start."""
    header = data.find(b"PK\x03\x04", 1)
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    return header, header + 30 + name_length + extra_length


def good_and_bad(compression: int) -> bytearray:
    return bytearray(
        zip_bytes(
            {"good.jpg": image_bytes(160, 120, seed=1), "bad.jpg": image_bytes(160, 120, seed=2)},
            compression=compression,
        )
    )


def corrupt_data(compression: int) -> bytes:
    """good.jpg, and bad.jpg with 55 bytes of its compressed data overwritten (its headers intact)."""
    data = good_and_bad(compression)
    _, start = second_entry(data)
    data[start + 5 : start + 60] = b"\xff" * 55
    return bytes(data)


def undecodable_local_name() -> bytes:
    """good.jpg, and bad.jpg whose local header flags its name as UTF-8 and holds a byte that is not."""
    data = good_and_bad(zipfile.ZIP_DEFLATED)
    header, _ = second_entry(data)
    data[header + 7] |= 0x08  # bit 11 of the flags: the name is UTF-8
    data[header + 30] = 0xBC
    return bytes(data)


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (corrupt_data(zipfile.ZIP_DEFLATED), "Error -3 while decompressing data"),
        (corrupt_data(zipfile.ZIP_LZMA), "Corrupt input data"),
        (corrupt_data(zipfile.ZIP_BZIP2), "Invalid data stream"),
        (undecodable_local_name(), "'utf-8' codec can't decode byte 0xbc"),
    ],
    ids=["deflate", "lzma", "bzip2", "name-not-utf-8"],
)
async def test_a_damaged_entry_is_a_failed_item_and_the_others_run(http, flow, settings, archive, reason):
    response = await http.post(f"/api/flows/{flow.id}/batches", {"archive": upload(archive, "photos.zip")})
    assert response.status_code == 201, response.content
    items = {item["name"]: item for item in response.json()["items"]}
    assert items["bad.jpg"]["status"] == "failed"
    assert items["bad.jpg"]["error"].startswith("cannot be extracted: ") and reason in items["bad.jpg"]["error"]
    assert items["bad.jpg"]["execution"] is None
    done = await wait_batch(http, response.json()["id"])
    assert [(item["name"], item["status"]) for item in done["items"]] == [
        ("good.jpg", "succeeded"),
        ("bad.jpg", "failed"),
    ]
    assert not any(name.endswith("/00001.jpg") for name in files_under(Path(settings.MEDIA_ROOT)))  # no half file


def from_a_later_zip_version() -> bytes:
    """A zip whose directory says an entry needs zip version 9.2 to extract (zipfile knows up to 6.3)."""
    data = bytearray(zip_bytes({"a.jpg": image_bytes(32, 32)}))
    at = data.rfind(b"PK\x01\x02")
    data[at + 6 : at + 8] = (92).to_bytes(2, "little")
    return bytes(data)


def bomb() -> bytes:
    return zip_bytes({"flat.bmp": b"\0" * (30 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)


def many_small_bombs() -> bytes:
    """120 entries of 1 MiB of zeros each (none above the per-entry floor): 120 MiB from ~130 kB."""
    flat = b"\xff\xd8\xff" + b"\0" * (1024 * 1024 - 3)
    return zip_bytes({f"{n}.jpg": flat for n in range(120)}, compression=zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize(
    ("archive", "tileflow", "reason"),
    [
        (b"PK\x03\x04 this is no zip", {}, "not a zip"),
        (bomb(), {}, "zip bomb"),
        (zip_bytes({f"{n}.jpg": image_bytes(32, 32) for n in range(6)}), {"ARCHIVE_MAX_BYTES": 4000}, "expands to"),
        (zip_bytes({f"tiny/{n}.jpg": b"x" for n in range(2500)}), {}, "2500 entries"),
        (many_small_bombs(), {}, "zip bomb"),
        (bomb(), {"MAX_UPLOAD_BYTES": 1024 * 1024}, "zip bomb"),
        (from_a_later_zip_version(), {}, "not a readable zip file: zip file version 9.2"),
    ],
    ids=[
        "not-a-zip",
        "ratio-bomb",
        "total-beyond-limit",
        "thousands-of-tiny-entries",
        "many-entries-under-the-floor",
        "bomb-beyond-the-image-limit",
        "a-later-zip-version",
    ],
)
async def test_bad_archives_are_refused_with_400_and_leave_nothing(http, flow, settings, archive, tileflow, reason):
    settings.TILEFLOW = {**settings.TILEFLOW, **tileflow}
    response = await http.post(f"/api/flows/{flow.id}/batches", {"archive": upload(archive, "photos.zip")})
    assert response.status_code == 400, response.content
    assert reason in response.json()["error"]
    assert not await Batch.objects.aexists()
    assert not files_under(Path(settings.MEDIA_ROOT))


async def test_an_oversized_image_is_a_failed_item_not_a_refusal(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_UPLOAD_BYTES": 20_000}
    big, small = image_bytes(900, 900, seed=1), image_bytes(120, 90, seed=2)
    assert len(big) > 20_000 > len(small)
    response = await http.post(
        f"/api/flows/{flow.id}/batches", {"image": [upload(big, "big.jpg"), upload(small, "small.jpg")]}
    )
    assert response.status_code == 201, response.content
    done = await wait_batch(http, response.json()["id"])
    items = {item["name"]: item for item in done["items"]}
    assert items["small.jpg"]["status"] == "succeeded"
    assert items["big.jpg"]["status"] == "failed" and "upload limit" in items["big.jpg"]["error"]
    assert not any(name.endswith(".jpg") and "00000" in name for name in files_under(Path(settings.MEDIA_ROOT)))


async def test_an_image_whose_path_is_unsafe_is_listed_under_the_path_it_was_sent_with(http, flow):
    response = await http.post(
        f"/api/flows/{flow.id}/batches",
        {
            "image": [upload(image_bytes(64, 48), "x.jpg"), upload(image_bytes(64, 48), "y.jpg")],
            "path": ["../../escape/x.jpg", "C:/y.jpg"],
        },
    )
    assert response.status_code == 201, response.content
    items = {item["name"]: item for item in response.json()["items"]}
    assert set(items) == {"../../escape/x.jpg", "C:/y.jpg"}  # the sender knows which of its inputs was refused
    assert all("unsafe name" in item["error"] and item["execution"] is None for item in items.values())


async def test_refusals_keep_nothing(http, flow, other_user, settings):
    anonymous = TokenClient(None)
    response = await anonymous.post(f"/api/flows/{flow.id}/batches", {"image": upload(image_bytes(50, 50))})
    assert response.status_code == 401
    stranger = await Flow.objects.acreate(owner=other_user, name="theirs", graph=chain(("grayscale", {})))
    response = await http.post(f"/api/flows/{stranger.id}/batches", {"image": upload(image_bytes(50, 50))})
    assert response.status_code == 404
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": upload(image_bytes(50, 50)), "other": "x"})
    assert response.status_code == 400 and "unknown field 'other'" in response.json()["error"]
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": "-2212"})
    assert response.status_code == 400 and "'image' must be a file" in response.json()["error"]
    two = [upload(zip_bytes({"a.png": image_bytes(5, 5)}), name=f"{n}.zip") for n in "ab"]
    response = await http.post(f"/api/flows/{flow.id}/batches", {"archive": two})
    assert response.status_code == 400 and "more than one 'archive'" in response.json()["error"]
    response = await http.post(f"/api/flows/{flow.id}/batches", {"path": "a.jpg"})
    assert response.status_code == 400 and "no images" in response.json()["error"]
    response = await http.post(f"/api/flows/{flow.id}/batches", b"{}", content_type="application/json")
    assert response.status_code == 400
    assert not await Batch.objects.aexists()
    assert not files_under(Path(settings.MEDIA_ROOT))


async def test_other_users_batches_are_not_found(http, flow, other_user):
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": upload(image_bytes(60, 40))})
    batch_id = response.json()["id"]
    await wait_batch(http, batch_id)
    from flows.models import ApiToken

    _, their_token = await sync_to_async(ApiToken.issue)(other_user)
    theirs = TokenClient(their_token)
    for call in (theirs.get(f"/api/batches/{batch_id}"), theirs.get(f"/api/batches/{batch_id}/results")):
        assert (await call).status_code == 404
    assert (await theirs.post(f"/api/batches/{batch_id}/cancel")).status_code == 404
    assert (await theirs.get("/api/batches")).json() == {"batches": []}
    mine = (await http.get(f"/api/batches?flow={flow.id}")).json()["batches"]
    assert [batch["id"] for batch in mine] == [batch_id]
    assert mine[0].get("items") is None


async def test_the_flow_is_frozen_at_creation(http, flow):
    response = await http.post(
        f"/api/flows/{flow.id}/batches", {"image": [upload(image_bytes(200, 100, seed=n)) for n in range(3)]}
    )
    flow.graph = chain(("grayscale", {}), output={"format": "png"})
    await flow.asave()
    done = await wait_batch(http, response.json()["id"])
    assert done["status"] == "succeeded"
    results = await http.get(f"/api/batches/{done['id']}/results")
    with zipfile.ZipFile(io.BytesIO(await read_stream(results))) as zipped:
        assert {Image.open(zipped.open(name)).format for name in zipped.namelist()} == {"JPEG"}


async def test_items_run_on_larger_tiles_with_the_same_pixels_as_the_whole_image(http, user, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "BATCH_TILE_SIZE": 1024}
    assert batch_runner.item_limits().tile_size == 1024
    assert not batch_runner.item_limits().interactive  # nobody waits for an item's first band
    graph = chain(("resize", {"scale": 0.5}), ("grayscale", {}), output={"format": "png"})
    flow = await Flow.objects.acreate(owner=user, name="exact", graph=graph)
    photos = {f"{seed}.jpg": image_bytes(1500, 1100, seed=seed) for seed in range(2)}
    response = await http.post(
        f"/api/flows/{flow.id}/batches", {"image": [upload(data, name) for name, data in photos.items()]}
    )
    assert (await wait_batch(http, response.json()["id"]))["status"] == "succeeded"
    results = await http.get(f"/api/batches/{response.json()['id']}/results")
    with zipfile.ZipFile(io.BytesIO(await read_stream(results))) as zipped:
        for name, data in photos.items():
            expected = reference_flow(graph, decode(data))["out"]
            result = decode(zipped.read(name.replace(".jpg", ".png")))
            assert ImageChops.difference(result.convert(expected.mode), expected).getbbox() is None, name
    # 1500 x 1100 in tiles of 1024 with no short first rows: 2 x 2 source tiles (10 with them).
    async for item in BatchItem.objects.filter(batch_id=response.json()["id"]).select_related("execution"):
        assert item.execution.nodes["in"]["total"] == 4, item.execution.nodes


async def test_a_flow_deleted_mid_batch_leaves_its_items_running_its_frozen_graph(http, flow):
    response = await http.post(
        f"/api/flows/{flow.id}/batches",
        {"image": [upload(image_bytes(300, 200, seed=n), f"{n}.jpg") for n in range(4)]},
    )
    assert response.status_code == 201
    assert (await http.delete(f"/api/flows/{flow.id}")).status_code == 204
    done = await wait_batch(http, response.json()["id"])
    assert done["status"] == "succeeded", [item["error"] for item in done["items"]]
    assert done["flow"] is None and done["flow_name"] == "compress-and-watermark"


def item_snapshot(status: str, error: str | None = None) -> dict:
    now = timezone.now().isoformat()
    return {
        "status": status,
        "error": error,
        "started_at": now,
        "first_output_at": now,
        "finished_at": now,
        "retries": 0,
        "duplicates": 0,
        "workers": {},
        "nodes": {},
        "timeline": {},
        "outputs": [],
    }


@pytest.mark.parametrize(("status", "error"), [("succeeded", None), ("failed", "node 'mark' failed: boom")])
async def test_an_items_final_save_ends_the_item_with_its_execution(flow, status, error):
    batch = await Batch.objects.acreate(owner_id=flow.owner_id, flow=flow, graph=flow.graph, status="running")
    execution = await Execution.objects.acreate(owner_id=flow.owner_id, flow=flow, graph=flow.graph)
    item = await BatchItem.objects.acreate(batch=batch, index=0, name="a.jpg", status="running", execution=execution)
    recorder = batch_runner.ItemRecorder(execution.id, item.pk)
    await recorder.save(item_snapshot("running"), final=False)
    await item.arefresh_from_db()
    assert item.status == "running" and not recorder.ended
    await recorder.save(item_snapshot(status, error), final=True)
    await item.arefresh_from_db()
    await execution.arefresh_from_db()
    assert recorder.ended and (item.status, item.error) == (execution.status, execution.error) == (status, error)
    assert item.finished_at is not None


async def test_an_item_whose_execution_is_gone_is_not_ended_by_the_recorder(flow):
    batch = await Batch.objects.acreate(owner_id=flow.owner_id, flow=flow, graph=flow.graph, status="running")
    execution = await Execution.objects.acreate(owner_id=flow.owner_id, flow=flow, graph=flow.graph)
    item = await BatchItem.objects.acreate(batch=batch, index=0, name="a.jpg", status="running", execution=execution)
    execution_id = execution.pk
    await execution.adelete()
    recorder = batch_runner.ItemRecorder(execution_id, item.pk)
    await recorder.save(item_snapshot("succeeded"), final=True)
    await item.arefresh_from_db()
    assert not recorder.ended and item.status == "running"  # the driver ends it (`_end_item`)


async def test_the_results_zip_is_named_after_its_flow_in_any_script(http, user):
    flow = await Flow.objects.acreate(owner=user, name="水印流程", graph=COMPRESS_AND_WATERMARK)
    response = await http.post(f"/api/flows/{flow.id}/batches", {"image": [upload(image_bytes(80, 60), "a.jpg")]})
    assert response.status_code == 201, response.content
    batch_id = response.json()["id"]
    assert (await wait_batch(http, batch_id))["status"] == "succeeded"
    results = await http.get(f"/api/batches/{batch_id}/results")
    await read_stream(results)
    suffix = f"-{batch_id[:8]}.zip"
    assert results["Content-Disposition"] == (
        f"attachment; filename=\"batch{suffix}\"; filename*=UTF-8''%E6%B0%B4%E5%8D%B0%E6%B5%81%E7%A8%8B{suffix}"
    )
