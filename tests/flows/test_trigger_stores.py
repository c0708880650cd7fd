"""Folder roots and S3 connections: locations that cannot leave their root, listing, reading, writing, failures."""

from __future__ import annotations

import errno
import io
import json
import os
import time
import uuid

import pytest

from flows import trigger_stores as stores
from flows.trigger_stores import LocationError, NameTaken, ObjectGone, StoreError, normalise_location, open_store
from tests.support.services import free_port


def folder(path: str = "", root: str = "photos") -> stores.FolderStore:
    return open_store("folder", normalise_location("folder", {"root": root, "path": path}))


def test_configured_names_never_show_paths_or_keys(trigger_places, s3_server):
    names = stores.configured_names()
    assert names == {"folder": ["photos", "spare"], "s3": ["store"]}
    assert s3_server.secret_key not in json.dumps(names) and str(trigger_places) not in json.dumps(names)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ({"root": "nowhere", "path": "in"}, "unknown folder root 'nowhere'; the roots are: photos, spare"),
        ({"root": "photos", "path": "../etc"}, "may not contain '..'"),
        ({"root": "photos", "path": "in/../../etc"}, "may not contain '..'"),
        ({"root": "photos", "path": "/etc"}, "must be relative to its root"),
        ({"root": "photos", "path": "in\x00/etc"}, "holds a NUL character"),
        ({"root": "photos", "path": 5}, "must be a string"),
        ("photos/in", "a location is an object"),
    ],
)
def test_folder_locations_that_leave_their_root_are_refused(trigger_places, location, reason):
    with pytest.raises(LocationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        normalise_location("folder", location)


def test_a_symbolic_link_on_the_way_is_refused(trigger_places, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (trigger_places / "inbox").symlink_to(outside)
    with pytest.raises(LocationError, match="'inbox' is a symbolic link"):
        normalise_location("folder", {"root": "photos", "path": "inbox/sub"})


def test_a_folder_location_is_stored_normalised(trigger_places):
    assert normalise_location("folder", {"root": "photos", "path": "a//b/./c/"}) == {"root": "photos", "path": "a/b/c"}
    assert normalise_location("folder", {"root": "photos"}) == {"root": "photos", "path": ""}


def test_s3_locations(trigger_places):
    assert normalise_location("s3", {"connection": "store", "bucket": "in-box", "prefix": "/raw//2024"}) == {
        "connection": "store",
        "bucket": "in-box",
        "prefix": "raw/2024/",
    }
    with pytest.raises(LocationError, match="unknown S3 connection 'aws'; the connections are: store"):
        normalise_location("s3", {"connection": "aws", "bucket": "in-box"})
    with pytest.raises(LocationError, match="is not a bucket name"):
        normalise_location("s3", {"connection": "store", "bucket": "Bad_Bucket"})


def test_overlap_of_source_and_destination(trigger_places):
    source = {"root": "photos", "path": "in"}
    assert stores.overlap("folder", source, {"root": "photos", "path": "in/out"})
    assert stores.overlap("folder", source, {"root": "photos", "path": "in"})
    assert not stores.overlap("folder", source, {"root": "photos", "path": "inbox"})
    assert not stores.overlap("folder", source, {"root": "spare", "path": "in"})
    bucket = {"connection": "store", "bucket": "b", "prefix": ""}
    assert stores.overlap("s3", bucket, {**bucket, "prefix": "out/"})
    assert not stores.overlap("s3", {**bucket, "prefix": "in/"}, {**bucket, "prefix": "out/"})


def test_a_folder_lists_files_in_sub_folders_but_no_links_hidden_or_unsettled_files(trigger_places, settings, tmp_path):
    inbox = trigger_places / "inbox"
    (inbox / "trip" / "day1").mkdir(parents=True)
    (inbox / "a.jpg").write_bytes(b"1")
    (inbox / "trip" / "day1" / "b.jpg").write_bytes(b"22")
    (inbox / ".partial.jpg").write_bytes(b"3")
    (tmp_path / "secret.txt").write_text("outside")
    (inbox / "link.jpg").symlink_to(tmp_path / "secret.txt")
    (inbox / "trip" / "escape").symlink_to(tmp_path, target_is_directory=True)
    listed = {item.key: item for item in folder("inbox").objects()}
    assert sorted(listed) == ["a.jpg", "trip/day1/b.jpg"]
    info = os.stat(inbox / "trip" / "day1" / "b.jpg")
    assert listed["trip/day1/b.jpg"].version == f"2:{info.st_mtime_ns}"
    assert listed["trip/day1/b.jpg"].size == 2

    settings.TILEFLOW = {**settings.TILEFLOW, "TRIGGER_SETTLE_SECONDS": 30.0}
    assert list(folder("inbox").objects()) == []  # files still being written are left for later


def test_reading_a_file_that_changed_since_it_was_listed(trigger_places):
    (trigger_places / "a.jpg").write_bytes(b"first")
    store = folder()
    [item] = store.objects()
    target = io.BytesIO()
    store.fetch(item, target)
    assert target.getvalue() == b"first"
    time.sleep(0.01)
    (trigger_places / "a.jpg").write_bytes(b"second!")
    with pytest.raises(ObjectGone, match="changed while it was read"):
        store.fetch(item, io.BytesIO())
    (trigger_places / "a.jpg").unlink()
    with pytest.raises(ObjectGone, match="disappeared"):
        store.fetch(item, io.BytesIO())


def test_writing_creates_sub_folders_and_leaves_no_partial_file(trigger_places, tmp_path):
    output = tmp_path / "result.png"
    output.write_bytes(b"png bytes")
    written = folder("out").put("trip/day1/b.png", output, "image/png")
    assert written == "out/trip/day1/b.png"
    assert (trigger_places / "out" / "trip" / "day1" / "b.png").read_bytes() == b"png bytes"
    assert os.listdir(trigger_places / "out" / "trip" / "day1") == ["b.png"]
    # Readable as any file this process creates (umask applied), not private like a temporary file.
    mode = (trigger_places / "out" / "trip" / "day1" / "b.png").stat().st_mode & 0o777
    assert mode == output.stat().st_mode & 0o777 == stores.FILE_MODE  # `output` was made by write_bytes


def test_writing_never_replaces_a_file_it_was_not_told_it_may(trigger_places, tmp_path, monkeypatch):
    output = tmp_path / "result.png"
    output.write_bytes(b"png bytes")
    (trigger_places / "out").mkdir()
    notes = trigger_places / "out" / "keep.png"
    notes.write_text("MY PRECIOUS NOTES")
    store = folder("out")
    with pytest.raises(NameTaken):
        store.put("keep.png", output, "image/png")
    with monkeypatch.context() as racing:  # another writer creates it between the look and the write
        racing.setattr(os.path, "lexists", lambda path: False)
        with pytest.raises(NameTaken):
            store.put("keep.png", output, "image/png")
    assert notes.read_text() == "MY PRECIOUS NOTES"
    assert os.listdir(trigger_places / "out") == ["keep.png"]  # no partial file left either
    assert store.put("keep.png", output, "image/png", replace=True) == "out/keep.png"
    assert notes.read_bytes() == b"png bytes"


def test_without_hard_links_a_name_is_still_taken_exclusively(trigger_places, tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)  # as some network and FUSE file systems answer
    output = tmp_path / "result.png"
    output.write_bytes(b"png bytes")
    (trigger_places / "out").mkdir()
    (trigger_places / "out" / "keep.png").write_text("MY PRECIOUS NOTES")
    store = folder("out")
    monkeypatch.setattr(os.path, "lexists", lambda path: False)
    with pytest.raises(NameTaken):
        store.put("keep.png", output, "image/png")
    assert store.put("new.png", output, "image/png") == "out/new.png"
    assert (trigger_places / "out" / "keep.png").read_text() == "MY PRECIOUS NOTES"
    assert (trigger_places / "out" / "new.png").read_bytes() == b"png bytes"
    assert (trigger_places / "out" / "new.png").stat().st_mode & 0o777 == stores.FILE_MODE
    assert sorted(os.listdir(trigger_places / "out")) == ["keep.png", "new.png"]


def test_writing_refuses_a_folder_swapped_for_a_link(trigger_places, tmp_path):
    store = folder("out")
    outside = tmp_path / "outside"
    outside.mkdir()
    (trigger_places / "out").symlink_to(outside)
    output = tmp_path / "result.png"
    output.write_bytes(b"x")
    with pytest.raises(StoreError, match="symbolic link"):
        store.put("b.png", output, "image/png")
    with pytest.raises(StoreError, match="symbolic link"):
        list(store.objects())
    assert list(outside.iterdir()) == []


def test_a_vanished_folder_is_a_store_error(trigger_places):
    (trigger_places / "inbox").mkdir()
    store = folder("inbox")
    (trigger_places / "inbox").rmdir()
    with pytest.raises(StoreError, match="does not exist"):
        list(store.objects())


def bucket(s3_server) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def s3(name: str, prefix: str = "", connection: str = "store") -> stores.S3Store:
    return open_store("s3", normalise_location("s3", {"connection": connection, "bucket": name, "prefix": prefix}))


def test_a_bucket_prefix_lists_reads_and_writes(trigger_places, s3_server, tmp_path):
    name = bucket(s3_server)
    client = s3_server.client()
    client.put_object(Bucket=name, Key="in/a.jpg", Body=b"aaa")
    client.put_object(Bucket=name, Key="in/trip/b.jpg", Body=b"bb")
    client.put_object(Bucket=name, Key="in/trip/", Body=b"")  # a "folder" some consoles create
    client.put_object(Bucket=name, Key="elsewhere.jpg", Body=b"c")
    store = s3(name, "in")
    listed = {item.key: item for item in store.objects()}
    assert sorted(listed) == ["a.jpg", "trip/b.jpg"]
    assert listed["a.jpg"].version == client.head_object(Bucket=name, Key="in/a.jpg")["ETag"].strip('"')
    target = io.BytesIO()
    store.fetch(listed["trip/b.jpg"], target)
    assert target.getvalue() == b"bb"

    client.put_object(Bucket=name, Key="in/a.jpg", Body=b"changed")
    with pytest.raises(ObjectGone):
        store.fetch(listed["a.jpg"], io.BytesIO())

    output = tmp_path / "out.png"
    output.write_bytes(b"png")
    assert s3(name, "out").put("trip/b.png", output, "image/png") == "out/trip/b.png"
    stored = client.get_object(Bucket=name, Key="out/trip/b.png")
    assert stored["Body"].read() == b"png" and stored["ContentType"] == "image/png"


def test_an_object_already_in_the_bucket_is_never_replaced(trigger_places, s3_server, tmp_path, monkeypatch):
    name = bucket(s3_server)
    client = s3_server.client()
    client.put_object(Bucket=name, Key="out/keep.png", Body=b"MY PRECIOUS NOTES")
    output = tmp_path / "result.png"
    output.write_bytes(b"png bytes")
    store = s3(name, "out")
    with pytest.raises(NameTaken):
        store.put("keep.png", output, "image/png")
    with monkeypatch.context() as racing:  # another writer puts it between the look and the write
        racing.setattr(stores.S3Store, "_exists", lambda self, key: False)
        with pytest.raises(NameTaken):  # the store refuses the conditional put (If-None-Match: *)
            store.put("keep.png", output, "image/png")
    assert client.get_object(Bucket=name, Key="out/keep.png")["Body"].read() == b"MY PRECIOUS NOTES"
    assert store.put("keep.png", output, "image/png", replace=True) == "out/keep.png"
    assert client.get_object(Bucket=name, Key="out/keep.png")["Body"].read() == b"png bytes"


def configure_good_wrong_and_unreachable(settings, s3_server) -> None:
    """Name three S3 connections: `store` (right), `wrong` (a bad secret), `nobody` (no server on its port)."""
    connections = {
        "store": s3_server.connection(),
        "wrong": s3_server.connection(secret_key="not-the-secret"),
        "nobody": s3_server.connection(endpoint_url=f"http://127.0.0.1:{free_port()}"),
    }
    settings.TILEFLOW = {**settings.TILEFLOW, "S3_CONNECTIONS": json.dumps(connections)}
    stores.forget_configuration()


def test_an_s3_location_whose_bucket_is_missing_or_denied_is_refused(trigger_places, settings, s3_server):
    name = bucket(s3_server)
    configure_good_wrong_and_unreachable(settings, s3_server)
    stores.check_bucket({"connection": "store", "bucket": name}, reading=True)
    with pytest.raises(LocationError, match="the bucket 'no-such-bucket' of S3 connection 'store' does not exist"):
        stores.check_bucket({"connection": "store", "bucket": "no-such-bucket"}, reading=False)
    with pytest.raises(LocationError, match=f"the store denies access to the bucket '{name}' of S3 connection 'wrong'"):
        stores.check_bucket({"connection": "wrong", "bucket": name}, reading=True)
    stores.check_bucket({"connection": "wrong", "bucket": name}, reading=False)  # a key may write and not list
    stores.check_bucket({"connection": "nobody", "bucket": name}, reading=True)  # no answer: nothing definite


def test_a_wrong_key_a_vanished_bucket_and_an_unreachable_store_say_so(trigger_places, settings, s3_server, tmp_path):
    name = bucket(s3_server)
    configure_good_wrong_and_unreachable(settings, s3_server)
    output = tmp_path / "b.png"
    output.write_bytes(b"png")
    with pytest.raises(StoreError, match="refused the connection's credentials \\(SignatureDoesNotMatch\\)"):
        list(s3(name, connection="wrong").objects())
    with pytest.raises(StoreError, match="refused the connection's credentials \\(SignatureDoesNotMatch\\)"):
        s3(name, "out", connection="wrong").put("b.png", output, "image/png")
    with pytest.raises(StoreError, match="cannot be reached"):
        list(s3(name, connection="nobody").objects())
    s3_server.remove_bucket(name)
    with pytest.raises(StoreError, match="the bucket does not exist"):
        list(s3(name).objects())
    with pytest.raises(StoreError, match="the bucket does not exist") as refused:  # the destination's bucket
        s3(name, "out").put("b.png", output, "image/png")
    assert str(output) not in str(refused.value)  # upload_file's own message names the server's file


def test_a_store_that_does_not_answer_is_given_up_after_the_timeout(trigger_places, settings, s3_server):
    import socket

    with socket.socket() as silent:  # accepts connections, never answers a byte
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        slow = s3_server.connection(endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        settings.TILEFLOW = {
            **settings.TILEFLOW,
            "S3_CONNECTIONS": json.dumps({"store": s3_server.connection(), "slow": slow}),
            "S3_TIMEOUT_SECONDS": 0.5,
        }
        stores.forget_configuration()
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot be reached: Read timeout"):
            list(s3("any-bucket", connection="slow").objects())
        assert time.monotonic() - started < 10  # two attempts of half a second, and their pause


def test_a_connection_may_use_boto3_s_spellings_of_its_fields(trigger_places, settings, s3_server):
    name = bucket(s3_server)
    s3_server.client().put_object(Bucket=name, Key="in/a.jpg", Body=b"aaa")
    aliased = {
        "endpoint": s3_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": s3_server.access_key,
        "aws_secret_access_key": s3_server.secret_key,
    }
    settings.TILEFLOW = {**settings.TILEFLOW, "S3_CONNECTIONS": json.dumps({"store": aliased})}
    stores.forget_configuration()
    assert stores.s3_connections()["store"]["endpoint_url"] == s3_server.url
    assert [item.key for item in s3(name, "in").objects()] == ["a.jpg"]


@pytest.mark.parametrize(
    ("connection", "reason"),
    [
        ({"endpont_url": "http://127.0.0.1:9"}, "unknown field 'endpont_url' (known: endpoint_url, region, "),
        ({"endpoint": "http://a", "endpoint_url": "http://b"}, "gives 'endpoint_url' twice"),
        ({"endpoint_url": "127.0.0.1:9000"}, "must start with http:// or https://"),
        ({"endpoint_url": "http://a", "access_key": "id"}, "needs both access_key and secret_key"),
        ({"region": 5}, "'region' must be a string"),
    ],
)
def test_a_connection_with_a_field_it_cannot_use_stops_the_server_from_starting(settings, connection, reason):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.TILEFLOW = {**settings.TILEFLOW, "S3_CONNECTIONS": json.dumps({"obs": connection}), "FOLDER_ROOTS": ""}
    try:
        assert any(reason in problem for problem in stores.configuration_errors()), stores.configuration_errors()
        with pytest.raises(SystemCheckError, match=r"tileflow\.E001"):
            call_command("check")  # what migrate, runworker and runtriggers run first
    finally:
        stores.forget_configuration()


def test_a_folder_root_that_is_not_absolute_stops_the_server_from_starting(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.TILEFLOW = {**settings.TILEFLOW, "FOLDER_ROOTS": "photos=srv/photos", "S3_CONNECTIONS": ""}
    try:
        with pytest.raises(SystemCheckError, match="is not name=/absolute/path"):
            call_command("check")
    finally:
        stores.forget_configuration()
