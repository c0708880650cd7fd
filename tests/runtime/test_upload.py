"""An upload read while it arrives: reads wait for bytes, a seek to the end for all of them, failures reach readers."""

import os
import threading
import time

import pytest

from runtime.upload import UploadBroken, UploadStream


def feed_later(upload: UploadStream, *pieces: bytes, end: bool = True, fail: str | None = None, delay: float = 0.05):
    def run():
        for piece in pieces:
            time.sleep(delay)
            upload.feed(piece)
        time.sleep(delay)
        if fail:
            upload.fail(fail)
        elif end:
            upload.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_read_returns_what_has_arrived_and_waits_only_when_nothing_has():
    upload = UploadStream()
    upload.feed(b"abc")
    assert upload.read(10) == b"abc"  # never waits for more than it has once something is there
    thread = feed_later(upload, b"def")
    started = time.monotonic()
    assert upload.read(10) == b"def"
    assert time.monotonic() - started >= 0.04
    assert upload.read(10) == b""  # the end
    thread.join()


def test_seeks_and_tell_work_on_what_has_arrived():
    upload = UploadStream()
    upload.feed(b"0123456789")
    upload.seek(4)
    assert upload.read(3) == b"456" and upload.tell() == 7
    upload.seek(-2, os.SEEK_CUR)
    assert upload.read(2) == b"56"
    thread = feed_later(upload, b"abc")
    assert upload.seek(0, os.SEEK_END) == 13  # waited for the whole upload
    thread.join()
    assert upload.getvalue() == b"0123456789abc"


def test_a_failure_reaches_waiting_and_later_readers():
    upload = UploadStream()
    upload.feed(b"abc")
    upload.read(3)
    thread = feed_later(upload, fail="the client went away")
    with pytest.raises(UploadBroken, match="the client went away"):
        upload.read(3)
    with pytest.raises(UploadBroken, match="the client went away"):
        upload.seek(0, os.SEEK_END)
    thread.join()


def test_a_stalled_upload_times_out():
    upload = UploadStream(timeout=0.05)
    with pytest.raises(UploadBroken, match="stalled"):
        upload.read(1)


def test_nothing_is_fed_after_the_end_and_the_value_needs_the_end():
    upload = UploadStream()
    upload.feed(b"x")
    with pytest.raises(ValueError, match="not complete"):
        upload.getvalue()
    upload.end()
    with pytest.raises(ValueError, match="has ended"):
        upload.feed(b"y")
    upload.fail("too late")  # a failure after the end changes nothing
    assert upload.read() == b"x"


def test_a_complete_upload_is_viewed_without_a_copy_and_the_view_cannot_change_it():
    stream = UploadStream()
    stream.feed(b"abc")
    with pytest.raises(ValueError, match="not complete"):
        stream.view()
    stream.feed(b"def")
    stream.end()

    view = stream.view()

    assert bytes(view) == b"abcdef" == stream.getvalue()
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0
    stream.seek(2)
    assert stream.read(3) == b"cde"  # readers go on while the view is held


def test_the_whole_upload_is_waited_for_and_viewed_or_its_failure_raised():
    upload = UploadStream()
    upload.feed(b"abc")
    thread = feed_later(upload, b"def", b"ghi")
    whole = upload.whole()  # waits for the end, copies nothing
    thread.join()
    assert bytes(whole) == b"abcdefghi" and whole.readonly

    broken = UploadStream()
    thread = feed_later(broken, b"abc", fail="the client went away")
    with pytest.raises(UploadBroken, match="the client went away"):
        broken.whole()
    thread.join()


def test_large_reads_come_back_whole_in_order():
    upload = UploadStream()
    data = os.urandom(3 << 20)
    for start in range(0, len(data), 65_536):
        upload.feed(data[start : start + 65_536])
    upload.end()
    buffer = bytearray(1 << 20)
    read = bytearray()
    while count := upload.readinto(buffer):
        read += buffer[:count]
    assert read == data


def test_views_of_bytes_are_kept_as_they_are_and_writable_buffers_copied():
    upload = UploadStream()
    source = b"0123456789"
    writable = bytearray(b"abcdef")
    upload.feed(memoryview(source)[2:6])
    upload.feed(writable)
    writable[:] = b"XXXXXX"  # the caller reuses its buffer: what arrived must not change
    upload.end()
    assert upload.getvalue() == b"2345abcdef"


def test_the_pieces_are_kept_as_they_arrived_and_handed_on_unjoined():
    """Joining a 7.7 MB upload into one buffer cost ~5 ms of CPU: readers copy from the pieces, writers take them."""
    upload = UploadStream()
    data = os.urandom(1 << 20)
    for start in range(0, len(data), 100_000):
        upload.feed(memoryview(data)[start : start + 100_000])
    upload.seek(99_990)
    assert upload.read(30) == data[99_990:100_020]  # a read across two pieces
    upload.end()
    pieces = upload.whole_pieces()
    assert len(pieces) == 11 and all(piece.obj is data and piece.readonly for piece in pieces)
    assert b"".join(pieces) == data
    upload.seek(0)
    assert upload.read() == data  # the reader's place is its own


def test_a_reader_of_its_own_leaves_the_uploads_place_alone():
    upload = UploadStream()
    upload.feed(b"0123")
    upload.feed(b"4567")
    upload.read(3)
    with pytest.raises(ValueError, match="not complete"):
        upload.reader()
    upload.end()
    reader = upload.reader()
    assert reader.seek(-3, os.SEEK_END) == 5 and reader.read() == b"567"
    reader.seek(2)
    assert reader.read(4) == b"2345"
    assert upload.tell() == 3 and upload.read() == b"34567"
