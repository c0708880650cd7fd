"""A finished batch's results as one zip, streamed while it is written (never whole in memory or on disk).

Entries are named after the inputs (their folders kept) with the output format's extension, plus
`-{node}` when the flow has several outputs, and `errors.json` lists the items that did not succeed.
A writer thread builds the zip on an unseekable pipe (zipfile then writes data descriptors); the
response takes its chunks a few at a time, so a slow client slows the writer instead of filling memory.
"""

from __future__ import annotations

import asyncio
import io
import json
import posixpath
import threading
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

from flows.models import Batch, ExecutionOutput
from runtime import pagecache

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/avif": ".avif"}
CHUNK = 1024 * 1024
CHUNKS_AHEAD = 4
ERRORS_NAME = "errors.json"


@dataclass(frozen=True, slots=True)
class ZipEntry:
    name: str
    path: Path
    date_time: tuple[int, int, int, int, int, int]


def natural_names(item_name: str, outputs: list[tuple[str, str]], several: bool) -> list[str]:
    """Name an item's outputs ((node, extension) pairs) after the input: its stem, `-node`, the extension."""
    stem, _ = posixpath.splitext(item_name)
    return [f"{stem}-{node}{extension}" if several else f"{stem}{extension}" for node, extension in outputs]


def numbered(name: str, taken: Callable[[str], bool]) -> str:
    """Return `name`, or `stem-2.ext`, `stem-3.ext`, …: the first one `taken` says is free."""
    base, extension = posixpath.splitext(name)
    candidate, number = name, 1
    while taken(candidate):
        number += 1
        candidate = f"{base}-{number}{extension}"
    return candidate


def entry_names(item_name: str, outputs: list[tuple[str, str]], several: bool, taken: set[str]) -> list[str]:
    """Name one item's outputs after the input, unique among `taken` (lowercase), which they join."""
    names = []
    for name in natural_names(item_name, outputs, several):
        name = numbered(name, lambda candidate: candidate.lower() in taken or candidate == ERRORS_NAME)
        taken.add(name.lower())
        names.append(name)
    return names


def unique_names(natural: list[list[str]]) -> list[list[str]]:
    """Give every item's outputs names unique in the zip (compared in lowercase), in item order.

    The first item to want a name has it; a later one gets `-2`, `-3`, … and never a name another
    item wants as its own (`a.jpg`, `a.png` and `a-2.jpg` give `a.jpg`, `a-3.jpg` and `a-2.jpg`).
    """
    owner: dict[str, int] = {}
    for index, names in enumerate(natural):
        for name in names:
            owner.setdefault(name.lower(), index)
    taken: set[str] = set()
    unique = []
    for index, names in enumerate(natural):

        def unavailable(candidate: str, index=index) -> bool:
            key = candidate.lower()
            return key in taken or candidate == ERRORS_NAME or owner.get(key, index) != index

        chosen = [numbered(name, unavailable) for name in names]
        taken.update(name.lower() for name in chosen)
        unique.append(chosen)
    return unique


def plan_results(batch: Batch) -> tuple[list[ZipEntry], list[dict]]:
    """Return the zip's image entries and the errors.json list, in item order."""
    several = sum(1 for node in batch.graph.get("nodes", []) if node.get("type") == "output") > 1
    outputs: dict = {}
    for output in ExecutionOutput.objects.filter(execution__batch_items__batch=batch, complete=True).order_by("node"):
        outputs.setdefault(output.execution_id, []).append(output)
    kept, errors = [], []
    media = Path(settings.MEDIA_ROOT)
    for item in batch.items.all():
        produced = outputs.get(item.execution_id, []) if item.status == "succeeded" else []
        missing = [output for output in produced if not (media / output.file.name).is_file()]
        if item.status != "succeeded" or not produced or missing:
            error = item.error or _reason(item.status)
            errors.append({"name": item.name, "status": item.status, "error": error, "execution": _id(item)})
            continue
        kept.append((item, produced))
    natural = [
        natural_names(item.name, [(o.node, EXTENSIONS.get(o.content_type, "")) for o in produced], several)
        for item, produced in kept
    ]
    entries = []
    for (item, produced), names in zip(kept, unique_names(natural), strict=True):
        moment = (item.finished_at or batch.created_at).timetuple()[:6]
        for name, output in zip(names, produced, strict=True):
            entries.append(ZipEntry(name, media / output.file.name, moment))
    return entries, errors


def _reason(status: str) -> str:
    """Why an item without an error of its own has no output in the zip."""
    if status == "succeeded":
        return "its output is no longer stored"
    if status == "cancelled":
        return "the batch was cancelled before this item finished"
    return f"the item ended {status}"


def _id(item) -> str | None:
    return str(item.execution_id) if item.execution_id else None


class _Pipe(io.RawIOBase):
    """A write-only, unseekable file whose bytes go to the event loop in chunks, with back-pressure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stop: threading.Event) -> None:
        self.loop = loop
        self.queue = queue
        self.stop = stop
        self.credits = threading.Semaphore(CHUNKS_AHEAD)
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self._send()
        return len(data)

    def _send(self) -> None:
        while not self.credits.acquire(timeout=0.5):
            if self.stop.is_set():
                raise BrokenPipeError("the client went away")
        if self.stop.is_set():
            raise BrokenPipeError("the client went away")
        chunk, self.buffer = bytes(self.buffer), bytearray()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)

    def finish(self) -> None:
        if self.buffer:
            self._send()


def _write_zip(pipe: _Pipe, entries: list[ZipEntry], errors: list[dict]) -> None:
    with zipfile.ZipFile(pipe, "w", allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=entry.date_time)
            info.compress_type = zipfile.ZIP_STORED  # images are compressed already
            info.external_attr = 0o644 << 16
            size = entry.path.stat().st_size
            info.file_size = size
            with open(entry.path, "rb") as source, archive.open(info, "w", force_zip64=size > 2**31) as sink:
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
                pagecache.release(source.fileno())
        if errors:
            archive.writestr(
                zipfile.ZipInfo(ERRORS_NAME, date_time=entries[-1].date_time if entries else (1980, 1, 1, 0, 0, 0)),
                json.dumps(errors, ensure_ascii=False, indent=2),
                compress_type=zipfile.ZIP_DEFLATED,
            )
    pipe.finish()


async def stream_results(batch: Batch) -> AsyncIterator[bytes]:
    """Yield the results zip of a finished batch, chunk by chunk, as its writer thread makes it."""
    entries, errors = await sync_to_async(plan_results)(batch)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    pipe = _Pipe(loop, queue, stop)
    end = object()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            _write_zip(pipe, entries, errors)
        except BaseException as error:  # reported to the response, which ends early
            failure.append(error)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, end)

    threading.Thread(target=write, name=f"batch-results-{batch.pk}", daemon=True).start()
    try:
        while (chunk := await queue.get()) is not end:
            pipe.credits.release()
            yield chunk
        if failure and not stop.is_set():
            raise failure[0]
    finally:
        stop.set()
