"""Per-node previews of a run, made when someone inspects a node and kept beside the run's files.

The image is what the node produced (`runtime.api.node_image` on the stored input and the frozen graph),
downscaled to fit PREVIEW_EDGE; its full size and mode are kept with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from PIL import Image

from flows.models import Execution
from runtime import api as runtime

PREVIEW_EDGE = 480


class NoPreview(Exception):
    """Why a node of an execution has no preview (no stored input, no such node, a run that failed)."""


def preview_dir(execution: Execution) -> Path:
    return Path(settings.MEDIA_ROOT) / "previews" / str(execution.id)


def node_preview(execution: Execution, node: str) -> tuple[Path, dict[str, Any]]:
    """Return the preview file of `node` and its facts (width, height, mode), making them the first time."""
    if not any(isinstance(n, dict) and n.get("id") == node for n in execution.graph.get("nodes", [])):
        raise NoPreview(f"no node '{node}' in this execution")
    if execution.status != Execution.Status.SUCCEEDED:
        raise NoPreview(f"the execution {execution.status}; nodes are inspected after a successful run")
    folder = preview_dir(execution)
    image_path, facts_path = folder / f"{node}.png", folder / f"{node}.json"
    if image_path.exists() and facts_path.exists():
        return image_path, json.loads(facts_path.read_text())
    if not execution.input_file or not execution.input_file.storage.exists(execution.input_file.name):
        raise NoPreview("the input of this execution is no longer stored")
    with execution.input_file.open("rb") as file, Image.open(file) as source:
        result = runtime.node_image(execution.graph, node, source)
    facts = {"node": node, "width": result.width, "height": result.height, "mode": result.mode}
    small = result.copy()
    small.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE), Image.Resampling.LANCZOS)
    folder.mkdir(parents=True, exist_ok=True)
    partial = image_path.with_suffix(".part")
    small.save(partial, "PNG")
    partial.replace(image_path)
    facts_path.write_text(json.dumps(facts))
    return image_path, facts
