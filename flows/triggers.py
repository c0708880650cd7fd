"""What one trigger does each time it looks: record new objects once, run its flow on them, deliver the outputs.

Every object is a `TriggerEvent` row keyed by (trigger, key, version), inserted before anything runs:
the row is what makes "exactly once" survive restarts and several processes. An event goes
pending → running (with its execution) → succeeded, failed or skipped. A store that fails (gone,
refusing the keys, too slow) leaves the event where it was, with the reason, and it is tried again
later, a bounded number of times with growing pauses; an object that is not an image, or whose run
fails, is recorded once and never retried.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import close_old_connections
from django.utils import timezone

from flows import executions as service
from flows.models import Execution, Trigger, TriggerEvent
from flows.trigger_stores import (
    LocationError,
    NameTaken,
    ObjectGone,
    Store,
    StoredObject,
    StoreError,
    open_store,
    relative_parts,
)
from runtime import api as runtime

log = logging.getLogger("tileflow.triggers")

Status = TriggerEvent.Status
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/avif": ".avif"}
BULK = 500
SCAN_NOTE_EVERY = timedelta(seconds=10)  # how stale `last_scan_at` may be while nothing else changes
KEY_LENGTH = TriggerEvent._meta.get_field("key").max_length


# How the decoder names an image whose header reads but whose data is cut short or broken: a run on
# it fails, so its event is `failed` with the reason, as a batch's item is; what never runs is `skipped`.
def stored_key(key: str) -> str:
    """Return an object's name as the database can hold it: bytes not UTF-8 and NULs escaped, cut to the column.

    A folder's names come from `os.walk`, which keeps bytes that are not UTF-8 as lone surrogates
    (PEP 383), and a notification's JSON may hold any; no database takes those, PostgreSQL takes no
    NUL (an S3 key may hold one) and no name longer than the column. An event whose name had to
    change this way is skipped (`_event`): its object is never read under it.
    """
    if not _is_utf8(key):
        try:
            key = key.encode(errors="surrogateescape").decode(errors="backslashreplace")  # the name's own bytes
        except UnicodeEncodeError:  # a surrogate no file system gave (a notification's "\ud800")
            key = key.encode(errors="backslashreplace").decode()
    return key.replace("\x00", "\\x00")[:KEY_LENGTH]


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def output_key(key: str, node: str, content_type: str, *, several: bool) -> str:
    """Name an output after its input: same folders, the output's extension, `-node` with several outputs."""
    path = PurePosixPath(key)
    suffix = f"-{node}" if several else ""
    return str(path.with_name(path.stem + suffix + EXTENSIONS.get(content_type, ".bin")))


def numbered_names(name: str) -> Iterator[str]:
    """Yield `name`, then `stem-2.ext`, `stem-3.ext`, … (as a batch's results are numbered)."""
    yield name
    base, extension = posixpath.splitext(name)
    for number in itertools.count(2):
        yield f"{base}-{number}{extension}"


def names_owned(trigger: Trigger, event: TriggerEvent) -> set[str]:
    """The destination names recorded for this object: its earlier versions' outputs and this delivery's own.

    Only these may be replaced; any other name that exists in the destination is left alone.
    """
    rows = TriggerEvent.objects.filter(trigger=trigger, key=event.key).values_list("outputs", flat=True)
    return {name for outputs in rows for name in outputs or ()}


def names_taken(trigger: Trigger, event: TriggerEvent) -> set[str]:
    """The destination names other objects' outputs were written (or are being written) to, among those this
    event's could take.

    Only objects whose names start like this one's (its folder and stem, a "-N" suffix dropped)
    can have an output of the same name: `coll.jpg` and `coll.png` both give `coll.jpg`.
    """
    path = PurePosixPath(event.key)
    stem = re.sub(r"-\d+$", "", path.stem)
    prefix = str(path.with_name(stem)) if stem else str(path.parent)
    rows = (
        TriggerEvent.objects.filter(
            trigger=trigger, status__in=[Status.SUCCEEDED, Status.RUNNING], key__startswith=prefix
        )
        .exclude(key=event.key)
        .values_list("outputs", flat=True)
    )
    return {name for outputs in rows for name in outputs or ()}


# Listing, reading and writing stores happen here, not in the event loop's default executor, which
# runs' progress saves and decodes share: a slow store then holds only triggers' threads.
STORE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tileflow-triggers")


async def _off_loop(function, *args):
    def call():
        close_old_connections()  # as a request would: never reuse a connection the database dropped
        return function(*args)

    return await asyncio.get_running_loop().run_in_executor(STORE_THREADS, call)


def _retry_pause(attempts: int) -> timedelta:
    return timedelta(seconds=min(300.0, settings.TILEFLOW["TRIGGER_POLL_SECONDS"] * 2**attempts))


def _set_error(trigger_id, message: str | None) -> None:
    Trigger.objects.filter(pk=trigger_id).update(last_error=message)


class TriggerWorker:
    """Poll one trigger from the process that holds its lease: scan, start runs, deliver outputs."""

    def __init__(self, trigger_id, *, run_ended: Callable[[], None] | None = None) -> None:
        self.trigger_id = trigger_id
        self.known: set[tuple[str, str]] | None = None  # (stored key, version) already recorded
        self.known_source: dict | None = None
        self.finishing: set[asyncio.Task] = set()
        self.run_ended = run_ended  # called on the event loop after a run ended and was finished: a place is free

    async def cycle(self) -> bool:
        """Look once; return False when the trigger is gone or paused."""
        trigger = await Trigger.objects.select_related("flow", "owner").filter(pk=self.trigger_id).afirst()
        if trigger is None or not trigger.enabled:
            return False
        await _off_loop(self.scan, trigger)
        await _off_loop(self.reconcile, trigger)
        await self.start_pending(trigger)
        return True

    async def start_announced(self) -> bool:
        """Start runs on objects recorded since the last look (an S3 notification); False when gone or paused."""
        trigger = await Trigger.objects.select_related("flow", "owner").filter(pk=self.trigger_id).afirst()
        if trigger is None or not trigger.enabled:
            return False
        await self.start_pending(trigger)
        return True

    # -- recording what is there -------------------------------------------------------------

    def scan(self, trigger: Trigger) -> None:
        """Record every object not seen before as pending (or as existing, on a first scan)."""
        if self.known is None or self.known_source != trigger.source:
            self.known = set(TriggerEvent.objects.filter(trigger=trigger).values_list("key", "version"))
            self.known_source = trigger.source
        cutoff = trigger.watch_from.replace(microsecond=0)
        first = not trigger.primed and not trigger.process_existing
        fresh: list[TriggerEvent] = []
        try:
            for item in open_store(trigger.type, trigger.source).objects():
                if (stored_key(item.key), item.version) in self.known:
                    continue
                status = Status.EXISTING if first and item.modified < cutoff else Status.PENDING
                fresh.append(self._event(trigger, item, status))
                if len(fresh) >= BULK:
                    self._record(fresh)
                    fresh = []
        except StoreError as error:
            self._record(fresh)
            _set_error(trigger.pk, str(error))
            return
        self._record(fresh)
        waiting = TriggerEvent.objects.filter(
            trigger=trigger, status__in=[Status.PENDING, Status.RUNNING], retry_at__isnull=False
        ).order_by("-retry_at")
        error = waiting.values_list("error", flat=True).first()  # a store still failing for an object
        now = timezone.now()
        stale = trigger.last_scan_at is None or now - trigger.last_scan_at > SCAN_NOTE_EVERY
        if stale or not trigger.primed or error != trigger.last_error:  # no write per look (SQLite's lock)
            Trigger.objects.filter(pk=trigger.pk).update(primed=True, last_error=error, last_scan_at=now)

    def _record(self, events: list[TriggerEvent]) -> None:
        """Insert the events, and only then count them known: a failed insert leaves them to the next scan."""
        TriggerEvent.objects.bulk_create(events, ignore_conflicts=True)
        self.known.update((event.key, event.version) for event in events)

    @staticmethod
    def _event(trigger: Trigger, item: StoredObject, status: str) -> TriggerEvent:
        key = stored_key(item.key)
        event = TriggerEvent(trigger=trigger, key=key, version=item.version, size=item.size, status=status)
        if status != Status.PENDING:
            return event
        try:
            relative_parts(item.key, what="name")
        except LocationError as unsafe:
            event.status, event.error = Status.SKIPPED, str(unsafe)
        if not _is_utf8(item.key):
            event.status, event.error = Status.SKIPPED, "the name is not valid UTF-8 (shown with those bytes as \\xNN)"
        if len(item.key) > KEY_LENGTH:
            event.status, event.error = Status.SKIPPED, f"the name is longer than {KEY_LENGTH} characters"
        limit = settings.TILEFLOW["MAX_UPLOAD_BYTES"]
        if item.size > limit:
            event.status, event.error = Status.SKIPPED, f"the object is {item.size} bytes; the limit is {limit} bytes"
        if item.size == 0:
            event.status, event.error = Status.SKIPPED, "the object is empty"
        if event.status == Status.SKIPPED:
            event.finished_at = timezone.now()
        return event

    # -- starting runs -----------------------------------------------------------------------

    async def start_pending(self, trigger: Trigger) -> None:
        """Start runs on pending objects, oldest first, keeping at most the owner's run limit going."""
        capacity = settings.TILEFLOW["MAX_CONCURRENT_RUNS_PER_USER"]
        now = timezone.now()
        running = await TriggerEvent.objects.filter(trigger=trigger, status=Status.RUNNING).acount()
        ready = TriggerEvent.objects.filter(trigger=trigger, status=Status.PENDING).exclude(retry_at__gt=now)
        # An object that does not run (not an image, unreadable) leaves `ready` and its place to the next one.
        while running < capacity:
            chosen = [event async for event in ready.order_by("seen_at", "id")[: capacity - running]]
            if not chosen:
                return
            for event in chosen:
                if await self.start(trigger, event):
                    running += 1

    async def start(self, trigger: Trigger, event: TriggerEvent) -> bool:
        """Claim the event and launch its run; False when it was taken already or cannot run."""
        claimed = await TriggerEvent.objects.filter(pk=event.pk, status=Status.PENDING).aupdate(
            status=Status.RUNNING, error=None
        )
        if not claimed:
            return False
        prepared = await _off_loop(self.prepare, trigger, event)
        if prepared is None:
            return False
        execution, header = prepared
        conductor = await service.launch(execution, header, limits=runtime.unattended_limits())
        task = asyncio.create_task(self._finish_when_done(event.pk, conductor))
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)
        return True

    def prepare(self, trigger: Trigger, event: TriggerEvent):
        """Copy the object into an execution's input and create the execution; None when it cannot run."""
        item = StoredObject(event.key, event.version, event.size, event.seen_at)
        upload = TemporaryUploadedFile(os.path.basename(event.key), "application/octet-stream", 0, None)
        try:
            open_store(trigger.type, trigger.source).fetch(item, upload.file)
            upload.file.flush()
            upload.size = upload.file.tell()
            service.check_upload(upload)
            header = service.probe_upload(upload)
            execution = service.create_execution(
                owner=trigger.owner,
                flow=trigger.flow,
                graph=trigger.flow.graph,
                flow_name=trigger.flow.name,
                flow_version=trigger.flow.version,
                upload=upload,
                header=header,
            )
        except ObjectGone as gone:
            self._end(event.pk, Status.SKIPPED, str(gone))
            return None
        except service.UploadRejected as rejected:
            damaged = isinstance(rejected.__cause__, runtime.ImageDamaged)
            self._end(event.pk, Status.FAILED if damaged else Status.SKIPPED, str(rejected))
            return None
        except StoreError as error:
            self._store_failed(trigger, event, f"could not read the object: {error}", back_to=Status.PENDING)
            return None
        finally:
            upload.close()
        TriggerEvent.objects.filter(pk=event.pk).update(execution=execution)
        return execution, header

    async def _finish_when_done(self, event_id, conductor) -> None:
        await conductor.finished.wait()
        try:
            await _off_loop(self.finish, event_id)
        except Exception:  # the next cycle's reconcile finishes it
            log.exception("finishing trigger event %s failed", event_id)
        if self.run_ended is not None:
            self.run_ended()  # the next pending object starts now, not at the next scan

    # -- delivering --------------------------------------------------------------------------

    def reconcile(self, trigger: Trigger) -> None:
        """Finish events whose run ended unseen (before a restart, or a delivery to retry)."""
        now = timezone.now()
        stale = TriggerEvent.objects.filter(trigger=trigger, status=Status.RUNNING)
        for event in stale.exclude(retry_at__gt=now).select_related("execution"):
            if event.execution is None:
                # Claimed by a process that stopped before it created the run (this worker's own
                # `start` claims, prepares and launches before the next cycle): nothing ran.
                TriggerEvent.objects.filter(pk=event.pk, status=Status.RUNNING, execution=None).update(
                    status=Status.PENDING
                )
            elif event.execution.finished:
                self.finish(event.pk)

    def finish(self, event_id) -> None:
        """Write the outputs of a finished run to the destination and close its event."""
        event = TriggerEvent.objects.select_related("trigger", "execution").filter(pk=event_id).first()
        if event is None or event.status != Status.RUNNING or event.execution is None:
            return
        execution, trigger = event.execution, event.trigger
        if not execution.finished:
            return
        if execution.status != Execution.Status.SUCCEEDED:
            error = execution.error or f"the run was {execution.status}"
            if error.startswith("interrupted") and event.attempts + 1 < settings.TILEFLOW["TRIGGER_MAX_ATTEMPTS"]:
                # The server died under the run, not the image: run it again, once more at most each time.
                TriggerEvent.objects.filter(pk=event.pk, status=Status.RUNNING).update(
                    status=Status.PENDING, execution=None, attempts=event.attempts + 1, error=error
                )
                return
            self._end(event.pk, Status.FAILED, error)
            return
        outputs = list(execution.outputs.filter(complete=True))
        store = open_store(trigger.type, trigger.destination)
        taken, owned = names_taken(trigger, event), names_owned(trigger, event)
        written: list[str] = []
        try:
            for output in outputs:
                key = output_key(event.key, output.node, output.content_type, several=len(outputs) > 1)
                written.append(self._deliver(event, store, key, output, taken=taken, owned=owned, written=written))
        except StoreError as error:
            self._store_failed(trigger, event, f"could not write the output: {error}", back_to=Status.RUNNING)
            return
        TriggerEvent.objects.filter(pk=event.pk, status=Status.RUNNING).update(
            status=Status.SUCCEEDED, error=None, retry_at=None, outputs=written, finished_at=timezone.now()
        )

    @staticmethod
    def _deliver(event, store: Store, key: str, output, *, taken: set[str], owned: set[str], written: list[str]) -> str:
        """Write one output at `key`, or the first numbered name after it that is free; return where it went.

        A name is free when no other object's output has it and nothing is there in the destination,
        or when it is this object's own (a rerun, or a new version, replaces its own output). The
        name is recorded before the write: a delivery cut by a crash or a failing store replaces
        what it began when it is tried again, and leaves no `-2` copy of it.
        """
        candidates = numbered_names(key)
        while True:
            candidate = next(candidates)
            name = store.written_name(candidate)
            if name in taken or name in written:
                continue
            TriggerEvent.objects.filter(pk=event.pk).update(outputs=[*written, name])
            try:
                return store.put(candidate, Path(output.file.path), output.content_type, replace=name in owned)
            except NameTaken:  # someone else's file or object, perhaps written a moment ago: never replaced
                continue

    @staticmethod
    def _end(event_id, status: str, error: str | None) -> None:
        TriggerEvent.objects.filter(pk=event_id).update(
            status=status, error=error, retry_at=None, finished_at=timezone.now()
        )

    def _store_failed(self, trigger: Trigger, event: TriggerEvent, message: str, *, back_to: str) -> None:
        """Keep the event's place and try again later, unless it has been tried too often."""
        attempts = event.attempts + 1
        rows = TriggerEvent.objects.filter(pk=event.pk)
        if attempts >= settings.TILEFLOW["TRIGGER_MAX_ATTEMPTS"]:
            message = f"{message} (gave up after {attempts} attempts)"
            rows.update(
                status=Status.FAILED, attempts=attempts, error=message, retry_at=None, finished_at=timezone.now()
            )
            _set_error(trigger.pk, message)
            return
        rows.update(status=back_to, attempts=attempts, error=message, retry_at=timezone.now() + _retry_pause(attempts))
        _set_error(trigger.pk, message)  # after the event: a scan meanwhile finds it waiting, and keeps the error


def record_notification(trigger: Trigger, records: list[dict]) -> int:
    """Record the objects an S3 event notification names as pending; return how many were new."""
    from urllib.parse import unquote_plus

    prefix = trigger.source.get("prefix", "")
    fresh = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        if (s3.get("bucket") or {}).get("name") != trigger.source.get("bucket"):
            continue
        entry = s3.get("object") or {}
        key = unquote_plus(str(entry.get("key", "")))
        version = str(entry.get("eTag") or entry.get("etag") or "").strip('"')
        if not key.startswith(prefix) or not version or key.endswith("/"):
            continue
        size = entry.get("size")
        if not isinstance(size, int):
            continue  # the next scan lists it with its size
        item = StoredObject(key[len(prefix) :], version, size, timezone.now())
        fresh.append(TriggerWorker._event(trigger, item, Status.PENDING))
    before = TriggerEvent.objects.filter(trigger=trigger).count()
    TriggerEvent.objects.bulk_create(fresh, ignore_conflicts=True)
    return TriggerEvent.objects.filter(trigger=trigger).count() - before
