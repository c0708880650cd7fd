"""CPU per stage of the seed chain, one thread: Tileflow's tile path against libvips' whole-image operations.

    VIPS_CONCURRENCY=1 .venv/bin/python bench/stages.py [ROUNDS]

Decodes the 24 MP bench photo with `runtime.decode` (into its reused target), resizes it tile by tile with
the resize step (tiles read in place from the target, as in a run), watermarks the tiles and encodes with
Pillow; then the same with libvips (sequential decode, `resize`, the text composite, `jpegsave`), each
stage timed alone with `process_time`. For docs/benchmarks.md's "where the time goes".
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import pyvips  # noqa: E402
from baselines import WATERMARK_FONT_SIZE, WATERMARK_TEXT, vips_watermark  # noqa: E402
from photos import ensure_photo  # noqa: E402
from PIL import Image  # noqa: E402

from runtime.decode import decode_rows, probe  # noqa: E402
from runtime.geometry import tile_grid  # noqa: E402
from runtime.registry import ImageInfo, StepContext, load_builtin_steps  # noqa: E402
from runtime.steps.resize import Resize  # noqa: E402
from runtime.steps.watermark import Watermark  # noqa: E402
from runtime.tiles import Size, Tile  # noqa: E402

SOURCE, OUTPUT = Size(6000, 4000), Size(3000, 2000)


def cpu(work: Callable[[], object]) -> tuple[float, object]:
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def tileflow_round(data: bytes, stages: dict[str, list[float]]) -> None:
    header = probe(io.BytesIO(data), 10**9)
    seconds, rows = cpu(lambda: list(decode_rows(data, header, [0, SOURCE.height])))
    stages["Tileflow decode"].append(seconds)
    target = rows[-1][2]
    resize = Resize(Resize.Params(scale=0.5), ImageInfo(SOURCE, "RGB"))
    watermark = Watermark(
        Watermark.Params(text=WATERMARK_TEXT, font_size=WATERMARK_FONT_SIZE), ImageInfo(OUTPUT, "RGB")
    )
    result = Image.new("RGB", (OUTPUT.width, OUTPUT.height))
    resized = marked = 0.0
    for box in tile_grid(OUTPUT, 512):
        written: list[Tile] = []
        region = Tile.of_parent(resize.needs(box), target)
        context = StepContext("shrink", box, resize.input, resize.output_info(), written.append)
        resized += cpu(lambda region=region, context=context: resize.process(region, context))[0]
        out: list[Tile] = []
        context = StepContext("mark", box, watermark.input, watermark.output_info(), out.append)
        marked += cpu(lambda written=written, context=context: watermark.process(written[0], context))[0]
        result.paste(out[0].view(), (box.x0, box.y0))
    stages["Tileflow resize (tiles)"].append(resized)
    stages["Tileflow watermark (tiles)"].append(marked)
    stages["Tileflow encode"].append(cpu(lambda: result.save(io.BytesIO(), "JPEG", quality=85))[0])
    whole = target.copy()
    size = (OUTPUT.width, OUTPUT.height)
    stages["Pillow resize (whole)"].append(cpu(lambda: whole.resize(size, Image.Resampling.LANCZOS))[0])


def libvips_round(data: bytes, stages: dict[str, list[float]]) -> None:
    seconds, decoded = cpu(lambda: pyvips.Image.new_from_buffer(data, "", access="sequential").write_to_memory())
    stages["libvips decode"].append(seconds)
    whole = pyvips.Image.new_from_memory(decoded, SOURCE.width, SOURCE.height, 3, "uchar")
    seconds, resized = cpu(lambda: whole.resize(0.5, kernel="lanczos3").write_to_memory())
    stages["libvips resize"].append(seconds)
    small = pyvips.Image.new_from_memory(resized, OUTPUT.width, OUTPUT.height, 3, "uchar")
    seconds, marked = cpu(lambda: vips_watermark(small).write_to_memory())
    stages["libvips watermark"].append(seconds)
    final = pyvips.Image.new_from_memory(marked, OUTPUT.width, OUTPUT.height, 3, "uchar")
    stages["libvips encode"].append(cpu(lambda: final.jpegsave_buffer(Q=85))[0])


def main() -> None:
    load_builtin_steps()
    pyvips.cache_set_max(0)
    data = ensure_photo("24mp").read_bytes()
    stages: dict[str, list[float]] = {}
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        for one_round in (tileflow_round, libvips_round):
            collected: dict[str, list[float]] = {}
            for name in (
                "Tileflow decode",
                "Tileflow resize (tiles)",
                "Tileflow watermark (tiles)",
                "Tileflow encode",
                "Pillow resize (whole)",
                "libvips decode",
                "libvips resize",
                "libvips watermark",
                "libvips encode",
            ):
                collected[name] = stages.setdefault(name, [])
            one_round(data, collected)
    for name, values in stages.items():
        runs = ", ".join(f"{value * 1000:.0f}" for value in values)
        print(f"{name:28s} {statistics.median(values) * 1000:6.0f} ms CPU  ({runs})")


if __name__ == "__main__":
    main()
