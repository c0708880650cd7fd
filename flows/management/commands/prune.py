"""`manage.py prune [--days N] [--dry-run]`: delete stored inputs and outputs older than N days.

An execution is old when it finished (or, never finished, was created) before the cutoff; running and
queued ones are never touched. Its output files and their rows go, and its input file goes unless a
newer execution (a rerun) still uses it; the execution row stays, for the history, with no files.
Files under media/inputs and media/outputs that no execution refers to (left by a crash) are deleted
once they are older than the cutoff too, and so is the folder of a batch that finished before it
(the inputs of its items, but any that a newer execution still uses).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from flows import media as media_files
from flows.batches import batch_dir
from flows.models import Batch, Execution, ExecutionOutput


@dataclass
class Freed:
    files: int = 0
    bytes: int = 0
    executions: set[str] = field(default_factory=set)

    def add(self, path: Path) -> None:
        self.files += 1
        self.bytes += path.stat().st_size


def _human(size: int) -> str:
    """Return a byte count as people read it: 1.5 MB."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class Command(BaseCommand):
    help = "Delete stored inputs and outputs of executions older than --days (TILEFLOW_PRUNE_AFTER_DAYS)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help=f"age in days (default: TILEFLOW_PRUNE_AFTER_DAYS = {settings.TILEFLOW['PRUNE_AFTER_DAYS']})",
        )
        parser.add_argument("--dry-run", action="store_true", help="only say what would be deleted")

    def handle(self, *args, **options):
        days = options["days"] if options["days"] is not None else settings.TILEFLOW["PRUNE_AFTER_DAYS"]
        if days < 0:
            raise CommandError("--days must be 0 or more")
        dry_run = options["dry_run"]
        cutoff = timezone.now() - timedelta(days=days)
        media = Path(settings.MEDIA_ROOT)
        freed = Freed()

        old = Execution.objects.exclude(status__in=[Execution.Status.QUEUED, Execution.Status.RUNNING]).filter(
            Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
        )
        old_ids = list(old.values_list("pk", flat=True))
        # An input shared with a rerun that is not old (or still runs) stays.
        kept_inputs = set(
            Execution.objects.exclude(pk__in=old_ids).exclude(input_file="").values_list("input_file", flat=True)
        )
        for execution in old.exclude(input_file="").only("pk", "input_file"):
            name = execution.input_file.name
            path = media / name
            if name not in kept_inputs and path.is_file():
                freed.add(path)
                freed.executions.add(str(execution.pk))
                if not dry_run:
                    path.unlink()
            if not dry_run:
                Execution.objects.filter(pk=execution.pk).update(input_file="")
        for output in ExecutionOutput.objects.filter(execution_id__in=old_ids):
            path = media / output.file.name if output.file.name else None
            if path is not None and path.is_file():
                freed.add(path)
                freed.executions.add(str(output.execution_id))
                if not dry_run:
                    path.unlink()
        if not dry_run:
            with transaction.atomic():
                ExecutionOutput.objects.filter(execution_id__in=old_ids).delete()
            for execution_id in old_ids:  # their inputs are gone: node previews could not be made again
                media_files.remove_previews(execution_id)
        self._batches(cutoff, kept_inputs, freed, dry_run=dry_run)
        self._orphans(cutoff.timestamp(), freed, dry_run=dry_run)

        verb = "would free" if dry_run else "freed"
        self.stdout.write(
            f"prune: {verb} {freed.files} files, {freed.bytes} bytes ({_human(freed.bytes)}) "
            f"of {len(freed.executions)} executions older than {days:g} days"
        )

    def _batches(self, cutoff, kept_inputs: set[str], freed: Freed, *, dry_run: bool) -> None:
        """Delete the stored inputs of batches that finished before the cutoff (the rows stay)."""
        media = Path(settings.MEDIA_ROOT)
        for batch in Batch.objects.filter(status__in=Batch.FINISHED, finished_at__lt=cutoff).only("pk"):
            folder = batch_dir(batch.pk)
            for path in sorted(folder.rglob("*"), reverse=True):
                if path.is_file() and str(path.relative_to(media)) not in kept_inputs:
                    freed.add(path)
                    if not dry_run:
                        path.unlink()
                elif path.is_dir() and not dry_run and not any(path.iterdir()):
                    path.rmdir()
            if not dry_run and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def _orphans(self, cutoff: float, freed: Freed, *, dry_run: bool) -> None:
        """Delete old files that no execution owns, then the folders they leave empty."""
        for _, size in media_files.remove_orphans(grace_seconds=time.time() - cutoff, dry_run=dry_run):
            freed.files += 1
            freed.bytes += size
