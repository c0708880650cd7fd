"""The files executions own under MEDIA_ROOT, and removing those no execution owns any more.

An execution owns its input (`inputs/…`, shared with its reruns) and the folder of its outputs
(`outputs/<execution id>/`). Only those two trees are ever touched here: a batch's stored inputs
(`batches/…`) and anything else under MEDIA_ROOT belong to their own modules. A file is removed only
when no execution refers to it, checked twice (the second time just before it goes), and when it is
older than a grace period: another server sharing MEDIA_ROOT may be storing an upload whose row it
has not committed yet.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from django.conf import settings

from flows.models import Execution, ExecutionOutput

log = logging.getLogger("tileflow.media")

GRACE_SECONDS = 120.0
ENDED_WITHOUT_RESULT = (Execution.Status.FAILED, Execution.Status.CANCELLED)


def outputs_dir(execution_id) -> Path:
    return Path(settings.MEDIA_ROOT) / "outputs" / str(execution_id)


def remove_outputs(execution_id) -> None:
    """Delete an execution's output folder and everything in it (a run that did not succeed, or a deleted one)."""
    shutil.rmtree(outputs_dir(execution_id), ignore_errors=True)


def remove_previews(execution_id) -> None:
    """Delete the node previews made when someone inspected the execution's nodes (flows/previews.py)."""
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "previews" / str(execution_id), ignore_errors=True)


def remove_input(execution: Execution) -> None:
    """Delete a deleted execution's input under `inputs/`, unless another execution (a rerun) still uses it."""
    name = execution.input_file.name
    if not name or not name.startswith("inputs/"):
        return
    if Execution.objects.filter(input_file=name).exclude(pk=execution.pk).exists():
        return
    (Path(settings.MEDIA_ROOT) / name).unlink(missing_ok=True)


def _owner_of_output(path: Path, media: Path) -> str | None:
    """Return the execution id an output file's folder is named after (outputs/<id>/…), if any."""
    parts = path.relative_to(media / "outputs").parts
    return parts[0] if len(parts) > 1 else None


def _kept_outputs() -> tuple[set[str], set[str]]:
    """Return the output files rows refer to, and the ids of executions whose output folder is theirs to keep."""
    referenced = {name for name in ExecutionOutput.objects.values_list("file", flat=True) if name}
    # Queued and running executions write files before any row names them; succeeded ones keep theirs.
    keeping = Execution.objects.exclude(status__in=ENDED_WITHOUT_RESULT)
    return referenced, {str(pk) for pk in keeping.values_list("pk", flat=True)}


def _owned(relative: str, media: Path) -> bool:
    """Tell, asking the database now, whether an execution owns the file `relative` (to MEDIA_ROOT)."""
    if relative.startswith("inputs/"):
        return Execution.objects.filter(input_file=relative).exists()
    if ExecutionOutput.objects.filter(file=relative).exists():
        return True
    try:
        key = uuid.UUID(_owner_of_output(media / relative, media) or "")
    except ValueError:
        return False
    return Execution.objects.filter(pk=key).exclude(status__in=ENDED_WITHOUT_RESULT).exists()


def execution_deleted(sender, instance: Execution, **kwargs) -> None:
    """Remove a deleted execution's files (a post_delete receiver, connected in FlowsConfig.ready)."""
    remove_outputs(instance.pk)
    remove_previews(instance.pk)
    remove_input(instance)


def remove_orphans(*, grace_seconds: float = GRACE_SECONDS, dry_run: bool = False) -> list[tuple[Path, int]]:
    """Delete files under inputs/ and outputs/ that no execution owns, then the folders they leave empty.

    Return what was deleted (or with `dry_run` would be), with sizes. A file younger than `grace_seconds`
    stays, whoever owns it.
    """
    media = Path(settings.MEDIA_ROOT)
    inputs = set(Execution.objects.exclude(input_file="").values_list("input_file", flat=True))
    referenced, keeping = _kept_outputs()
    cutoff = time.time() - grace_seconds
    removed: list[tuple[Path, int]] = []
    for top in ("inputs", "outputs"):
        root = media / top
        if not root.is_dir():
            continue
        for folder, _, files in os.walk(root, topdown=False):
            for name in files:
                path = Path(folder) / name
                relative = path.relative_to(media).as_posix()
                if top == "inputs":
                    owned = relative in inputs
                else:
                    owned = relative in referenced or _owner_of_output(path, media) in keeping
                try:
                    if owned or path.is_symlink() or path.stat().st_mtime >= cutoff or _owned(relative, media):
                        continue
                    size = path.stat().st_size
                    if not dry_run:
                        path.unlink()
                except FileNotFoundError:
                    continue
                removed.append((path, size))
            if Path(folder) != root and not dry_run:
                try:
                    os.rmdir(folder)  # only when empty
                except OSError:
                    pass
    if removed:
        log.warning("removed %d file(s) under %s that no execution owns", len(removed), media)
    return removed
