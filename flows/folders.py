"""Folders for `runflow FLOW DIR -o OUTDIR`: which files are images, where each result goes, what `-o` may be."""

from __future__ import annotations

import os
from pathlib import Path

from flows.batch_results import entry_names

# The extensions a result of each output format may be written under; the first is the one chosen.
FORMAT_EXTENSIONS = {
    "jpeg": (".jpg", ".jpeg", ".jpe"),
    "png": (".png",),
    "webp": (".webp",),
    "avif": (".avif",),
}
IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".mpo", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif",
}  # fmt: skip


def output_format(graph: dict, node: str) -> str:
    """Return the format an output node writes (its step's default when its params leave it out)."""
    for entry in graph.get("nodes", []):
        if entry.get("id") == node:
            return entry.get("params", {}).get("format", "png")
    raise KeyError(node)


def checked_target(output: str, source: Path, format: str) -> Path:
    """Return where the result of one input file goes for `-o output` (CONTRACT §5).

    A folder (one that exists, or a name ending in "/", created when its parent exists) takes the
    result named after the input with the format's extension; a file name gets that extension when
    it has none. Raises ValueError when its extension names another format, its folder does not
    exist, or the result would replace the input.
    """
    allowed = FORMAT_EXTENSIONS.get(format, ())
    target = Path(output)
    if output.endswith(("/", os.sep)) or target.is_dir():
        if not target.is_dir():
            if target.exists():
                raise ValueError(f"-o {output}: not a folder")
            if not target.parent.is_dir():
                raise ValueError(f"-o {output}: no such folder {target.parent}; create it first")
            target.mkdir()
        target = target / (source.stem + (allowed[0] if allowed else source.suffix))
    suffix = target.suffix.lower()
    if not suffix and allowed:
        target = target.with_name(target.name + allowed[0])
    elif allowed and suffix not in allowed:
        right = target.with_suffix(allowed[0])
        raise ValueError(f"-o {target}: the flow writes {format.upper()}, not {suffix[1:].upper()}; name it {right}")
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"-o {target}: no such folder {folder}; create it first")
    if target.resolve() == source.resolve():
        raise ValueError(f"-o {output}: the result would replace the input {source}; name another file or folder")
    return target


def plural(count: int, noun: str) -> str:
    """Return "1 file", "2 files": a count with its noun."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def image_files(folder: Path, *, recursive: bool, skip: Path | None = None) -> tuple[list[Path], int]:
    """Return the images of `folder` by name (sorted, hidden files left out) and how many other files there were.

    With `recursive`, sub-folders too (symbolic links to folders are not followed); `skip` is a
    folder left out (the output folder, when it lies inside the input).
    """
    found, others = [], 0
    for root, folders, files in os.walk(folder):
        here = Path(root)
        folders[:] = sorted(
            name for name in folders if not name.startswith(".") and (skip is None or here / name != skip)
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
            else:
                others += 1
        if not recursive:
            break
    return found, others


def result_paths(
    relative: str, outputs: list[tuple[str, str]], outdir: Path, taken: set[str]
) -> list[tuple[str, Path]]:
    """Name one input's results under `outdir` as a batch's zip does: (node, path) per (node, format) output."""
    extensions = [(node, FORMAT_EXTENSIONS.get(format, ("",))[0]) for node, format in outputs]
    names = entry_names(relative, extensions, len(outputs) > 1, taken)
    return [(node, outdir / name) for (node, _), name in zip(outputs, names, strict=True)]
