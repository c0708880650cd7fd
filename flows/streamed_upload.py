"""The image of a `/run` request, taken out of its body piece by piece as the client sends it.

The body is either `multipart/form-data` with the image in the field `image` (other fields are skipped),
or the image itself with an image `Content-Type` (`image/jpeg`, `image/png`, ...). `MultipartImage`
parses multipart as a stream: it never holds more than a piece and a boundary's length, and hands on
the image's bytes as they come. `receive_image` pumps a request's body stream through it into a
`runtime.upload.UploadStream`, which the run decodes meanwhile; a body that ends early, is malformed,
has no image field or grows past the upload limit breaks the stream with a reason the run fails with.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

from django.core.exceptions import RequestAborted
from django.utils.http import parse_header_parameters

from runtime.api import UploadStream

FIELD = "image"
MAX_FIELD = 1024 * 1024  # bytes of a text field kept (a draft graph); larger ones are refused
MAX_PART_HEADERS = 16 * 1024  # bytes of one part's headers
MAX_PREAMBLE = 64 * 1024  # bytes before the first boundary (clients send none)
RAW_TYPES = ("image/",)
PADDING = re.compile(rb"[ \t]*")
SEVERAL_IMAGES = (
    f"more than one '{FIELD}' file: send one image per run (a batch, POST /api/flows/{{id}}/batches, takes many)"
)


class MalformedUpload(ValueError):
    """The body is not a multipart body with an image, or not an image body."""

    status = 400


class UploadTooLarge(MalformedUpload):
    status = 413


@dataclass(slots=True)
class UploadFacts:
    """What the request says of its image before its bytes: its file name and declared type."""

    filename: str = ""
    content_type: str = ""


def clean_filename(name: str) -> str:
    """Reduce a client's file name to a base name without control characters, as Django's multipart parser does.

    `../x.jpg` and `C:\\x.jpg` give `x.jpg`; a NUL (which Postgres text refuses) or a line break is dropped;
    a name that is empty, `.` or `..` gives "".
    """
    base = html.unescape(name).rsplit("/")[-1].rsplit("\\")[-1]
    printable = "".join(char for char in base if char.isprintable())
    return "" if printable in {"", ".", ".."} else printable


class MultipartImage:
    """Parse a multipart/form-data body fed in pieces; `feed` returns the bytes of the `image` field in them.

    Text fields (no file name) that come before the image are kept in `fields`, by name, first value:
    they are there once its first bytes are out, which is when a streamed run starts. Those after it
    are only named in `late_fields`. Only the first `image` file is read; `images` counts them all.
    A file part with an empty file name (a form's empty file input) is skipped, as Django's parser skips it.
    """

    def __init__(self, boundary: str, field: str = FIELD) -> None:
        if not boundary or len(boundary) > 200:
            raise MalformedUpload("the multipart body has no valid boundary")
        self.field = field
        self.facts = UploadFacts()
        self.found = False  # the image field's headers were seen
        self.image_complete = False  # ... and its last byte
        self.images = 0  # `image` file parts seen: more than one is refused (SEVERAL_IMAGES)
        self.fields: dict[str, str] = {}
        self.late_fields: list[str] = []  # text fields that came after the image: too late to count
        self._field: str | None = None  # the text field being read, if any
        self._field_value = b""
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # Not consumed yet: `_buffer[_at:]`. States move `_at` on instead of slicing, so a piece is not
        # copied as it is parsed; the image's bytes come out as views of the piece they arrived in.
        self._buffer = b""
        self._at = 0
        self._state = "opening"
        self._in_image = False
        self._seen = 0

    @property
    def several_images(self) -> bool:
        """Tell whether more than one `image` file has been seen: the run is refused (SEVERAL_IMAGES)."""
        return self.images > 1

    @property
    def finished(self) -> bool:
        """Tell whether the closing boundary has been read."""
        return self._state == "end"

    def feed(self, data: bytes) -> list[bytes | memoryview]:
        """Take the next piece of the body; return the pieces of the image's bytes it completes.

        The image's bytes come out as views of `data` (or bytes), not copies: a photo's megabytes are
        not copied on the event loop while the run waits for them.
        """
        if self._state == "end":
            return []
        self._seen += len(data)
        found: list[bytes | memoryview] = []
        if self._state == "content" and len(data) >= len(self._delimiter):
            rest = self._content_in_place(data, found)
            if rest is None:
                return found
            data = rest
        left = len(self._buffer) - self._at
        self._buffer = data if not left else self._buffer[self._at :] + data
        self._at = 0
        while True:
            step = getattr(self, f"_{self._state}")()
            if step is None:
                return found
            if step:
                found.append(step)

    def close(self) -> None:
        """Note the end of the body; raise MalformedUpload unless the body was whole and had the image."""
        if self._in_image:
            raise MalformedUpload("the upload ended before the image was complete")
        if not self.found:
            raise MalformedUpload(f"no image: send the file in the multipart field '{self.field}'")
        if self._state != "end":
            raise MalformedUpload("the multipart body ended before its closing boundary")

    # Each state consumes what it can of `_buffer[_at:]`: it returns image bytes (maybe b"") to go on,
    # None to wait for more.

    def _left(self) -> int:
        return len(self._buffer) - self._at

    def _opening(self) -> bytes | None:
        """The body's first line is the boundary with no line break before it (clients send no preamble)."""
        opening = self._delimiter[2:]
        if self._buffer.startswith(opening, self._at):
            self._at += len(opening)
            self._state = "after_delimiter"
        elif self._left() < len(opening) and opening.startswith(self._buffer[self._at :]):
            return None
        else:
            self._state = "preamble"
        return b""

    def _preamble(self) -> bytes | None:
        at = self._buffer.find(self._delimiter, self._at)
        if at < 0:
            if self._seen > MAX_PREAMBLE:
                raise MalformedUpload("the body does not start with its multipart boundary")
            self._at = max(self._at, len(self._buffer) - len(self._delimiter))
            return None
        self._at = at + len(self._delimiter)
        self._state = "after_delimiter"
        return b""

    def _after_delimiter(self) -> bytes | None:
        start = PADDING.match(self._buffer, self._at).end()  # transport padding may follow a boundary
        if len(self._buffer) - start < 2:
            return None
        if self._buffer.startswith(b"--", start):
            self._state, self._buffer, self._at = "end", b"", 0
            return b""
        if not self._buffer.startswith(b"\r\n", start):
            raise MalformedUpload("a multipart boundary is not followed by a line break")
        self._at = start + 2
        self._state = "headers"
        return b""

    def _headers(self) -> bytes | None:
        end = self._buffer.find(b"\r\n\r\n", self._at)
        if end < 0:
            if self._left() > MAX_PART_HEADERS:
                raise MalformedUpload("a multipart part's headers are too long")
            return None
        lines = self._buffer[self._at : end].decode("utf-8", "replace").split("\r\n")
        self._at = end + 4
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise MalformedUpload("a multipart part has a malformed header line")
            headers[name.strip().lower()] = value.strip()
        disposition, params = parse_header_parameters(headers.get("content-disposition", ""))
        name = params.get("name") if disposition == "form-data" else None
        filename = clean_filename(params["filename"]) if "filename" in params else None
        is_image = name == self.field and filename != ""  # Django's parser skips `filename=""` too
        if is_image:
            self.images += 1
        self._in_image = is_image and not self.found
        if self._in_image:
            self.found = True
            self.facts = UploadFacts(filename or "", headers.get("content-type", ""))
        elif name is not None and "filename" not in params and self.found:
            self.late_fields.append(name)
        elif name is not None and "filename" not in params and name not in self.fields:
            self._field, self._field_value = name, b""
        self._state = "content"
        return b""

    def _content(self) -> bytes | memoryview | None:
        at = self._buffer.find(self._delimiter, self._at)
        if at < 0:
            keep = len(self._delimiter) - 1  # a delimiter may begin in these last bytes
            if self._left() <= keep:
                return None
            part = memoryview(self._buffer)[self._at : len(self._buffer) - keep]
            self._at = len(self._buffer) - keep
            return self._take(part)
        part = memoryview(self._buffer)[self._at : at]
        self._at = at + len(self._delimiter)
        return self._part_ends(part)

    def _content_in_place(self, data: bytes, found: list[bytes | memoryview]) -> bytes | None:
        """`_content` for a piece at least a delimiter long, without joining it to what is left.

        Return what follows the part's closing delimiter for the other states, or None when the
        piece is all content. A delimiter that begins in what is left goes the joined way (rare).
        """
        carried, delimiter = self._buffer[self._at :], self._delimiter
        keep = len(delimiter) - 1  # at most this much is left in `content`
        if carried and (carried + data[:keep]).find(delimiter) >= 0:
            return data
        self._buffer, self._at = b"", 0
        if part := self._take(carried):
            found.append(part)
        at = data.find(delimiter)
        if at < 0:
            if part := self._take(memoryview(data)[: len(data) - keep]):
                found.append(part)
            self._buffer, self._at = data, len(data) - keep
            return None
        if part := self._part_ends(memoryview(data)[:at]):
            found.append(part)
        return data[at + len(delimiter) :]

    def _part_ends(self, last: memoryview) -> bytes | memoryview:
        """Take a part's last bytes (before its closing delimiter); return the image's among them."""
        in_image = self._in_image
        part = self._take(last)
        if in_image:
            self.image_complete, self._in_image = True, False
        elif self._field is not None:
            self.fields[self._field] = self._field_value.decode("utf-8", "replace")
            self._field = None
        self._state = "after_delimiter"
        return part

    def _take(self, part: bytes | memoryview) -> bytes | memoryview:
        """Return the image's bytes among `part`, keeping a text field's."""
        if self._in_image:
            return part
        if self._field is not None:
            self._field_value += part
            if len(self._field_value) > MAX_FIELD:
                raise MalformedUpload(f"the multipart field '{self._field}' is over {MAX_FIELD} bytes")
        return b""

    def _end(self) -> bytes | None:
        self._buffer, self._at = b"", 0
        return None


def image_source(content_type: str) -> MultipartImage | None:
    """Return the parser for a body of `content_type`: a MultipartImage, or None for a raw image body.

    Raise MalformedUpload for any other type.
    """
    kind, params = parse_header_parameters(content_type or "")
    if kind == "multipart/form-data":
        return MultipartImage(params.get("boundary", ""))
    if kind.startswith(RAW_TYPES):
        return None
    raise MalformedUpload(
        f"send the image in the multipart field '{FIELD}', or as the body with its image Content-Type "
        f"(image/jpeg, image/png, ...), not {kind or 'no Content-Type'}"
    )


async def receive_image(
    body: AsyncIterable[bytes],
    parser: MultipartImage | None,
    upload: UploadStream,
    limit: int,
    refusal: Callable[[], tuple[int, str] | None] = lambda: None,
) -> None:
    """Pump a request body into `upload` as it arrives; break it with the reason when the body is not whole.

    Never raises: every failure goes to `upload.fail`, so the run reading it fails with that reason.
    A body the server itself cut off (past its limit, stalled: `refusal` says) fails with that reason.
    """
    try:
        async for piece in body:
            for part in parser.feed(piece) if parser is not None else (piece,):
                if upload.size + len(part) > limit:
                    raise UploadTooLarge(f"the upload is larger than the limit of {limit} bytes")
                upload.feed(part)
            if parser is not None and parser.image_complete:
                upload.end()  # the run need not wait for the rest of the body
        if parser is not None:
            parser.close()
        upload.end()
    except MalformedUpload as malformed:
        upload.fail(str(malformed), status=malformed.status)
    except RequestAborted:
        refused = refusal()
        if refused is not None:
            upload.fail(refused[1], status=refused[0])
        else:
            upload.fail("the client went away before the upload was complete")
    except Exception as error:  # the body stream's own failures (a timeout, a reset) end the run, not the server
        upload.fail(f"the upload could not be read: {error}")
