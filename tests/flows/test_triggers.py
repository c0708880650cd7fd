"""One trigger's worker: each new object run once, outputs named after it, failures recorded, stores that fail."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from PIL import Image

from flows.models import Execution, Flow, Trigger, TriggerEvent
from flows.trigger_loop import TriggerLoop
from flows.triggers import TriggerWorker, output_key, record_notification
from tests.support.runs import image_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

HALF_SIZE_PNG = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "out"}],
}
FINISHED = {"succeeded", "failed", "skipped"}


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="half", graph=HALF_SIZE_PNG)


def make_trigger(flow, kind: str, source: dict, destination: dict, **fields) -> Trigger:
    return Trigger.objects.create(
        owner=flow.owner,
        flow=flow,
        type=kind,
        source=source,
        destination=destination,
        watch_from=fields.pop("watch_from", timezone.now()),
        **fields,
    )


def folder_trigger(flow, root, **fields) -> Trigger:
    (root / "in").mkdir(exist_ok=True)
    return make_trigger(flow, "folder", {"root": "photos", "path": "in"}, {"root": "photos", "path": "out"}, **fields)


def events(trigger: Trigger) -> dict[str, TriggerEvent]:
    return {event.key: event for event in TriggerEvent.objects.filter(trigger=trigger).exclude(status="existing")}


async def run_until(worker: TriggerWorker, done, timeout: float = 60) -> None:
    """Cycle the worker (as the loop does) until `done()` holds, then let its runs' deliveries finish."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await worker.cycle()
        if await sync_to_async(done)():
            await asyncio.gather(*worker.finishing)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not done after {timeout} s")


def settled(trigger: Trigger, count: int):
    return lambda: sum(event.status in FINISHED for event in events(trigger).values()) >= count


def half_size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.width // 2, image.height // 2


def test_outputs_are_named_after_their_inputs():
    assert output_key("trip/IMG_1.jpeg", "out", "image/png", several=False) == "trip/IMG_1.png"
    assert output_key("a.b.tiff", "thumb", "image/jpeg", several=True) == "a.b-thumb.jpg"
    assert output_key("noext", "out", "image/webp", several=False) == "noext.webp"


async def test_a_folder_trigger_runs_once_on_each_new_file_and_leaves_existing_ones(trigger_places, flow):
    (trigger_places / "in").mkdir()
    (trigger_places / "in" / "old.jpg").write_bytes(image_bytes(120, 80))
    trigger = await sync_to_async(folder_trigger)(
        flow, trigger_places, watch_from=timezone.now() + timedelta(seconds=2)
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()  # the first look records what is there
    (trigger_places / "in" / "trip" / "day1").mkdir(parents=True)
    photo = image_bytes(300, 200)
    (trigger_places / "in" / "trip" / "day1" / "IMG_1.jpg").write_bytes(photo)
    (trigger_places / "in" / "new.png").write_bytes(image_bytes(64, 64, "PNG"))
    await run_until(worker, settled(trigger, 2))

    seen = await sync_to_async(events)(trigger)
    assert sorted(seen) == ["new.png", "trip/day1/IMG_1.jpg"]
    event = seen["trip/day1/IMG_1.jpg"]
    assert event.status == "succeeded" and event.error is None
    assert event.outputs == ["out/trip/day1/IMG_1.png"]
    with Image.open(trigger_places / "out" / "trip" / "day1" / "IMG_1.png") as result:
        assert result.format == "PNG" and result.size == half_size_of(photo)
    execution = await Execution.objects.aget(pk=event.execution_id)
    assert execution.owner_id == flow.owner_id and execution.flow_id == flow.id and execution.status == "succeeded"
    assert execution.input_name == "IMG_1.jpg"
    assert execution.nodes["in"]["total"] == 1  # an unattended run: no short first rows (300 x 200 is one tile)
    assert not (trigger_places / "out" / "old.png").exists()

    for _ in range(3):  # looking again repeats nothing
        await worker.cycle()
    assert await Execution.objects.acount() == 2
    assert await TriggerEvent.objects.filter(trigger=trigger).acount() == 3  # old.jpg recorded as existing


async def test_process_existing_runs_on_what_is_already_there(trigger_places, flow):
    (trigger_places / "in").mkdir()
    (trigger_places / "in" / "old.jpg").write_bytes(image_bytes(120, 80))
    trigger = await sync_to_async(folder_trigger)(
        flow, trigger_places, process_existing=True, watch_from=timezone.now() + timedelta(seconds=2)
    )
    await run_until(TriggerWorker(trigger.pk), settled(trigger, 1))
    assert (trigger_places / "out" / "old.png").is_file()


async def test_a_file_that_is_not_an_image_is_skipped_once_with_its_reason(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "notes.txt").write_text("not a picture")
    (trigger_places / "in" / "empty.jpg").write_bytes(b"")
    await run_until(worker, settled(trigger, 2))
    for _ in range(3):
        await worker.cycle()
    seen = await sync_to_async(events)(trigger)
    assert seen["notes.txt"].status == "skipped" and "image" in seen["notes.txt"].error
    assert seen["empty.jpg"].status == "skipped" and seen["empty.jpg"].error == "the object is empty"
    assert all(event.attempts == 0 and event.execution_id is None for event in seen.values())
    assert await Execution.objects.acount() == 0
    assert not (trigger_places / "out").exists()


async def test_a_name_that_is_not_utf8_or_too_long_is_skipped_and_every_other_file_runs(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    inbox = trigger_places / "in"
    for number in range(1, 6):
        (inbox / f"good{number}.jpg").write_bytes(image_bytes(100, 60, seed=number))
    with open(os.path.join(os.fsencode(inbox), b"bad\xffname.jpg"), "wb") as undecodable:
        undecodable.write(image_bytes(100, 60))
    deep = inbox.joinpath(*["d" * 240] * 5)  # 1210 characters from the source, past the name column's 1024
    deep.mkdir(parents=True)
    (deep / "long.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 7))

    seen = await sync_to_async(events)(trigger)
    long_name = f"{'d' * 240}/" * 4 + "d" * (1024 - 4 * 241)
    assert {key: event.status for key, event in seen.items()} == {
        **{f"good{number}.jpg": "succeeded" for number in range(1, 6)},
        "bad\\xffname.jpg": "skipped",
        long_name: "skipped",
    }
    assert seen["bad\\xffname.jpg"].error == "the name is not valid UTF-8 (shown with those bytes as \\xNN)"
    assert seen[long_name].error == "the name is longer than 1024 characters"
    assert sorted(os.listdir(trigger_places / "out")) == [f"good{number}.png" for number in range(1, 6)]
    assert (await Trigger.objects.aget(pk=trigger.pk)).last_error is None
    await worker.cycle()
    await TriggerWorker(trigger.pk).cycle()  # after a restart too, the names read back are known
    assert await TriggerEvent.objects.filter(trigger=trigger).acount() == 7


def file_past_path_max(folder: Path) -> Path:
    """Put a file in folders under `folder` that can be listed, at a path too long to stat; return the top folder."""
    limit = os.pathconf(folder, "PC_PATH_MAX")
    length = len(os.fsencode(folder))
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        while length < limit - 150:  # each folder's own path stays under the limit
            os.mkdir("d" * 100, dir_fd=descriptor)
            inner = os.open("d" * 100, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor, length = inner, length + 101
        image = os.open("x" * 200 + ".jpg", os.O_WRONLY | os.O_CREAT, dir_fd=descriptor)
        os.write(image, image_bytes(100, 60))
        os.close(image)
    finally:
        os.close(descriptor)
    return folder / ("d" * 100)


async def test_files_listed_before_a_look_fails_are_recorded_by_the_next_look(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (trigger_places / "in" / name).write_bytes(image_bytes(100, 60))
    deep = file_past_path_max(trigger_places / "in")  # listed after a, b and c; its stat fails (ENAMETOOLONG)
    assert await TriggerLoop._attempt(trigger.pk, worker.cycle)
    assert "File name too long" in (await Trigger.objects.aget(pk=trigger.pk)).last_error
    assert not await TriggerEvent.objects.filter(trigger=trigger).aexists()

    shutil.rmtree(deep)
    await run_until(worker, settled(trigger, 3))
    seen = await sync_to_async(events)(trigger)
    assert {key: event.status for key, event in seen.items()} == dict.fromkeys(("a.jpg", "b.jpg", "c.jpg"), "succeeded")
    assert (await Trigger.objects.aget(pk=trigger.pk)).last_error is None


async def test_a_changed_file_is_a_new_version_and_runs_again(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    await asyncio.sleep(0.01)
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(200, 60))
    await run_until(worker, lambda: TriggerEvent.objects.filter(trigger=trigger, status="succeeded").count() == 2)
    with Image.open(trigger_places / "out" / "a.png") as result:
        assert result.size == (100, 30)


async def test_objects_whose_outputs_would_share_a_name_each_keep_their_own(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "coll.jpg").write_bytes(image_bytes(240, 160))
    await run_until(worker, settled(trigger, 1))
    (trigger_places / "in" / "coll.png").write_bytes(image_bytes(120, 90, "PNG"))  # would be out/coll.png too
    await run_until(worker, settled(trigger, 2))
    (trigger_places / "in" / "coll-2.jpg").write_bytes(image_bytes(60, 40))  # its own name is taken now
    await run_until(worker, settled(trigger, 3))
    seen = await sync_to_async(events)(trigger)
    assert {key: event.outputs for key, event in seen.items()} == {
        "coll.jpg": ["out/coll.png"],
        "coll.png": ["out/coll-2.png"],
        "coll-2.jpg": ["out/coll-2-2.png"],
    }
    sizes = {}
    for name in ("coll.png", "coll-2.png", "coll-2-2.png"):
        with Image.open(trigger_places / "out" / name) as result:
            sizes[name] = result.size
    assert sizes == {"coll.png": (120, 80), "coll-2.png": (60, 45), "coll-2-2.png": (30, 20)}

    await asyncio.sleep(0.01)  # a new version of an object replaces its own output, not another's
    (trigger_places / "in" / "coll.png").write_bytes(image_bytes(100, 50, "PNG"))
    await run_until(worker, lambda: TriggerEvent.objects.filter(trigger=trigger, status="succeeded").count() == 4)
    with Image.open(trigger_places / "out" / "coll-2.png") as result:
        assert result.size == (50, 25)
    assert sorted(os.listdir(trigger_places / "out")) == ["coll-2-2.png", "coll-2.png", "coll.png"]


async def test_a_new_worker_after_a_restart_neither_repeats_nor_skips(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    first = TriggerWorker(trigger.pk)
    await first.cycle()
    (trigger_places / "in" / "one.jpg").write_bytes(image_bytes(100, 60))
    await run_until(first, settled(trigger, 1))
    (trigger_places / "in" / "two.jpg").write_bytes(image_bytes(100, 60))  # arrives while nobody looks

    second = TriggerWorker(trigger.pk)
    await run_until(second, settled(trigger, 2))
    seen = await sync_to_async(events)(trigger)
    assert {key: event.status for key, event in seen.items()} == {"one.jpg": "succeeded", "two.jpg": "succeeded"}
    assert await Execution.objects.acount() == 2


async def test_an_object_claimed_by_a_process_that_died_is_run_by_the_next(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    await TriggerWorker(trigger.pk).cycle()
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))
    (trigger_places / "in" / "b.jpg").write_bytes(image_bytes(100, 60))
    scanner = TriggerWorker(trigger.pk)
    await sync_to_async(scanner.scan)(await Trigger.objects.aget(pk=trigger.pk))
    # One died after claiming a (no run yet); another died under b's run (the sweeper failed it).
    await TriggerEvent.objects.filter(trigger=trigger, key="a.jpg").aupdate(status="running")
    orphan = await Execution.objects.acreate(
        owner=flow.owner, flow=flow, graph=flow.graph, status="failed", error="interrupted: the server stopped"
    )
    await TriggerEvent.objects.filter(trigger=trigger, key="b.jpg").aupdate(status="running", execution=orphan)

    await run_until(TriggerWorker(trigger.pk), settled(trigger, 2))
    seen = await sync_to_async(events)(trigger)
    assert seen["a.jpg"].status == seen["b.jpg"].status == "succeeded"
    assert seen["b.jpg"].attempts == 1 and seen["b.jpg"].execution_id != orphan.id
    assert (trigger_places / "out" / "a.png").is_file() and (trigger_places / "out" / "b.png").is_file()


async def test_a_vanished_source_shows_the_error_and_keeps_its_place(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    (trigger_places / "in").rename(trigger_places / "in-moved")
    await worker.cycle()
    trigger = await Trigger.objects.aget(pk=trigger.pk)
    assert "does not exist" in trigger.last_error

    (trigger_places / "in-moved").rename(trigger_places / "in")
    (trigger_places / "in" / "b.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 2))
    trigger = await Trigger.objects.aget(pk=trigger.pk)
    assert trigger.last_error is None
    assert await Execution.objects.acount() == 2


async def test_a_destination_that_fails_is_retried_later_then_given_up(trigger_places, settings, flow):
    settings.TILEFLOW = {**settings.TILEFLOW, "TRIGGER_MAX_ATTEMPTS": 3, "TRIGGER_POLL_SECONDS": 0.05}
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "out").write_text("a file where the folder should be")
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))

    def waiting() -> bool:
        event = TriggerEvent.objects.filter(trigger=trigger, key="a.jpg").first()
        return event is not None and event.attempts >= 1

    await run_until(worker, waiting)
    event = await TriggerEvent.objects.aget(trigger=trigger, key="a.jpg")
    assert event.status == "running" and event.error.startswith("could not write the output")
    assert (await Trigger.objects.aget(pk=trigger.pk)).last_error.startswith("could not write the output")

    await run_until(worker, settled(trigger, 1))
    event = await TriggerEvent.objects.aget(trigger=trigger, key="a.jpg")
    assert event.status == "failed" and event.attempts == 3 and "gave up after 3 attempts" in event.error
    assert await Execution.objects.acount() == 1  # the run was not repeated, only its delivery


async def test_a_destination_that_comes_back_gets_the_output(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "out").write_text("in the way")
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, lambda: TriggerEvent.objects.filter(trigger=trigger, attempts__gte=1).exists())
    (trigger_places / "out").unlink()
    await run_until(worker, settled(trigger, 1))
    assert (await TriggerEvent.objects.aget(trigger=trigger)).status == "succeeded"
    assert (trigger_places / "out" / "a.png").is_file()
    await worker.cycle()
    assert (await Trigger.objects.aget(pk=trigger.pk)).last_error is None


def new_bucket(s3_server) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


async def test_an_s3_trigger_reads_one_bucket_and_writes_another(trigger_places, s3_server, flow):
    inbox, results = new_bucket(s3_server), new_bucket(s3_server)
    client = s3_server.client()
    client.put_object(Bucket=inbox, Key="raw/old.jpg", Body=image_bytes(80, 60))
    trigger = await sync_to_async(make_trigger)(
        flow,
        "s3",
        {"connection": "store", "bucket": inbox, "prefix": "raw/"},
        {"connection": "store", "bucket": results, "prefix": "done/"},
        watch_from=timezone.now() + timedelta(seconds=2),
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    photo = image_bytes(300, 200)
    client.put_object(Bucket=inbox, Key="raw/trip/IMG_1.jpg", Body=photo)
    await run_until(worker, settled(trigger, 1))
    for _ in range(2):
        await worker.cycle()

    assert s3_server.keys(results) == ["done/trip/IMG_1.png"]
    stored = client.get_object(Bucket=results, Key="done/trip/IMG_1.png")
    assert stored["ContentType"] == "image/png"
    with Image.open(io.BytesIO(stored["Body"].read())) as result:
        assert result.size == half_size_of(photo)
    [event] = (await sync_to_async(events)(trigger)).values()
    assert event.version == client.head_object(Bucket=inbox, Key="raw/trip/IMG_1.jpg")["ETag"].strip('"')
    assert await Execution.objects.acount() == 1


async def test_an_s3_trigger_with_a_wrong_key_or_a_vanished_bucket_shows_why(trigger_places, s3_server, settings, flow):
    import json

    from flows.trigger_stores import forget_configuration

    inbox, results = new_bucket(s3_server), new_bucket(s3_server)
    connections = {"store": s3_server.connection(), "wrong": s3_server.connection(access_key="AKIANOSUCHKEY")}
    settings.TILEFLOW = {**settings.TILEFLOW, "S3_CONNECTIONS": json.dumps(connections)}
    forget_configuration()
    wrong = await sync_to_async(make_trigger)(
        flow, "s3", {"connection": "wrong", "bucket": inbox, "prefix": ""}, {"connection": "store", "bucket": results}
    )
    await TriggerWorker(wrong.pk).cycle()
    assert (
        "refused the connection's credentials (InvalidAccessKeyId)"
        in (await Trigger.objects.aget(pk=wrong.pk)).last_error
    )

    trigger = await sync_to_async(make_trigger)(
        flow,
        "s3",
        {"connection": "store", "bucket": inbox, "prefix": ""},
        {"connection": "store", "bucket": results, "prefix": ""},
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    client = s3_server.client()
    client.put_object(Bucket=inbox, Key="a.jpg", Body=image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    await sync_to_async(s3_server.remove_bucket)(inbox)
    await worker.cycle()
    assert "the bucket does not exist" in (await Trigger.objects.aget(pk=trigger.pk)).last_error

    client.create_bucket(Bucket=inbox)
    client.put_object(Bucket=inbox, Key="b.jpg", Body=image_bytes(100, 60))
    await run_until(worker, settled(trigger, 2))
    assert (await Trigger.objects.aget(pk=trigger.pk)).last_error is None
    assert s3_server.keys(results) == ["a.png", "b.png"]
    assert await Execution.objects.acount() == 2


async def test_a_notification_records_objects_the_scan_then_does_not_repeat(trigger_places, s3_server, flow):
    inbox, results = new_bucket(s3_server), new_bucket(s3_server)
    trigger = await sync_to_async(make_trigger)(
        flow,
        "s3",
        {"connection": "store", "bucket": inbox, "prefix": "in/"},
        {"connection": "store", "bucket": results, "prefix": ""},
        enabled=True,
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    etag = s3_server.client().put_object(Bucket=inbox, Key="in/my photo.jpg", Body=image_bytes(100, 60))["ETag"]
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": inbox}, "object": {"key": "in/my+photo.jpg", "size": 10, "eTag": etag.strip('"')}},
    }
    elsewhere = {**record, "s3": {**record["s3"], "bucket": {"name": "other"}}}
    removed = {**record, "eventName": "ObjectRemoved:Delete"}
    assert await sync_to_async(record_notification)(trigger, [record, elsewhere, removed]) == 1
    assert await sync_to_async(record_notification)(trigger, [record]) == 0
    await run_until(worker, settled(trigger, 1))
    assert s3_server.keys(results) == ["my photo.png"]
    assert await TriggerEvent.objects.filter(trigger=trigger).acount() == 1


async def test_s3_names_the_database_cannot_hold_are_skipped_and_the_others_run(trigger_places, s3_server, flow):
    inbox, results = new_bucket(s3_server), new_bucket(s3_server)
    trigger = await sync_to_async(make_trigger)(
        flow,
        "s3",
        {"connection": "store", "bucket": inbox, "prefix": "in/"},
        {"connection": "store", "bucket": results, "prefix": ""},
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    client = s3_server.client()
    client.put_object(Bucket=inbox, Key="in/nul\x00name.jpg", Body=image_bytes(100, 60))  # PostgreSQL takes no NUL
    etag = client.put_object(Bucket=inbox, Key="in/fine.jpg", Body=image_bytes(100, 60))["ETag"].strip('"')
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": inbox}, "object": {"size": 10}}}
    notified = [
        {**record, "s3": {**record["s3"], "object": {"key": key, "size": 10, "eTag": etag}}}
        for key in ("in/lone\ud800surrogate.jpg", "in/fine.jpg")  # as JSON's "\ud800" reads
    ]
    assert await sync_to_async(record_notification)(trigger, notified) == 2
    await run_until(worker, settled(trigger, 3))

    seen = await sync_to_async(events)(trigger)
    assert {key: event.status for key, event in seen.items()} == {
        "nul\\x00name.jpg": "skipped",
        "lone\\ud800surrogate.jpg": "skipped",
        "fine.jpg": "succeeded",
    }
    assert "not valid UTF-8" in seen["lone\\ud800surrogate.jpg"].error
    assert seen["nul\\x00name.jpg"].error == "the name 'nul\\x00name.jpg' holds a NUL character"
    assert s3_server.keys(results) == ["fine.png"]
    await TriggerWorker(trigger.pk).cycle()
    assert await TriggerEvent.objects.filter(trigger=trigger).acount() == 3


async def test_a_file_already_in_the_destination_is_never_replaced(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "out").mkdir()
    (trigger_places / "out" / "keep.png").write_text("MY PRECIOUS NOTES\n")
    (trigger_places / "in" / "keep.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    [event] = (await sync_to_async(events)(trigger)).values()
    assert event.status == "succeeded" and event.outputs == ["out/keep-2.png"]
    assert (trigger_places / "out" / "keep.png").read_text() == "MY PRECIOUS NOTES\n"
    with Image.open(trigger_places / "out" / "keep-2.png") as result:
        assert result.size == (50, 30)

    await asyncio.sleep(0.01)  # a new version replaces its own output: no keep-3.png
    (trigger_places / "in" / "keep.jpg").write_bytes(image_bytes(200, 60))
    await run_until(worker, lambda: TriggerEvent.objects.filter(trigger=trigger, status="succeeded").count() == 2)
    assert sorted(os.listdir(trigger_places / "out")) == ["keep-2.png", "keep.png"]
    with Image.open(trigger_places / "out" / "keep-2.png") as result:
        assert result.size == (100, 30)
    assert (trigger_places / "out" / "keep.png").read_text() == "MY PRECIOUS NOTES\n"


async def test_a_delivery_cut_short_replaces_what_it_began_and_makes_no_copy(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "a.jpg").write_bytes(image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    # The process died after writing out/a.png, before it closed the event: the next one delivers again.
    await TriggerEvent.objects.filter(trigger=trigger).aupdate(status="running")
    (trigger_places / "out" / "a.png").write_bytes(b"half a file")
    event = await TriggerEvent.objects.aget(trigger=trigger)
    await sync_to_async(worker.finish)(event.pk)
    event = await TriggerEvent.objects.aget(trigger=trigger)
    assert event.status == "succeeded" and event.outputs == ["out/a.png"]
    assert os.listdir(trigger_places / "out") == ["a.png"]
    with Image.open(trigger_places / "out" / "a.png") as result:
        assert result.size == (50, 30)


async def test_an_object_already_in_the_destination_bucket_is_never_replaced(trigger_places, s3_server, flow):
    inbox, results = new_bucket(s3_server), new_bucket(s3_server)
    client = s3_server.client()
    client.put_object(Bucket=results, Key="processed/report.png", Body=b"MY PRECIOUS NOTES")
    trigger = await sync_to_async(make_trigger)(
        flow,
        "s3",
        {"connection": "store", "bucket": inbox, "prefix": "incoming/"},
        {"connection": "store", "bucket": results, "prefix": "processed/"},
    )
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    client.put_object(Bucket=inbox, Key="incoming/report.jpg", Body=image_bytes(100, 60))
    await run_until(worker, settled(trigger, 1))
    [event] = (await sync_to_async(events)(trigger)).values()
    assert event.status == "succeeded" and event.outputs == ["processed/report-2.png"]
    assert client.get_object(Bucket=results, Key="processed/report.png")["Body"].read() == b"MY PRECIOUS NOTES"
    assert s3_server.keys(results) == ["processed/report-2.png", "processed/report.png"]

    client.put_object(Bucket=inbox, Key="incoming/report.jpg", Body=image_bytes(200, 60))  # a new version
    await run_until(worker, lambda: TriggerEvent.objects.filter(trigger=trigger, status="succeeded").count() == 2)
    assert s3_server.keys(results) == ["processed/report-2.png", "processed/report.png"]
    stored = client.get_object(Bucket=results, Key="processed/report-2.png")["Body"].read()
    with Image.open(io.BytesIO(stored)) as result:
        assert result.size == (100, 30)


async def test_a_truncated_image_fails_with_its_reason_and_is_not_tried_again(trigger_places, flow):
    trigger = await sync_to_async(folder_trigger)(flow, trigger_places)
    worker = TriggerWorker(trigger.pk)
    await worker.cycle()
    (trigger_places / "in" / "cut.jpg").write_bytes(image_bytes(300, 200)[:2000])
    (trigger_places / "in" / "notes.jpg").write_text("not a picture")
    await run_until(worker, settled(trigger, 2))
    for _ in range(2):
        await worker.cycle()
    seen = await sync_to_async(events)(trigger)
    assert seen["cut.jpg"].status == "failed" and seen["cut.jpg"].error.startswith("the JPEG file is truncated")
    assert seen["notes.jpg"].status == "skipped" and "not an image" in seen["notes.jpg"].error
    assert all(event.attempts == 0 for event in seen.values())
    assert not (trigger_places / "out").exists()
