"""The image of a /run body, parsed as it arrives: multipart in any piece sizes, raw bodies, broken bodies."""

import random

import pytest
from django.core.exceptions import RequestAborted

from flows.streamed_upload import MalformedUpload, MultipartImage, image_source, receive_image
from runtime.api import UploadBroken, UploadStream

BOUNDARY = "----tileflowboundary7MA4YWxk"


def multipart(*parts: tuple[str, bytes, str | None], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    body = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: image/jpeg\r\n"
        body += b"\r\n" + data + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def pieces(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    cut, out = 0, []
    while cut < len(data):
        size = rng.randint(1, largest)
        out.append(data[cut : cut + size])
        cut += size
    return out


def parse(body: bytes, rng: random.Random, largest: int) -> tuple[bytes, MultipartImage]:
    parser = MultipartImage(BOUNDARY)
    image = b"".join(part for piece in pieces(body, rng, largest) for part in parser.feed(piece))
    parser.close()
    return image, parser


def test_the_image_field_comes_out_whole_whatever_the_piece_sizes():
    rng = random.Random(4)
    # Bytes that look like the start of a boundary, and CR LF dashes, inside the image itself.
    image = rng.randbytes(5000) + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n-" + rng.randbytes(3000)
    body = multipart(("note", b"hello", None), ("image", image, "photo.jpg"), ("after", b"x" * 100, None))
    for largest in (1, 2, 7, 64, 1000, len(body)):
        got, parser = parse(body, rng, largest)
        assert got == image, largest
        assert parser.facts.filename == "photo.jpg" and parser.facts.content_type == "image/jpeg"
        assert parser.finished


def test_pieces_are_handed_on_before_the_image_ends():
    parser = MultipartImage(BOUNDARY)
    body = multipart(("image", b"A" * 10000, "a.jpg"))
    first = parser.feed(body[:6000])
    assert sum(map(len, first)) > 5000  # all but a delimiter's length is out at once
    assert not parser.image_complete


def test_a_large_piece_is_handed_on_as_a_view_of_itself_not_a_copy():
    parser = MultipartImage(BOUNDARY)
    body = multipart(("image", bytes(range(256)) * 4000, "a.jpg"))
    head = body.index(b"\r\n\r\n") + 4 + 100
    parser.feed(body[:head])
    piece = body[head:]
    parts = parser.feed(piece)
    assert parser.image_complete and parser.finished
    assert [type(part) for part in parts] == [bytes, memoryview]  # the bytes held back, then the piece's own
    assert parts[1].obj is piece and len(parts[1]) > 1_000_000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (multipart(("other", b"data", None)), "no image: send the file in the multipart field 'image'"),
        (multipart(("image", b"data", "a.jpg"))[:-30], "ended before the image was complete"),
        (multipart(("image", b"data", "a.jpg"), close=False) + f"--{BOUNDARY}".encode(), "closing boundary"),
        (b"x" * 70000, "does not start with its multipart boundary"),
        (f"--{BOUNDARY}\r\nno colon here\r\n\r\ndata".encode(), "malformed header"),
        (f"--{BOUNDARY}XX".encode(), "not followed by a line break"),
    ],
)
def test_broken_bodies_are_refused_with_a_reason(body, message):
    parser = MultipartImage(BOUNDARY)
    with pytest.raises(MalformedUpload, match=message):
        parser.feed(body)
        parser.close()


def test_only_the_first_image_field_counts():
    got, parser = parse(multipart(("image", b"first", "a.jpg"), ("image", b"second", "b.jpg")), random.Random(1), 5)
    assert got == b"first"
    assert parser.images == 2 and parser.several_images  # the view refuses it (SEVERAL_IMAGES)


def test_a_file_name_is_reduced_to_a_base_name_without_control_characters():
    body = b'--%s\r\nContent-Disposition: form-data; name="image"; filename="C:\\x\\p\x00\x1b.jpg"\r\n\r\nI\r\n' % (
        BOUNDARY.encode()
    )
    parser = MultipartImage(BOUNDARY)
    parser.feed(body + f"--{BOUNDARY}--\r\n".encode())
    parser.close()
    assert parser.facts.filename == "p.jpg"


def test_a_file_part_with_an_empty_name_is_no_image_as_for_django():
    body = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename=""\r\n\r\nI\r\n--{BOUNDARY}--\r\n'
    parser = MultipartImage(BOUNDARY)
    assert parser.feed(body.encode()) == []
    with pytest.raises(MalformedUpload, match="no image"):
        parser.close()


def test_content_types_choose_the_parser():
    assert isinstance(image_source(f"multipart/form-data; boundary={BOUNDARY}"), MultipartImage)
    assert image_source("image/jpeg") is None
    assert image_source("image/png") is None
    with pytest.raises(MalformedUpload, match="not application/json"):
        image_source("application/json")
    with pytest.raises(MalformedUpload, match="no valid boundary"):
        image_source("multipart/form-data")


async def body_of(*items):
    for item in items:
        if isinstance(item, BaseException):
            raise item
        yield item


async def test_a_multipart_body_fills_the_upload_and_ends_it():
    upload = UploadStream()
    body = multipart(("image", b"IMAGEDATA" * 1000, "a.jpg"))
    await receive_image(
        body_of(body[:100], body[100:5000], body[5000:]),
        image_source(f"multipart/form-data; boundary={BOUNDARY}"),
        upload,
        10**6,
    )
    assert upload.complete and upload.getvalue() == b"IMAGEDATA" * 1000


async def test_a_raw_body_is_the_image():
    upload = UploadStream()
    await receive_image(body_of(b"abc", b"def"), None, upload, 100)
    assert upload.getvalue() == b"abcdef"


@pytest.mark.parametrize(
    ("items", "limit", "reason"),
    [
        ((b"abc", RequestAborted()), 100, "the client went away before the upload was complete"),
        ((b"a" * 60, b"a" * 60), 100, "larger than the limit of 100 bytes"),
        ((b"abc", TimeoutError("the request body timed out")), 100, "could not be read: the request body timed out"),
    ],
)
async def test_a_body_that_does_not_arrive_whole_breaks_the_upload(items, limit, reason):
    upload = UploadStream()
    await receive_image(body_of(*items), None, upload, limit)
    with pytest.raises(UploadBroken, match=reason):
        upload.read(1000)


def test_text_fields_before_the_image_are_known_when_it_starts_and_those_after_it_only_named():
    body = multipart(("graph", b'{"nodes": []}', None), ("image", b"I" * 5000, "a.jpg"), ("late", b"x", None))
    parser = MultipartImage(BOUNDARY)
    first = parser.feed(body[:2000])
    assert first and parser.fields == {"graph": '{"nodes": []}'}
    parser.feed(body[2000:])
    parser.close()
    assert parser.fields == {"graph": '{"nodes": []}'} and parser.late_fields == ["late"]


def test_an_oversized_text_field_is_refused():
    with pytest.raises(MalformedUpload, match="over"):
        MultipartImage(BOUNDARY).feed(multipart(("graph", b"x" * (1024 * 1024 + 10), None)))
