"""The trigger loop in real processes: inside Daphne by default, in `manage.py runtriggers` with one poller each."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from tests.support.http import Client
from tests.support.runs import image_bytes
from tests.support.services import PYTHON, ROOT, LiveConsole, stop

GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "out", "type": "output", "params": {"format": "webp", "quality": 80}},
    ],
    "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "out"}],
}
FAST = {
    "TILEFLOW_TRIGGER_POLL_SECONDS": "0.3",
    "TILEFLOW_TRIGGER_SETTLE_SECONDS": "0.2",
    "TILEFLOW_TRIGGER_LEASE_SECONDS": "2",
}


def wait_for(condition, timeout: float = 90, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not so after {timeout} s")


def setup_console(tmp_path: Path, **env: str) -> tuple[LiveConsole, Path]:
    """A migrated console with a folder root `photos`; return it and the root."""
    root = tmp_path / "photos"
    (root / "inbox").mkdir(parents=True)
    console = LiveConsole(tmp_path / "server", TILEFLOW_FOLDER_ROOTS=f"photos={root}", **{**FAST, **env})
    console.setup()
    return console, root


def api(console: LiveConsole) -> Client:
    return Client(console.url, headers=console.auth, timeout=30)


def create_trigger(client: Client, **fields) -> tuple[str, dict]:
    status, flow = client.json("POST", "/api/flows", {"name": "half-webp", "graph": GRAPH})
    assert status == 201, flow
    status, trigger = client.json(
        "POST",
        f"/api/flows/{flow['id']}/triggers",
        {
            "type": "folder",
            "source": {"root": "photos", "path": "inbox"},
            "destination": {"root": "photos", "path": "out"},
            **fields,
        },
    )
    assert status == 201, trigger
    return flow["id"], trigger


def events(client: Client, trigger: dict) -> list[dict]:
    status, body = client.json("GET", f"/api/triggers/{trigger['id']}/events")
    assert status == 200, body
    return body["events"]


def finished(client: Client, trigger: dict, count: int):
    def check():
        seen = events(client, trigger)
        done = [event for event in seen if event["status"] in ("succeeded", "failed", "skipped")]
        return seen if len(done) >= count else None

    return check


def test_the_server_runs_triggers_through_a_restart_and_a_pause(tmp_path):
    console, root = setup_console(tmp_path)
    console.start()
    try:
        client = api(console)
        _, trigger = create_trigger(client)
        (root / "inbox" / "trip").mkdir()
        (root / "inbox" / "trip" / "one.jpg").write_bytes(image_bytes(320, 200))
        [one] = wait_for(finished(client, trigger, 1))
        assert one["key"] == "trip/one.jpg" and one["status"] == "succeeded", one
        with Image.open(root / "out" / "trip" / "one.webp") as result:
            assert result.format == "WEBP" and result.size == (160, 100)

        console.stop()  # between two uploads the server is down
        (root / "inbox" / "two.jpg").write_bytes(image_bytes(200, 100))
        console.start()
        seen = wait_for(finished(client, trigger, 2))
        assert sorted((event["key"], event["status"]) for event in seen) == [
            ("trip/one.jpg", "succeeded"),
            ("two.jpg", "succeeded"),
        ]
        assert (root / "out" / "two.webp").is_file()

        status, paused = client.json("PATCH", f"/api/triggers/{trigger['id']}", {"enabled": False})
        assert status == 200 and paused["enabled"] is False
        (root / "inbox" / "three.jpg").write_bytes(image_bytes(200, 100))
        time.sleep(2)  # several poll intervals
        assert len(events(client, trigger)) == 2 and not (root / "out" / "three.webp").exists()
        client.json("PATCH", f"/api/triggers/{trigger['id']}", {"enabled": True})
        wait_for(finished(client, trigger, 3))
        assert (root / "out" / "three.webp").is_file()

        status, body = client.json("GET", "/api/executions")
        assert len(body["executions"]) == 3  # each file ran once
    finally:
        console.stop()


def most_at_once(executions: list[dict]) -> int:
    """Return how many of the executions ran at the same time, at most."""
    moments = sorted(
        [(datetime.fromisoformat(execution["started_at"]), 1) for execution in executions]
        + [(datetime.fromisoformat(execution["finished_at"]), -1) for execution in executions]
    )
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def test_a_folder_of_many_files_runs_as_its_runs_end_not_a_few_files_a_poll(tmp_path):
    """Each run that ends starts the next pending object at once: with a 60 s poll, 4 runs a look would take minutes.

    Files that cannot run leave their places to the next ones at once too: 40 of them, listed first,
    would otherwise hold every place with no run left to end and wake the worker.
    """
    console, root = setup_console(
        tmp_path,
        TILEFLOW_TRIGGER_POLL_SECONDS="60",
        TILEFLOW_TRIGGER_LEASE_SECONDS="300",
        TILEFLOW_MAX_CONCURRENT_RUNS_PER_USER="4",
    )
    images = [f"p{number:02d}.jpg" for number in range(24)]
    for number, name in enumerate(images):
        (root / "inbox" / name).write_bytes(image_bytes(160, 100, seed=number))
    notes = [f"a{number:02d}.txt" for number in range(40)]
    for name in notes:
        (root / "inbox" / name).write_text("not a picture")
    console.start()
    try:
        client = api(console)
        _, trigger = create_trigger(client, process_existing=True)  # its first look, at once, finds all 64
        seen = wait_for(finished(client, trigger, 64), timeout=45)  # before its second look, at 60 s
        statuses = {event["key"]: event["status"] for event in seen}
        assert statuses == {**dict.fromkeys(images, "succeeded"), **dict.fromkeys(notes, "skipped")}
        assert sorted(os.listdir(root / "out")) == [name.replace(".jpg", ".webp") for name in images]
        _, body = client.json("GET", "/api/executions?limit=100")
        assert len(body["executions"]) == 24  # each image ran once
        assert most_at_once(body["executions"]) <= 4
    finally:
        console.stop()


def runtriggers(console: LiveConsole) -> subprocess.Popen:
    log = (console.workdir / "runtriggers.log").open("ab")
    return subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), "runtriggers"],
        cwd=ROOT,
        env=console.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def lease_owner(console: LiveConsole, trigger: dict) -> str:
    """Read the trigger's lease holder from the console's database (a manage.py shell takes seconds)."""
    with sqlite3.connect(console.workdir / "db.sqlite3") as database:
        [(owner,)] = database.execute(
            "SELECT lease_owner FROM flows_trigger WHERE id = ?", [uuid.UUID(trigger["id"]).hex]
        ).fetchall()
    return owner


def test_runtriggers_processes_share_the_work_and_take_over_from_one_that_dies(tmp_path):
    console, root = setup_console(tmp_path, TILEFLOW_EMBEDDED_TRIGGERS="false")
    console.start()  # the API only: its loop is off
    pollers = []
    try:
        client = api(console)
        _, trigger = create_trigger(client)
        pollers = [runtriggers(console), runtriggers(console)]
        holder = wait_for(lambda: lease_owner(console, trigger))
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            (root / "inbox" / name).write_bytes(image_bytes(160, 100))
        wait_for(finished(client, trigger, 3), timeout=120)

        matching = [poller for poller in pollers if f":{poller.pid}:" in holder]
        assert len(matching) == 1, (holder, [p.pid for p in pollers])
        [first] = matching
        first.send_signal(signal.SIGKILL)  # no goodbye: its lease has to run out, or its pid be gone
        first.wait()
        (root / "inbox" / "d.jpg").write_bytes(image_bytes(160, 100))
        seen = wait_for(finished(client, trigger, 4), timeout=120)
        assert sorted(event["key"] for event in seen) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
        assert all(event["status"] == "succeeded" for event in seen), seen
        assert lease_owner(console, trigger) not in ("", holder)
        _, body = client.json("GET", "/api/executions")
        assert len(body["executions"]) == 4  # no object ran twice
        assert sorted(os.listdir(root / "out")) == ["a.webp", "b.webp", "c.webp", "d.webp"]
    finally:
        for poller in pollers:
            stop(poller)
        console.stop()


@pytest.mark.parametrize("poller", ["embedded", "runtriggers"])
def test_an_s3_trigger_on_a_live_server_with_notifications(tmp_path, s3_server, poller):
    """A notification starts the run at once: with a 60 s poll, nothing else would see the object in time.

    In a `runtriggers` process the notification, taken by the console, reaches it through the database.
    """
    connections = json.dumps({"store": s3_server.connection()})
    console, _ = setup_console(
        tmp_path,
        TILEFLOW_S3_CONNECTIONS=connections,
        TILEFLOW_TRIGGER_POLL_SECONDS="60",
        TILEFLOW_TRIGGER_LEASE_SECONDS="300",
        TILEFLOW_EMBEDDED_TRIGGERS=str(poller == "embedded").lower(),
    )
    pollers = []
    inbox, results = f"in-{uuid.uuid4().hex[:10]}", f"out-{uuid.uuid4().hex[:10]}"
    store = s3_server.client()
    store.create_bucket(Bucket=inbox)
    store.create_bucket(Bucket=results)
    console.start()
    try:
        client = api(console)
        assert client.json("GET", "/api/locations") == (200, {"folder": ["photos"], "s3": ["store"]})
        status, flow = client.json("POST", "/api/flows", {"name": "half-webp", "graph": GRAPH})
        status, trigger = client.json(
            "POST",
            f"/api/flows/{flow['id']}/triggers",
            {
                "type": "s3",
                "source": {"connection": "store", "bucket": inbox, "prefix": "new/"},
                "destination": {"connection": "store", "bucket": results, "prefix": "half/"},
            },
        )
        assert status == 201, trigger
        assert s3_server.secret_key not in json.dumps(trigger)
        if poller == "runtriggers":
            pollers.append(runtriggers(console))  # its first look at the leases takes the trigger
        # A new trigger is taken and primed at once, not at the loop's next look at the leases.
        wait_for(lambda: client.json("GET", f"/api/triggers/{trigger['id']}")[1]["last_scan_at"], timeout=30)
        etag = store.put_object(Bucket=inbox, Key="new/2024/IMG 1.jpg", Body=image_bytes(300, 200))["ETag"]
        notification = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": inbox},
                        "object": {"key": "new/2024/IMG+1.jpg", "size": 1, "eTag": etag.strip('"')},
                    },
                }
            ]
        }
        anonymous = Client(console.url, timeout=30)
        status, _, _ = anonymous.request(
            "POST", f"/api/triggers/{trigger['id']}/events", json.dumps(notification).encode()
        )
        assert status == 401
        status, _, body = anonymous.request(
            "POST",
            f"/api/triggers/{trigger['id']}/events",
            json.dumps(notification).encode(),
            {"Content-Type": "application/json", "X-Tileflow-Secret": trigger["secret"]},
        )
        assert status == 202 and json.loads(body) == {"accepted": 1}
        [event] = wait_for(finished(client, trigger, 1), timeout=20)
        assert event["key"] == "2024/IMG 1.jpg" and event["status"] == "succeeded", event
        assert s3_server.keys(results) == ["half/2024/IMG 1.webp"]
        result = store.get_object(Bucket=results, Key="half/2024/IMG 1.webp")["Body"].read()
        with Image.open(io.BytesIO(result)) as image:
            assert image.size == (150, 100)
        assert len(events(client, trigger)) == 1
    finally:
        for running in pollers:
            stop(running)
        console.stop()


@pytest.mark.django_db(transaction=True)  # the loop closes stale connections, as its threads must
def test_leases_one_holder_at_a_time_taken_when_lapsed_or_dead_given_up_when_paused(user, settings):
    from datetime import timedelta

    from django.utils import timezone

    from flows.models import Flow, Trigger
    from flows.trigger_loop import TriggerLoop

    settings.TILEFLOW = {**settings.TILEFLOW, "TRIGGER_LEASE_SECONDS": 10.0, "TRIGGER_POLL_SECONDS": 1.0}
    flow = Flow.objects.create(owner=user, name="f", graph=GRAPH)
    trigger = Trigger.objects.create(
        owner=user, flow=flow, type="folder", source={}, destination={}, watch_from=timezone.now()
    )
    first, second = TriggerLoop(), TriggerLoop()
    TriggerLoop.live_holders.update({first.holder, second.holder})
    try:
        assert first.hold_leases() == {trigger.pk}
        assert second.hold_leases() == set()
        expires = Trigger.objects.get(pk=trigger.pk).lease_expires_at
        assert first.hold_leases() == {trigger.pk}
        assert Trigger.objects.get(pk=trigger.pk).lease_expires_at == expires  # still fresh: not rewritten

        Trigger.objects.filter(pk=trigger.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert second.hold_leases() == {trigger.pk}  # lapsed: taken over
        assert first.hold_leases() == set()  # and the first knows it lost it

        TriggerLoop.live_holders.discard(second.holder)  # its loop stopped without letting go
        assert first.hold_leases() == {trigger.pk}

        Trigger.objects.filter(pk=trigger.pk).update(enabled=False)
        assert first.hold_leases() == set()
        assert Trigger.objects.get(pk=trigger.pk).lease_owner == ""
    finally:
        TriggerLoop.live_holders.difference_update({first.holder, second.holder})
