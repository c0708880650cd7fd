"""`manage.py runflow FLOW INPUT -o OUTPUT` (CONTRACT §5): run a flow on a file, with a bar per node."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError

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


class Command(BaseCommand):
    help = "Run a flow (a saved flow's id or name, or a flow document JSON file) on an image file."

    def add_arguments(self, parser):
        parser.add_argument("flow", help="a saved flow's id or name, or the path of a flow document (JSON)")
        parser.add_argument("input", help="the image to process")
        parser.add_argument("-o", "--output", required=True, help="where to write the result image")
        parser.add_argument("--node", help="which output node to write, when the flow has several")
        parser.add_argument("--user", help="the owner of the saved flow, when several users have one of that name")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    def handle(self, *args, **options):
        try:
            graph, name = self._graph(options["flow"], options["user"])
            errors = validate_graph(
                graph, max_nodes=settings.TILEFLOW["MAX_NODES"], max_text=settings.TILEFLOW["MAX_WATERMARK_TEXT"]
            )
            if errors:
                raise CommandError(f"flow '{name}' is not valid: " + "; ".join(error.message for error in errors))
            outputs = [node["id"] for node in graph["nodes"] if node["type"] == "output"]
            node = options["node"] or outputs[0]
            if node not in outputs:
                raise CommandError(f"'{node}' is not an output node of flow '{name}' ({', '.join(outputs)})")
            source = Path(options["input"])
            if not source.is_file():
                raise CommandError(f"no such input file: {source}")
            asyncio.run(self._run(graph, node, source, Path(options["output"]), quiet=options["quiet"]))
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
        target.parent.mkdir(parents=True, exist_ok=True)
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
