"""The trigger calls of CONTRACT §8 through the HTTP API: create, list, read, pause, move, delete, events."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from flows.models import Flow, Trigger, TriggerEvent
from tests.support.runs import COMPRESS_AND_WATERMARK

pytestmark = pytest.mark.django_db

FOLDER = {
    "type": "folder",
    "source": {"root": "photos", "path": "in"},
    "destination": {"root": "photos", "path": "out"},
}


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


@pytest.fixture
def inbox(trigger_places):
    (trigger_places / "in").mkdir()
    return trigger_places / "in"


def post(client, path: str, payload) -> tuple[int, dict]:
    response = client.post(path, json.dumps(payload), content_type="application/json")
    return response.status_code, response.json()


def patch(client, path: str, payload) -> tuple[int, dict]:
    response = client.patch(path, json.dumps(payload), content_type="application/json")
    return response.status_code, response.json()


def test_the_locations_list_names_only(api_client, trigger_places, s3_server):
    response = api_client.get("/api/locations")
    assert response.status_code == 200
    assert response.json() == {"folder": ["photos", "spare"], "s3": ["store"]}
    assert s3_server.secret_key not in response.content.decode()


def test_create_read_list_and_delete_a_folder_trigger(api_client, flow, inbox):
    status, trigger = post(api_client, f"/api/flows/{flow.id}/triggers", FOLDER)
    assert status == 201, trigger
    assert set(trigger) >= {
        "id",
        "flow",
        "type",
        "source",
        "destination",
        "enabled",
        "secret",
        "created_at",
        "last_error",
    }
    assert trigger["flow"] == str(flow.id) and trigger["type"] == "folder" and trigger["enabled"] is True
    assert trigger["source"] == {"root": "photos", "path": "in"} and trigger["last_error"] is None
    assert trigger["secret"].startswith("tfs_") and trigger["process_existing"] is False

    assert api_client.get(f"/api/triggers/{trigger['id']}").json() == trigger
    listed = api_client.get(f"/api/triggers?flow={flow.id}").json()["triggers"]
    assert [t["id"] for t in listed] == [trigger["id"]]
    assert api_client.get("/api/triggers?flow=not-a-uuid").json() == {"triggers": []}

    assert api_client.delete(f"/api/triggers/{trigger['id']}").status_code == 204
    assert api_client.get(f"/api/triggers/{trigger['id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"root": "nowhere", "path": "in"}}, "source: unknown folder root 'nowhere'"),
        ({"source": {"root": "photos", "path": "../in"}}, "source: the path '../in' may not contain '..'"),
        ({"destination": {"root": "photos", "path": "/tmp"}}, "destination: the path '/tmp' must be relative"),
        ({"source": {"root": "photos", "path": "missing"}}, "source: the folder photos:/missing does not exist"),
        ({"destination": {"root": "photos", "path": "in/done"}}, "destination: it lies inside the source"),
        ({"type": "s3", "source": {"connection": "aws", "bucket": "b1"}}, "source: unknown S3 connection 'aws'"),
        ({"type": "ftp"}, "type"),
    ],
)
def test_bad_locations_are_refused_with_their_field_named(api_client, flow, inbox, change, message):
    status, body = post(api_client, f"/api/flows/{flow.id}/triggers", {**FOLDER, **change})
    assert status == 400
    assert any(message in error["message"] for error in body["errors"]), body
    assert not Trigger.objects.exists()


def test_a_link_to_outside_the_root_is_refused(api_client, flow, inbox, tmp_path):
    (inbox / "escape").symlink_to(tmp_path, target_is_directory=True)
    status, body = post(
        api_client, f"/api/flows/{flow.id}/triggers", {**FOLDER, "source": {"root": "photos", "path": "in/escape"}}
    )
    assert status == 400 and "symbolic link" in body["errors"][0]["message"]


def test_another_users_flow_and_triggers_are_not_found(api_client, flow, inbox, other_user):
    _status, trigger = post(api_client, f"/api/flows/{flow.id}/triggers", FOLDER)
    client = Client()
    client.force_login(other_user)
    assert client.get(f"/api/triggers/{trigger['id']}").status_code == 404
    assert client.get(f"/api/triggers/{trigger['id']}/events").status_code == 404
    assert client.get("/api/triggers").json() == {"triggers": []}
    other_flow = Flow.objects.create(owner=other_user, name="theirs", graph=COMPRESS_AND_WATERMARK)
    assert post(api_client, f"/api/flows/{other_flow.id}/triggers", FOLDER)[0] == 404


def test_pause_resume_and_move(api_client, flow, inbox, trigger_places):
    _, trigger = post(api_client, f"/api/flows/{flow.id}/triggers", {**FOLDER, "process_existing": True})
    path = f"/api/triggers/{trigger['id']}"
    assert patch(api_client, path, {"enabled": False}) == (200, {**trigger, "enabled": False})
    assert patch(api_client, path, {"enabled": True})[1]["enabled"] is True
    assert patch(api_client, path, {"enabled": None})[0] == 400

    (trigger_places / "other").mkdir()
    Trigger.objects.filter(pk=trigger["id"]).update(primed=True)
    status, moved = patch(api_client, path, {"source": {"root": "photos", "path": "other"}})
    assert status == 200 and moved["source"] == {"root": "photos", "path": "other"}
    stored = Trigger.objects.get(pk=trigger["id"])
    assert not stored.primed and not stored.process_existing  # a new source: what is there is left alone
    status, body = patch(api_client, path, {"destination": {"root": "photos", "path": "other/x"}})
    assert status == 400 and "inside the source" in body["errors"][0]["message"]


def test_events_newest_first_without_the_objects_that_were_there(api_client, flow, inbox):
    _, created = post(api_client, f"/api/flows/{flow.id}/triggers", FOLDER)
    trigger = Trigger.objects.get(pk=created["id"])
    TriggerEvent.objects.create(trigger=trigger, key="old.jpg", version="1:1", status="existing")
    TriggerEvent.objects.create(trigger=trigger, key="a.jpg", version="1:2", status="succeeded")
    TriggerEvent.objects.create(trigger=trigger, key="b.txt", version="1:3", status="skipped", error="not an image")
    events = api_client.get(f"/api/triggers/{trigger.id}/events").json()["events"]
    assert [(e["key"], e["status"], e["error"]) for e in events] == [
        ("b.txt", "skipped", "not an image"),
        ("a.jpg", "succeeded", None),
    ]
    assert set(events[0]) >= {"key", "seen_at", "execution", "status", "error"}
    assert [
        e["key"] for e in api_client.get(f"/api/triggers/{trigger.id}/events?status=succeeded").json()["events"]
    ] == ["a.jpg"]
    counts = api_client.get(f"/api/triggers/{trigger.id}").json()["counts"]
    assert counts == {"pending": 0, "running": 0, "succeeded": 1, "failed": 0, "skipped": 1}


def s3_trigger(api_client, flow, s3_server) -> dict:
    for bucket in ("inbox", "results"):  # a bucket the store says is missing is refused
        if bucket not in {entry["Name"] for entry in s3_server.client().list_buckets()["Buckets"]}:
            s3_server.client().create_bucket(Bucket=bucket)
    status, trigger = post(
        api_client,
        f"/api/flows/{flow.id}/triggers",
        {
            "type": "s3",
            "source": {"connection": "store", "bucket": "inbox", "prefix": "in"},
            "destination": {"connection": "store", "bucket": "results"},
        },
    )
    assert status == 201, trigger
    assert trigger["source"]["prefix"] == "in/"
    return trigger


NOTIFICATION = {
    "Records": [
        {
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "inbox"}, "object": {"key": "in/a%20b.jpg", "size": 100, "eTag": "abc"}},
        }
    ]
}


def test_notifications_need_the_trigger_secret(api_client, flow, trigger_places, s3_server):
    trigger = s3_trigger(api_client, flow, s3_server)
    client = Client()  # the store calls without a session or an API token
    path = f"/api/triggers/{trigger['id']}/events"
    body = json.dumps(NOTIFICATION)
    assert client.post(path, body, content_type="application/json").status_code == 401
    wrong = client.post(path, body, content_type="application/json", headers={"X-Tileflow-Secret": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "unknown trigger or wrong secret"}
    unknown = client.post(
        "/api/triggers/00000000-0000-0000-0000-000000000000/events",
        body,
        content_type="application/json",
        headers={"X-Tileflow-Secret": trigger["secret"]},
    )
    assert unknown.status_code == 401

    accepted = client.post(
        path, body, content_type="application/json", headers={"Authorization": f"Bearer {trigger['secret']}"}
    )
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 1}
    again = client.post(f"{path}?secret={trigger['secret']}", body, content_type="application/json")
    assert again.status_code == 202 and again.json() == {"accepted": 0}
    [event] = TriggerEvent.objects.filter(trigger_id=trigger["id"])
    assert (event.key, event.version, event.status) == ("a b.jpg", "abc", "pending")

    secret = {"X-Tileflow-Secret": trigger["secret"]}
    for bad in (b"not json", b"[1]", b'{"Records": 3}'):
        answer = client.post(path, bad, content_type="application/json", headers=secret)
        assert answer.status_code == 400 and {"error", "errors"} & set(answer.json())
    test_event = client.post(
        path, json.dumps({"Event": "s3:TestEvent"}), content_type="application/json", headers=secret
    )
    assert test_event.status_code == 202


def test_folder_triggers_take_no_notifications(api_client, flow, inbox):
    _, trigger = post(api_client, f"/api/flows/{flow.id}/triggers", FOLDER)
    client = Client()
    answer = client.post(
        f"/api/triggers/{trigger['id']}/events",
        json.dumps(NOTIFICATION),
        content_type="application/json",
        headers={"X-Tileflow-Secret": trigger["secret"]},
    )
    assert answer.status_code == 400 and "folder triggers are scanned" in answer.json()["error"]


def s3_body(source_bucket: str, destination_bucket: str, connection: str = "store") -> dict:
    return {
        "type": "s3",
        "source": {"connection": connection, "bucket": source_bucket, "prefix": "incoming"},
        "destination": {"connection": connection, "bucket": destination_bucket, "prefix": "processed"},
    }


def test_a_missing_or_denied_bucket_is_refused_and_an_unreachable_store_accepted(
    api_client, flow, trigger_places, s3_server, settings
):
    from flows.trigger_stores import forget_configuration
    from tests.support.services import free_port

    connections = {
        "store": s3_server.connection(),
        "wrong": s3_server.connection(secret_key="not-the-secret"),
        "nobody": s3_server.connection(endpoint_url=f"http://127.0.0.1:{free_port()}"),
    }
    settings.TILEFLOW = {**settings.TILEFLOW, "S3_CONNECTIONS": json.dumps(connections), "S3_TIMEOUT_SECONDS": 1.0}
    forget_configuration()
    inbox, results = f"in-{uuid.uuid4().hex[:10]}", f"out-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=inbox)
    s3_server.client().create_bucket(Bucket=results)
    url = f"/api/flows/{flow.id}/triggers"

    status, body = post(api_client, url, s3_body("no-such-inbox", results))
    assert status == 400
    assert body["errors"] == [
        {"node": None, "message": "source: the bucket 'no-such-inbox' of S3 connection 'store' does not exist"}
    ]
    status, body = post(api_client, url, s3_body(inbox, "no-such-results"))
    assert status == 400
    assert body["errors"][0]["message"] == (
        "destination: the bucket 'no-such-results' of S3 connection 'store' does not exist"
    )
    status, body = post(api_client, url, s3_body(inbox, results, connection="wrong"))
    assert status == 400
    assert body["errors"][0]["message"].startswith(
        f"source: the store denies access to the bucket '{inbox}' of S3 connection 'wrong'"
    )
    assert not Trigger.objects.exists()

    status, unreachable = post(api_client, url, s3_body(inbox, results, connection="nobody"))
    assert status == 201, unreachable  # the store may be back soon: the trigger shows the error meanwhile
    status, trigger = post(api_client, url, s3_body(inbox, results))
    assert status == 201, trigger
    path = f"/api/triggers/{trigger['id']}"
    status, body = patch(api_client, path, {"source": {"connection": "store", "bucket": "no-such-inbox"}})
    assert status == 400 and "'no-such-inbox' of S3 connection 'store' does not exist" in body["errors"][0]["message"]
    status, body = patch(api_client, path, {"destination": {"connection": "store", "bucket": "no-such-results"}})
    assert status == 400 and body["errors"][0]["message"].startswith("destination: the bucket 'no-such-results'")
    s3_server.remove_bucket(inbox)  # a source gone since does not stop its destination from moving
    status, moved = patch(api_client, path, {"destination": {"connection": "store", "bucket": results, "prefix": "x"}})
    assert status == 200 and moved["destination"]["prefix"] == "x/"
