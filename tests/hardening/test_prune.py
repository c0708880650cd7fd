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


@pytest.mark.django_db
def test_prune_frees_the_inputs_of_old_batches_but_one_a_newer_run_uses(user):
    from flows.batches import batch_dir, media_name
    from flows.models import Batch, BatchItem

    def batch_with_inputs(age_days: float, count: int) -> tuple[Batch, list[str]]:
        finished = timezone.now() - timedelta(days=age_days)
        batch = Batch.objects.create(owner=user, graph={}, status="succeeded", finished_at=finished)
        names = []
        for index in range(count):
            path = batch_dir(batch.pk) / "inputs" / f"{index:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 100)
            names.append(media_name(path))
            BatchItem.objects.create(batch=batch, index=index, name=f"{index}.jpg", input_file=names[-1])
        return batch, names

    old, old_inputs = batch_with_inputs(40, 3)
    recent, _ = batch_with_inputs(1, 2)
    rerun = make_execution(user, age_days=0)
    Execution.objects.filter(pk=rerun.pk).update(input_file=old_inputs[0])  # a rerun of an old item

    assert "would free 2 files, 200 bytes" in prune("--days", "30", "--dry-run")
    assert (batch_dir(old.pk) / "inputs" / "00001.jpg").exists()
    prune("--days", "30")
    assert [path.name for path in (batch_dir(old.pk) / "inputs").iterdir()] == ["00000.jpg"]
    assert len(list((batch_dir(recent.pk) / "inputs").iterdir())) == 2
    assert Batch.objects.filter(pk=old.pk).exists()
