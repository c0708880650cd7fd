"""`manage.py prune`: old inputs and outputs go (and say how much), recent, running and shared ones stay."""

import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from flows.models import Execution, ExecutionOutput

GRAPH = {"nodes": [], "edges": []}


def make_execution(owner, *, age_days: float, status: str = "succeeded", input_from: Execution | None = None):
    moment = timezone.now() - timedelta(days=age_days)
    execution = Execution(owner=owner, graph=GRAPH, status=status)
    if input_from is None:
        execution.input_file.save(f"{execution.id}.png", ContentFile(b"i" * 1000), save=False)
    else:
        execution.input_file.name = input_from.input_file.name
    execution.save()
    finished = moment if status in ("succeeded", "failed", "cancelled") else None
    Execution.objects.filter(pk=execution.pk).update(created_at=moment, finished_at=finished)
    output = ExecutionOutput(execution=execution, node="out", content_type="image/png", complete=True, size=500)
    output.file.save(f"{execution.id}-out.png", ContentFile(b"o" * 500), save=False)
    output.save()
    return Execution.objects.get(pk=execution.pk)


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_prune_frees_old_files_and_keeps_the_rest(user, settings):
    old = make_execution(user, age_days=40)
    recent = make_execution(user, age_days=1)
    running = make_execution(user, age_days=50, status="running")
    shared_old = make_execution(user, age_days=45)
    rerun = make_execution(user, age_days=2, input_from=shared_old)  # still uses shared_old's input
    orphan = settings.MEDIA_ROOT / "outputs" / "crashed" / "out.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 300)
    long_ago = time.time() - 60 * 86400
    os.utime(orphan, (long_ago, long_ago))
    fresh_orphan = settings.MEDIA_ROOT / "inputs" / "fresh.png"
    fresh_orphan.write_bytes(b"y" * 10)

    preview = prune("--days", "30", "--dry-run")
    # old: input 1000 + output 500; shared_old: output 500 (its input is shared); the old orphan: 300.
    assert "would free 4 files, 2300 bytes" in preview
    assert (settings.MEDIA_ROOT / old.input_file.name).exists() and orphan.exists()

    report = prune("--days", "30")
    assert "freed 4 files, 2300 bytes" in report and "of 2 executions" in report
    assert not (settings.MEDIA_ROOT / old.input_file.name).exists()
    assert not orphan.exists() and not orphan.parent.exists()
    assert fresh_orphan.exists()
    old.refresh_from_db()
    assert old.input_file.name == "" and not old.outputs.exists()
    assert Execution.objects.filter(pk=old.pk).exists()  # the history stays
    for kept in (recent, running, rerun):
        assert (settings.MEDIA_ROOT / kept.input_file.name).exists()
        assert kept.outputs.get().file.storage.exists(kept.outputs.get().file.name)
    assert (settings.MEDIA_ROOT / shared_old.input_file.name).exists()
    assert "freed 0 files, 0 bytes" in prune("--days", "30")


@pytest.mark.django_db
def test_prune_uses_the_setting_by_default(user, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "PRUNE_AFTER_DAYS": 3}
    old = make_execution(user, age_days=4)
    assert "freed 2 files, 1500 bytes" in prune()
    assert not old.outputs.exists()
