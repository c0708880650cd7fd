"""Profile one Tileflow run in-process: time to first output byte, total, and the Pillow script next to it.

Runs a flow through `runtime.api.start` on the in-memory channel layer with the embedded workers (what
the console does without Redis), on a cached bench photo, and prints per-repeat TTFB
(`conductor.record.first_output_at - started_at`), total, peak RSS growth, and the sequential Pillow chain's
time in the same process. Meant for iterating on the engine, not for the published numbers
(those are measured over HTTP by bench/measure.py).

    .venv/bin/python bench/profile_run.py --photo 24mp --chain resize-watermark --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("TILEFLOW_REDIS_URL", "")

import django  # noqa: E402

django.setup()

from baselines import WATERMARK_FONT_SIZE, WATERMARK_OPACITY, WATERMARK_TEXT, pillow_chain  # noqa: E402
from channels.layers import InMemoryChannelLayer  # noqa: E402
from photos import ensure_photo  # noqa: E402

from runtime import api  # noqa: E402
from runtime.conductor import RunSpec  # noqa: E402

TIMELINE = False


def chain_graph(name: str, output_format: str, fast_decode: bool) -> dict:
    """Return the graph of a named bench chain: source → steps → output."""
    watermark = {
        "text": WATERMARK_TEXT,
        "opacity": WATERMARK_OPACITY,
        "font_size": WATERMARK_FONT_SIZE,
        "position": "bottom-right",
    }
    steps = {
        "resize-watermark": [("resize", {"scale": 0.5}), ("watermark", watermark)],
        "thumbor": [("resize", {"width": 3000, "height": 2000}), ("watermark", watermark)],
        "gray1": [("grayscale", {})],
        "gray8": [("grayscale", {})] * 8,
        "copy": [],
    }[name]
    source_params = {"fast_decode": True} if fast_decode else {}
    nodes = [{"id": "in", "type": "source", "params": source_params}]
    nodes += [{"id": f"s{i}", "type": kind, "params": params} for i, (kind, params) in enumerate(steps)]
    quality = {"quality": 85} if output_format == "jpeg" else {}
    nodes.append({"id": "out", "type": "output", "params": {"format": output_format, **quality}})
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": nodes, "edges": edges}


async def run_once(layer, graph: dict, source: Path, out_dir: Path) -> tuple[float, float, float, str]:
    """Run `graph` on `source`; return (first byte, first pixel band, total, status) in seconds from the start."""
    execution = uuid.uuid4().hex
    spec = RunSpec(execution, graph, source, out_dir / execution, api.limits())
    started = time.perf_counter()
    conductor = await api.start(spec, owner="profile", layer=layer)
    first_byte = None
    # A 1 ms poll of the output's size: what a client following the file would see, give or take a poll.
    while not conductor.finished.is_set():
        if first_byte is None and any(writer.size for writer in conductor.outputs.values()):
            first_byte = time.perf_counter() - started
        await asyncio.sleep(0.001)
    total = time.perf_counter() - started
    first_band = total
    if conductor.record.first_output_at is not None and conductor.record.started_at is not None:
        first_band = (conductor.record.first_output_at - conductor.record.started_at).total_seconds()
    status = conductor.status if not conductor.error else f"{conductor.status}: {conductor.error}"
    if TIMELINE:
        for node, state in conductor.snapshot()["nodes"].items():
            print(f"    {node:>5}: {state['started_ms']}..{state['finished_ms']} ms, busy {state['busy_ms']} ms")
    return first_byte or total, first_band, total, status


async def profile(args: argparse.Namespace) -> None:
    source = Path(args.source) if args.source else ensure_photo(args.photo)
    graph = chain_graph(args.chain, args.format, args.fast_decode)
    layer = InMemoryChannelLayer(capacity=1000)
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = Path(scratch)
        # Tileflow and Pillow alternate, so a machine shared with others slows both alike.
        for repeat in range(args.repeat):
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            cpu = time.process_time()
            first_byte, first_band, total, status = await run_once(layer, graph, source, out_dir)
            cpu = time.process_time() - cpu
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
            line = (
                f"#{repeat} tileflow: first byte {first_byte:.3f} s  first band {first_band:.3f} s  "
                f"total {total:.3f} s  peak+{grown / 1024:.0f} MB  {status}"
            )
            if args.cpu:
                line += f"  cpu {cpu:.3f} s"
            if args.pillow and args.chain == "resize-watermark":
                started = time.perf_counter()
                pillow_chain(source, args.format)
                pillow = time.perf_counter() - started
                line += f"  | pillow {pillow:.3f} s  ttfb/pillow {first_byte / pillow:.2f}"
                line += f"  total/pillow {total / pillow:.2f}"
            print(line, flush=True)
        if args.concurrent > 1:
            started = time.perf_counter()
            results = await asyncio.gather(*(run_once(layer, graph, source, out_dir) for _ in range(args.concurrent)))
            wall = time.perf_counter() - started
            print(f"tileflow x{args.concurrent} concurrent: {wall:.3f} s wall, statuses {[r[3] for r in results]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="24mp", choices=["2mp", "24mp", "96mp"])
    parser.add_argument("--source", help="an image file instead of a bench photo")
    parser.add_argument(
        "--chain", default="resize-watermark", choices=["resize-watermark", "thumbor", "gray1", "gray8", "copy"]
    )
    parser.add_argument("--format", default="jpeg", choices=["jpeg", "png"])
    parser.add_argument("--fast-decode", action="store_true", help="set the source's fast_decode param")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=1, help="then run this many at once")
    parser.add_argument("--no-pillow", dest="pillow", action="store_false")
    parser.add_argument("--timeline", action="store_true", help="print each node's start, end and busy time")
    parser.add_argument(
        "--pillow-resize", action="store_true", help="resize on Pillow, as before libvips ran it (an A/B switch)"
    )
    parser.add_argument("--cpu", action="store_true", help="print each repeat's CPU seconds (all threads)")
    args = parser.parse_args()
    if args.pillow_resize:
        from runtime.steps import resize

        resize.runs_on_libvips = lambda *_: False
    global TIMELINE
    TIMELINE = args.timeline
    asyncio.run(profile(args))


if __name__ == "__main__":
    main()
