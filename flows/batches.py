"""Batches: take many images (files and/or one zip) onto disk as they arrive, and show them as the API's objects.

Every input is written under `MEDIA_ROOT/batches/<batch>/inputs/` while the request body is parsed
(`BatchUploadHandler`), never held in memory; archive entries are extracted there one by one,
under names the batch chooses (an entry's own name is only its label). Running the items is
`flows.batch_runner`'s job; the results zip is `flows.batch_results`'.
"""

from __future__ import annotations

import re
import shutil
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import transaction

from flows import archives
from flows.models import Batch, BatchItem, Flow

IMAGE_FIELD = "image"
ARCHIVE_FIELD = "archive"
PATH_FIELD = "path"  # optional, one per `image` in the same order: its relative path (a dropped folder)
ITEM_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class BatchRejected(Exception):
    """The request cannot make a batch; nothing of it is kept."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def batch_dir(batch_id: uuid.UUID | str) -> Path:
    return Path(settings.MEDIA_ROOT) / "batches" / str(batch_id)


def media_name(path: Path) -> str:
    return str(path.relative_to(settings.MEDIA_ROOT))


def _suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


@dataclass(slots=True)
class Rejected:
    name: str
    error: str


class StoredFile(UploadedFile):
    """An uploaded part already written to `path` (closed; the batch reads it from disk)."""

    def __init__(self, file, name: str, size: int, path: Path) -> None:
        super().__init__(file=file, name=name, size=size)
        self.path = path


class BatchUploadHandler(FileUploadHandler):
    """Write each `image` part, and the `archive`, to the batch's folder as its chunks arrive.

    An image over the upload limit is dropped as it grows past it and remembered as a failed item;
    other file fields are skipped unread.
    """

    chunk_size = 1024 * 1024  # Django's 64 KiB made the parse of a 100 MB body thousands of Python loops

    def __init__(self, request=None, batch_id: uuid.UUID | None = None) -> None:
        super().__init__(request)
        self.batch_id = batch_id or uuid.uuid4()
        self.folder = batch_dir(self.batch_id)
        self.rejected: list[Rejected] = []
        self.images = 0
        self.written = 0
        self.path: Path | None = None
        self.limit = settings.TILEFLOW["MAX_UPLOAD_BYTES"]
        self.skipped: list[str] = []  # the fields of files not stored: unknown ones, a second archive

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name == IMAGE_FIELD:
            self.path = self.folder / "inputs" / f"{self.images:05d}{_suffix(file_name or '')}"
            self.images += 1
        elif field_name == ARCHIVE_FIELD and not (self.folder / "archive.zip").exists():
            self.path = self.folder / "archive.zip"
        else:
            self.skipped.append(field_name)  # not stored: the call refuses it (`flows.api_batches`)
            raise SkipFile()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "xb")  # closed in file_complete, or by Django on a skip
        self.written = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.written += len(raw_data)
        if self.field_name == IMAGE_FIELD and self.written > self.limit:
            self.file.close()
            self.path.unlink(missing_ok=True)
            self.rejected.append(
                Rejected(
                    self.file_name or "image",
                    f"larger than the upload limit of {self.limit} bytes (TILEFLOW_MAX_UPLOAD_BYTES)",
                )
            )
            raise SkipFile()
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> StoredFile:
        self.file.close()
        return StoredFile(self.file, self.file_name or "image", file_size, self.path)

    def discard(self) -> None:
        """Remove everything this request wrote (a refused request keeps nothing)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def limits() -> archives.ArchiveLimits:
    config = settings.TILEFLOW
    return archives.ArchiveLimits(
        max_entries=config["BATCH_MAX_ITEMS"],
        max_total_bytes=config["ARCHIVE_MAX_BYTES"],
        max_ratio=config["ARCHIVE_MAX_RATIO"],
        max_entry_bytes=config["MAX_UPLOAD_BYTES"],
    )


def prepare_items(
    upload: BatchUploadHandler, images: list[StoredFile], paths: list[str], archive: StoredFile | None
) -> list[BatchItem]:
    """Make the unsaved items from what `upload` stored, extracting the archive; no database work.

    Raises BatchRejected, having removed everything the request wrote.
    """
    try:
        return _prepare(upload, images, paths, archive)
    except BaseException:
        upload.discard()
        raise


def _prepare(upload, images, paths, archive) -> list[BatchItem]:
    if not images and archive is None and not upload.rejected:
        raise BatchRejected("no images: send files in 'image' fields and/or one zip in 'archive'")
    items: list[BatchItem] = []
    for position, image in enumerate(images):
        given = paths[position] if position < len(paths) and paths[position] else image.name
        name = archives.clean_name(given)
        error = None if name else "unsafe name (absolute, leaves its folder with .., or holds a control character)"
        if image.size == 0:
            error = "the file is empty"
        # A refused name is listed as it was sent (as an archive's entries are), for the sender to recognise.
        items.append(_item(name or given.replace("\x00", "") or image.name, image.path, error))
    for rejected in upload.rejected:
        items.append(BatchItem(name=rejected.name[:1024], status="failed", error=rejected.error))
    if archive is not None:
        items.extend(_unpack(archive.path, upload.folder / "inputs", first=len(images)))
    if not items:
        raise BatchRejected("the archive holds no files")
    maximum = settings.TILEFLOW["BATCH_MAX_ITEMS"]
    if len(items) > maximum:
        raise BatchRejected(f"{len(items)} items; a batch takes at most {maximum} (TILEFLOW_BATCH_MAX_ITEMS)")
    return items


def save_batch(*, owner, flow: Flow, upload: BatchUploadHandler, items: list[BatchItem]) -> Batch:
    """Store the batch, its frozen graph and its items (in one transaction)."""
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                id=upload.batch_id,
                owner=owner,
                flow=flow,
                flow_name=flow.name,
                flow_version=flow.version,
                graph=flow.graph,
            )
            for index, item in enumerate(items):
                item.batch = batch
                item.index = index
                if item.error is not None:
                    item.status = "failed"
            BatchItem.objects.bulk_create(items, batch_size=500)
    except BaseException:
        upload.discard()
        raise
    return batch


def _item(name: str, path: Path | None, error: str | None) -> BatchItem:
    size = path.stat().st_size if path is not None and path.exists() else 0
    if error is not None and path is not None:
        path.unlink(missing_ok=True)
        path = None
    return BatchItem(
        name=name[:1024], input_file=media_name(path) if path else "", size=size, error=error, status="queued"
    )


def _unpack(archive_path: Path, inputs: Path, *, first: int) -> list[BatchItem]:
    """Extract the archive's entries to numbered files in `inputs`; unsafe ones become failed items."""
    try:
        entries = archives.read_entries(archive_path, limits())
        inputs.mkdir(parents=True, exist_ok=True)
        items = []
        with zipfile.ZipFile(archive_path) as archive:
            for number, entry in enumerate(entries, start=first):
                if entry.info is None:
                    items.append(_item(entry.name, None, entry.error))
                    continue
                target = inputs / f"{number:05d}{_suffix(entry.name)}"
                try:
                    archives.extract(archive, entry.info, target, entry.info.file_size)
                except archives.DAMAGED_ZIP_ERRORS as error:
                    target.unlink(missing_ok=True)
                    items.append(_item(entry.name, None, f"cannot be extracted: {error}"))
                    continue
                with open(target, "rb") as head:
                    nested = archives.looks_like_archive(head.read(8))
                error = "an archive inside the archive: nested archives are not unpacked" if nested else None
                items.append(_item(entry.name, target, error))
    except archives.ArchiveRejected as rejected:
        raise BatchRejected(str(rejected)) from rejected
    finally:
        archive_path.unlink(missing_ok=True)
    return items


def counts(items) -> dict[str, int]:
    """Count items per status, from rows or from (status,) values."""
    tally = Counter(item if isinstance(item, str) else item.status for item in items)
    return {"total": sum(tally.values()), **{status: tally.get(status, 0) for status in ITEM_STATUSES}}


def status_counts(batch_id) -> dict[str, int]:
    """Count a batch's items per status in one query."""
    return counts(BatchItem.objects.filter(batch_id=batch_id).values_list("status", flat=True))


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def item_payload(item: BatchItem) -> dict[str, Any]:
    duration = None
    if item.started_at and item.finished_at:
        duration = int((item.finished_at - item.started_at).total_seconds() * 1000)
    execution = str(item.execution_id) if item.execution_id else None
    return {
        "index": item.index,
        "name": item.name,
        "execution": execution,
        "status": item.status,
        "error": item.error,
        "size": item.size,
        "started_at": _iso(item.started_at),
        "finished_at": _iso(item.finished_at),
        "duration_ms": duration,
        "input_url": f"/api/executions/{execution}/input" if execution else None,
    }


def batch_payload(batch: Batch, *, with_items: bool = True) -> dict[str, Any]:
    """Return the API's batch object (CONTRACT §7)."""
    items = list(batch.items.all()) if with_items else None
    tally = counts(items) if items is not None else status_counts(batch.id)
    payload = {
        "id": str(batch.id),
        "flow": str(batch.flow_id) if batch.flow_id else None,
        "flow_name": batch.flow_name,
        "flow_version": batch.flow_version,
        "status": batch.status,
        "created_at": batch.created_at.isoformat(),
        "finished_at": _iso(batch.finished_at),
        **tally,
        "outputs": [node["id"] for node in batch.graph.get("nodes", []) if node.get("type") == "output"],
        "results_url": f"/api/batches/{batch.id}/results",
    }
    if items is not None:
        payload["items"] = [item_payload(item) for item in items]
    return payload
