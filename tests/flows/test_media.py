"""Files under MEDIA_ROOT: what executions own stays, what none owns goes, and nothing outside inputs/ and
outputs/ is ever touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.utils import timezone

from flows import media
from flows.executions import mark_interrupted
from flows.models import Execution, ExecutionOutput

pytestmark = pytest.mark.django_db

OLD = time.time() - 3600


def put(path: Path, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"pixels")
    if old:
        os.utime(path, (OLD, OLD))
    return path


def execution(user, status: str, input_name: str = "", **fields) -> Execution:
    return Execution.objects.create(owner=user, graph={}, status=status, input_file=input_name, **fields)


def test_start_up_removes_only_files_no_execution_owns(user, settings):
    root = Path(settings.MEDIA_ROOT)
    done = execution(user, "succeeded", "inputs/2026/12/01/a.png")
    rerun = execution(user, "succeeded", "inputs/2026/12/01/a.png")  # shares its input
    running = execution(user, "running", "inputs/2026/12/01/b.png")
    failed = execution(user, "failed", "inputs/2026/12/01/c.png")
    ExecutionOutput.objects.create(execution=done, node="out", file=f"outputs/{done.id}/out.png", content_type="x")
    kept = [
        put(root / "inputs/2026/12/01/a.png"),
        put(root / "inputs/2026/12/01/b.png"),
        put(root / "inputs/2026/12/01/c.png"),
        put(root / f"outputs/{done.id}/out.png"),
        put(root / f"outputs/{running.id}/out.png"),  # written before any row names it
        put(root / "inputs/2026/12/01/fresh.png", old=False),  # another server may be storing it
        put(root / "batches/7/inputs/photo.png"),  # a batch's stored input: not ours to judge
        put(root / "elsewhere.txt"),
    ]
    gone = [
        put(root / "inputs/2026/11/30/lost.png"),
        put(root / f"outputs/{failed.id}/out.png"),  # a partial file its failed run left
        put(root / "outputs/3f1c8d2e-0000-4000-8000-000000000000/out.png"),  # an execution deleted meanwhile
        put(root / "outputs/not-an-id/out.png"),
    ]
    assert media.remove_orphans(dry_run=True) != [] and all(path.exists() for path in gone)
    assert sorted(path for path, _ in media.remove_orphans()) == sorted(gone)
    assert all(path.exists() for path in kept)
    assert not any(path.exists() for path in gone)
    assert not (root / "inputs/2026/11/30").exists() and not (root / "outputs/not-an-id").exists()
    assert (root / "inputs").is_dir() and (root / "outputs").is_dir()
    assert rerun.input_file.name == done.input_file.name


def test_a_file_named_by_a_row_committed_meanwhile_stays(user, settings, monkeypatch):
    root = Path(settings.MEDIA_ROOT)
    late = put(root / "inputs/2026/12/01/late.png")
    real_owned = media._owned

    def committed_meanwhile(relative, media_root):
        execution(user, "queued", "inputs/2026/12/01/late.png")  # the other server's row lands now
        return real_owned(relative, media_root)

    monkeypatch.setattr(media, "_owned", committed_meanwhile)
    assert media.remove_orphans() == []
    assert late.exists()


def test_an_interrupted_run_loses_its_partial_outputs(user, settings):
    root = Path(settings.MEDIA_ROOT)
    dead = execution(user, "running", runner="nowhere:1", heartbeat_at=timezone.now())
    dead.runner = f"{os.uname().nodename}:{2**22 + 12345}"  # a pid no process has
    dead.save()
    partial = put(root / f"outputs/{dead.id}/out.png", old=False)
    ExecutionOutput.objects.create(execution=dead, node="out", file=f"outputs/{dead.id}/out.png", content_type="x")
    assert mark_interrupted() == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.error.startswith("interrupted")
    assert not partial.exists() and not partial.parent.exists()


def test_a_deleted_execution_takes_its_files_but_not_a_shared_input(user, settings):
    root = Path(settings.MEDIA_ROOT)
    first = execution(user, "succeeded", "inputs/2026/12/01/shared.png")
    rerun = execution(user, "succeeded", "inputs/2026/12/01/shared.png")
    shared = put(root / "inputs/2026/12/01/shared.png")
    outputs = [put(root / f"outputs/{first.id}/out.png"), put(root / f"outputs/{rerun.id}/out.png")]
    first.delete()
    assert shared.exists() and not outputs[0].exists() and outputs[1].exists()
    Execution.objects.filter(pk=rerun.pk).delete()  # a queryset delete sends the signal too
    assert not shared.exists() and not outputs[1].exists()
