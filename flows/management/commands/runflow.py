"""`manage.py runflow` (CONTRACT §5, §7): a flow on an image file with a bar per node, or over a folder into another.

`runflow FLOW DIR -o OUTDIR [--recursive]` runs the files of DIR a few at a time (as a batch's items
run), writes each result under OUTDIR with the input's relative path and the output's extension,
keeps going past broken files, and exits non-zero naming how many failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError

from flows import folders
from flows.batch_runner import window
from flows.models import Flow
from flows.validation import validate_graph
from runtime import api as runtime

BAR_WIDTH = 28


class ProgressBars:
    """One bar per node: redrawn in place on a terminal, a line per 25% step otherwise."""

    def __init__(self, stream, nodes: list[str], *, live: bool) -> None:
        self.stream = stream
        self.nodes = nodes
        self.live = live
        self.counts: dict[str, tuple[int, int]] = {node: (0, 0) for node in nodes}
        self.reported: dict[str, int] = {}
        self.drawn = False
        self.width = max(len(node) for node in nodes)

    def _bar(self, node: str) -> str:
        done, total = self.counts[node]
        filled = int(BAR_WIDTH * done / total) if total else 0
        percent = f"{100 * done // total:3d}%" if total else "  -%"
        return f"{node:<{self.width}} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent} {done}/{total}"

    def progress(self, node: str, done: int, total: int) -> None:
        if node not in self.counts:
            return
        self.counts[node] = (done, total)
        if self.live:
            self._redraw()
            return
        quarter = 4 * done // total if total else 0
        if quarter > self.reported.get(node, 0):
            self.reported[node] = quarter
            self.stream.write(self._bar(node) + "\n")

    def _redraw(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{len(self.nodes)}F")
        self.stream.write("".join(f"\x1b[2K{self._bar(node)}\n" for node in self.nodes))
        self.stream.flush()
        self.drawn = True

    async def status(self, status: str, error: str | None) -> None:
        if self.live:
            self._redraw()


class FilesBar:
    """One bar for a folder: files done of all, failures counted; redrawn in place on a terminal."""

    def __init__(self, stream, total: int, *, live: bool, quiet: bool) -> None:
        self.stream = stream
        self.total = total
        self.live = live and not quiet
        self.quiet = quiet
        self.done = 0
        self.failed = 0
        self.reported = 0
        self.started = time.monotonic()

    def line(self) -> str:
        filled = int(BAR_WIDTH * self.done / self.total) if self.total else BAR_WIDTH
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * self.done // max(self.total, 1):3d}% "
            f"{self.done}/{folders.plural(self.total, 'file')}{failed} ({rate:.1f}/s)"
        )

    def note(self, text: str) -> None:
        """Print a line (a failure) above the bar."""
        if self.live:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self._draw()

    def advance(self, *, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if self.live:
            self._draw()
        elif not self.quiet and (10 * self.done // self.total > self.reported or self.done == self.total):
            self.reported = 10 * self.done // self.total
            self.stream.write(self.line() + "\n")

    def _draw(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")


class Command(BaseCommand):
    help = (
        "Run a flow (a saved flow's id or name, or a flow document JSON file) on an image file, "
        "or on every image of a folder into another folder."
    )

    def add_arguments(self, parser):
        parser.add_argument("flow", help="a saved flow's id or name, or the path of a flow document (JSON)")
        parser.add_argument("input", help="the image to process, or a folder of images")
        parser.add_argument(
            "-o", "--output", required=True, help="where to write the result image (for a folder: the output folder)"
        )
        parser.add_argument("--node", help="which output node to write, when the flow has several")
        parser.add_argument("--user", help="the owner of the saved flow, when several users have one of that name")
        parser.add_argument("--recursive", "-r", action="store_true", help="with a folder: its sub-folders too")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    def handle(self, *args, **options):
        if options["verbosity"] < 2:
            # The bars are the output: the runtime's start-up notes would land above them.
            logging.getLogger("tileflow").setLevel(logging.WARNING)
        try:
            graph, name = self._graph(options["flow"], options["user"])
            errors = validate_graph(
                graph, max_nodes=settings.TILEFLOW["MAX_NODES"], max_text=settings.TILEFLOW["MAX_WATERMARK_TEXT"]
            )
            if errors:
                raise CommandError(f"flow '{name}' is not valid: " + "; ".join(error.message for error in errors))
            outputs = [node["id"] for node in graph["nodes"] if node["type"] == "output"]
            node = options["node"]
            if node is not None and node not in outputs:
                raise CommandError(f"'{node}' is not an output node of flow '{name}' ({', '.join(outputs)})")
            source = Path(options["input"])
            if source.is_dir():
                nodes = [node] if node else outputs
                failed = asyncio.run(
                    self._run_folder(graph, nodes, source, Path(options["output"]), options["recursive"], options)
                )
                if failed:
                    raise CommandError(failed)
                return
            if not source.is_file():
                raise CommandError(f"no such input file or folder: {source}")
            node = node or outputs[0]
            try:
                target = folders.checked_target(options["output"], source, folders.output_format(graph, node))
            except ValueError as error:
                raise CommandError(str(error)) from error
            asyncio.run(self._run(graph, node, source, target, quiet=options["quiet"]))
        except CommandError as error:
            # One line, as scripts expect; Django would add "CommandError:" and its own formatting.
            self.stderr.write(f"runflow: {error}")
            sys.exit(1)

    def _graph(self, reference: str, username: str | None) -> tuple[dict, str]:
        path = Path(reference)
        if reference.endswith(".json") or path.is_file():
            try:
                document = json.loads(path.read_text())
            except OSError as error:
                raise CommandError(f"cannot read {path}: {error.strerror}") from error
            except json.JSONDecodeError as error:
                raise CommandError(f"{path} is not JSON: {error}") from error
            if not isinstance(document, dict):
                raise CommandError(f"{path} is not a flow document")
            graph = document.get("graph", document)
            return graph, document.get("name", path.stem)
        flows = Flow.objects.all()
        if username:
            flows = flows.filter(owner__username=username)
        try:
            matches = list(flows.filter(pk=uuid.UUID(reference)))
        except ValueError:
            matches = list(flows.filter(name=reference))
        if not matches:
            raise CommandError(f"no flow with id or name '{reference}'")
        if len(matches) > 1:
            raise CommandError(f"{len(matches)} flows are named '{reference}'; give its id or --user")
        return matches[0].graph, matches[0].name

    async def _run(self, graph: dict, node: str, source: Path, target: Path, *, quiet: bool) -> None:
        node_ids = [entry["id"] for entry in graph["nodes"]]
        bars = () if quiet else (ProgressBars(self.stdout, node_ids, live=self.stdout.isatty()),)
        try:
            header = await asyncio.to_thread(runtime.probe, source, settings.TILEFLOW["MAX_PIXELS"])
        except runtime.ImageRejected as rejected:
            raise CommandError(f"{source}: {rejected}") from rejected
        del header
        with tempfile.TemporaryDirectory(prefix=".runflow-", dir=target.parent) as work:
            spec = runtime.RunSpec(
                execution=str(uuid.uuid4()),
                graph=graph,
                input_path=source,
                output_dir=Path(work),
                limits=runtime.limits(),
            )
            conductor = await runtime.start(spec, owner="runflow", observers=bars)
            await conductor.finished.wait()
            if conductor.status != "succeeded":
                raise CommandError(conductor.error or f"the run was {conductor.status}")
            shutil.move(conductor.outputs[node].path, target)
        if not quiet:
            self.stdout.write(f"wrote {target} ({target.stat().st_size} bytes)")

    async def _run_folder(
        self, graph: dict, nodes: list[str], source: Path, outdir: Path, recursive: bool, options: dict
    ) -> str | None:
        """Run every image of `source` into `outdir`; return why the command fails (how many failed), or None."""
        if outdir.exists() and not outdir.is_dir():
            raise CommandError(f"-o {outdir}: not a folder (the input is a folder)")
        if not outdir.exists():
            if not outdir.parent.is_dir():
                raise CommandError(f"-o {outdir}: no such folder {outdir.parent}; create it first")
            outdir.mkdir()
        if outdir.resolve() == source.resolve():
            raise CommandError(f"-o {outdir}: the output folder must not be the input folder")
        skip = outdir.resolve() if outdir.resolve().is_relative_to(source.resolve()) else None
        files, others = folders.image_files(source.resolve(), recursive=recursive, skip=skip)
        if not files:
            where = "or its sub-folders " if recursive else ""
            raise CommandError(f"no images in {source} {where}(by their extension)")
        formats = [(node, folders.output_format(graph, node)) for node in nodes]
        taken: set[str] = set()
        plan = [
            (path, relative, folders.result_paths(relative, formats, outdir, taken))
            for path in files
            for relative in [path.relative_to(source.resolve()).as_posix()]
        ]
        bar = FilesBar(self.stdout, len(plan), live=self.stdout.isatty(), quiet=options["quiet"])
        if others and not options["quiet"]:
            bar.note(
                f"{folders.plural(len(files), 'image')} in {source}; {folders.plural(others, 'other file')} left alone"
            )
        pending = iter(plan)
        with tempfile.TemporaryDirectory(prefix=".runflow-", dir=outdir) as work:

            async def worker() -> None:
                for path, relative, targets in pending:
                    error = await self._run_one(graph, path, targets, Path(work))
                    if error is not None:
                        bar.note(f"failed: {relative}: {error}")
                    bar.advance(failed=error is not None)

            await asyncio.gather(*(worker() for _ in range(window())))
        bar.close()
        written = bar.done - bar.failed
        if not options["quiet"]:
            self.stdout.write(f"wrote the results of {written} of {folders.plural(bar.total, 'file')} to {outdir}")
        return f"{bar.failed} of {folders.plural(bar.total, 'file')} failed (listed above)" if bar.failed else None

    async def _run_one(self, graph: dict, path: Path, targets: list[tuple[str, Path]], work: Path) -> str | None:
        """Run one file and move its results to `targets`; return why it failed, or None."""
        try:
            header = await asyncio.to_thread(runtime.probe, path, settings.TILEFLOW["MAX_PIXELS"])
        except runtime.ImageRejected as rejected:
            return str(rejected)
        except OSError as error:
            return f"cannot be read: {error.strerror or error}"
        execution = str(uuid.uuid4())
        spec = runtime.RunSpec(
            execution=execution,
            graph=graph,
            input_path=path,
            output_dir=work / execution,
            limits=runtime.limits(),
            header=header,
        )
        conductor = await runtime.start(spec, owner="runflow")
        await conductor.finished.wait()
        try:
            if conductor.status != "succeeded":
                return conductor.error or f"the run was {conductor.status}"
            for node, target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(conductor.outputs[node].path, target)
        except OSError as error:
            return f"the result cannot be written: {error.strerror or error}"
        finally:
            shutil.rmtree(work / execution, ignore_errors=True)
        return None
