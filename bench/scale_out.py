"""Scale-out measurements: one Redis hop per tile size and codec, and one flow in-process vs on workers.

`measure_scale_out()` returns plain numbers for bench/run.py to print; run this file alone for a
quick look (`.venv/bin/python bench/scale_out.py`). Everything it starts (redis-server, Daphne,
runworker processes) is its own, on free loopback ports, stopped by PID at the end.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

FLOW = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "soft", "type": "blur", "params": {"radius": 2}},
        {"id": "gray", "type": "grayscale", "params": {}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [{"from": "in", "to": "soft"}, {"from": "soft", "to": "gray"}, {"from": "gray", "to": "out"}],
}


def _photo(size: int):
    from bench.photos import make_photo

    return make_photo((size, size))


async def _hop(layer, payloads: list[dict[str, Any]], channel: str) -> float:
    """Send every payload through `layer` and receive it back; return the seconds it took."""
    started = time.perf_counter()

    async def receive_all() -> None:
        for _ in payloads:
            await layer.receive(channel)

    receiver = asyncio.create_task(receive_all())
    for payload in payloads:
        await layer.send(channel, payload)
    await receiver
    return time.perf_counter() - started


def measure_hops(redis_url: str, *, tile: int = 512, count: int = 60) -> list[dict[str, Any]]:
    """Return msg/s and MB/s of one hop for raw and zlib-ng tiles, on Redis and in memory."""
    from channels.layers import InMemoryChannelLayer
    from channels_redis.core import RedisChannelLayer

    from runtime.bridge import tile_from_wire, tile_to_wire
    from runtime.tiles import Box, Tile

    image = _photo(2 * tile).crop((tile // 2, tile // 2, tile // 2 + tile, tile // 2 + tile))
    results = []
    for mode in ("RGB", "RGBA"):
        source = Tile.from_image(Box(0, 0, tile, tile), image.convert(mode))
        for codec in ("none", "zlib-ng"):
            started = time.perf_counter()
            wire = tile_to_wire(source, codec)
            encode_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            tile_from_wire(wire)
            decode_ms = (time.perf_counter() - started) * 1000
            payloads = [{"type": "tile.task", "index": index, "tile": wire} for index in range(count)]
            for name, layer in (
                ("redis", RedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}], capacity=count)),
                ("memory", InMemoryChannelLayer(capacity=count)),
            ):
                if name == "memory" and codec != "none":
                    continue
                seconds = asyncio.run(_timed_hop(layer, payloads))
                results.append(
                    {
                        "layer": name,
                        "mode": mode,
                        "codec": codec,
                        "raw_bytes": len(source.data),
                        "wire_bytes": len(wire[2]),
                        "encode_ms": round(encode_ms, 2),
                        "decode_ms": round(decode_ms, 2),
                        "msg_per_s": round(count / seconds),
                        "raw_mb_per_s": round(count * len(source.data) / seconds / 1e6, 1),
                    }
                )
    return results


async def _timed_hop(layer, payloads) -> float:
    try:
        return await _hop(layer, payloads, f"tileflow.lane.bench{uuid.uuid4().hex[:8]}")
    finally:
        close = getattr(layer, "close_pools", None)
        if close is not None:
            await close()


async def _in_process_run(path: Path, output_dir: Path, tile: int) -> float:
    from channels.layers import InMemoryChannelLayer

    from runtime import events
    from runtime.conductor import Conductor, RunLimits, RunSpec
    from runtime.worker import TaskRunner, serve_lane

    layer = InMemoryChannelLayer(capacity=1000)
    runner = TaskRunner(2)
    worker = asyncio.create_task(serve_lane(layer, events.lane_channel("default"), runner))
    spec = RunSpec(str(uuid.uuid4()), FLOW, path, output_dir, RunLimits(tile_size=tile))
    started = time.perf_counter()
    try:
        status = await Conductor(spec, layer).run()
    finally:
        worker.cancel()
        runner.shutdown()
    if status != "succeeded":
        raise RuntimeError(f"in-process run {status}")
    return time.perf_counter() - started


def _cluster_runs(workdir: Path, image: bytes, tile: int, codec: str, runs: int) -> dict[str, Any]:
    from tests.support.cluster import Cluster

    cluster = Cluster(workdir, TILEFLOW_TILE_SIZE=str(tile), TILEFLOW_WIRE_CODEC=codec, TILEFLOW_LOG_LEVEL="WARNING")
    numbers: dict[str, Any] = {}
    try:
        cluster.setup()
        cluster.start_server()
        flow = cluster.create_flow("bench", FLOW)
        for workers in (1, 2):
            while len(cluster.live_workers()) < workers:
                cluster.start_worker(threads=1)
            seconds = []
            for _ in range(runs):
                started = time.perf_counter()
                body = cluster.wait(cluster.start_run(flow, image)["id"], timeout=300)
                seconds.append(time.perf_counter() - started)
                if body["status"] != "succeeded":
                    raise RuntimeError(f"{workers}-worker run {body['status']}: {body['error']}")
            numbers[workers] = {
                "seconds": min(seconds),
                "tiles": body["nodes"]["gray"]["total"],
                "by_worker": body["workers"],
            }
    finally:
        cluster.stop_all()
    return numbers


def measure_scale_out(*, size: int = 2048, tile: int = 512, runs: int = 2, codec: str = "none") -> dict[str, Any]:
    """Run FLOW on a size² photo in-process and on 1 and 2 runworker processes; measure one Redis hop.

    Returns {"hops": [...], "in_process": {...}, "workers": {1: {...}, 2: {...}}}, each run with its
    seconds (best of `runs`, wall clock from upload to the stored end) and tiles per second.
    """
    import django

    django.setup()
    from runtime.registry import load_builtin_steps

    load_builtin_steps()
    buffer = io.BytesIO()
    _photo(size).save(buffer, format="JPEG", quality=90)
    image = buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="tileflow-scale-") as scratch:
        workdir = Path(scratch)
        path = workdir / "photo.jpg"
        path.write_bytes(image)
        in_process = min(asyncio.run(_in_process_run(path, workdir / f"out{run}", tile)) for run in range(runs))
        (workdir / "cluster").mkdir()
        cluster = _cluster_runs(workdir / "cluster", image, tile, codec, runs)
        from tests.support.services import redis_server

        (workdir / "redis").mkdir()
        with redis_server(workdir / "redis") as redis:
            hops = measure_hops(redis.url, tile=tile)
    tiles = cluster[1]["tiles"]
    return {
        "image": f"{size}x{size} JPEG",
        "tile": tile,
        "codec": codec,
        "hops": hops,
        "in_process": {"seconds": round(in_process, 3), "tiles_per_s": round(tiles / in_process, 1)},
        "workers": {
            count: {
                "seconds": round(numbers["seconds"], 3),
                "tiles_per_s": round(numbers["tiles"] / numbers["seconds"], 1),
                "by_worker": numbers["by_worker"],
            }
            for count, numbers in cluster.items()
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure_scale_out(), indent=2))
