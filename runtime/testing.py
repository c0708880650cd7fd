"""Helpers for tests: deterministic noisy images, a synchronous tiled executor and a whole-image reference.

`run_flow` runs a flow the way the runtime does (plan, tasks in plan order, `run_chain` per task,
stores assembled from tiles) but in one thread; `reference_flow` applies the same operations to the
whole image with plain Pillow calls. Tests compare the two.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pyvips
from PIL import Image, ImageFilter, ImageOps

from runtime.chain import run_chain
from runtime.images import normalize
from runtime.plan import Plan, compile_plan
from runtime.registry import ImageInfo, load_builtin_steps
from runtime.steps.resize import RESAMPLE, VIPS_KERNEL, resized_size, runs_on_libvips
from runtime.steps.watermark import Watermark, apply_watermark_whole
from runtime.tiles import Size, Tile

load_builtin_steps()


def make_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Return a deterministic image of random noise over gradients (smooth images hide resampling bugs)."""
    rng = random.Random(seed)
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    ramp = Image.linear_gradient("L").resize((width, height))
    gradient = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90).resize((width, height)), ramp))
    rgb = Image.blend(noise, gradient, 0.5)
    alpha = Image.blend(Image.frombytes("L", (width, height), rng.randbytes(width * height)), ramp, 0.7)
    if mode == "RGB":
        return rgb
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), alpha))
    if mode == "LA":
        return Image.merge("LA", (rgb.convert("L"), alpha))
    if mode == "P":
        return rgb.quantize(64)
    if mode in ("I;16", "I"):
        wide = rgb.convert("L").convert("I").point(lambda v: v * 257)
        return wide if mode == "I" else wide.convert("I;16")
    return rgb.convert(mode)


def chain(*types_and_params: tuple[str, dict[str, Any]], output: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a linear graph source → steps → output, nodes named by type and position."""
    nodes = [{"id": "in", "type": "source", "params": {}}]
    for position, (type_name, params) in enumerate(types_and_params):
        nodes.append({"id": f"{type_name}{position}", "type": type_name, "params": params})
    nodes.append({"id": "out", "type": "output", "params": output or {}})
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"nodes": nodes, "edges": edges}


def prepare_source(image: Image.Image) -> Image.Image:
    """Return the source as every step sees it: EXIF orientation applied, in its working mode."""
    return normalize(ImageOps.exif_transpose(image))


def run_flow(graph: dict[str, Any], image: Image.Image, *, tile_size: int = 512) -> dict[str, Image.Image]:
    """Run `graph` tile by tile in plan order and return the image each output node would encode."""
    source = prepare_source(image)
    plan = compile_plan(graph, ImageInfo(Size(*source.size), source.mode), tile_size=tile_size)
    stores = {plan.source: source}
    done: dict[str, set[int]] = {plan.source: set(range(len(plan.grid(plan.source))))}
    for task in plan.tasks:
        segment = plan.segments[task.segment]
        missing = set(plan.needed_tiles(task)) - done[segment.input_store]
        if missing:
            raise AssertionError(f"task {task} runs before tiles {sorted(missing)} of {segment.input_store}")
        store = stores[segment.input_store]
        tile = Tile.from_image(task.region, store.crop(task.region.as_tuple()))
        steps = [(node_id, _step(plan, node_id)) for node_id in segment.chain]
        result = run_chain(steps, task.boxes, tile)
        target = segment.chain[-1]
        if target not in stores:
            info = plan.nodes[target].output
            stores[target] = Image.new(info.mode, (info.size.width, info.size.height))
            done[target] = set()
        for written in result.tiles:
            stores[target].paste(written.image(), (written.box.x0, written.box.y0))
        done[target].add(task.index)
    return {output: stores[plan.nodes[output].inputs[0]] for output in plan.outputs}


def _step(plan: Plan, node_id: str):
    step = plan.nodes[node_id].step
    if step is None:
        raise AssertionError(f"node {node_id} has no step to run")
    return step


def reference_flow(graph: dict[str, Any], image: Image.Image, *, pillow_only: bool = False) -> dict[str, Image.Image]:
    """Apply the flow's operations to the whole image with plain library calls; return every node's image.

    Each step's reference is the whole-image result of the library that runs it (libvips for the
    resizes `runs_on_libvips` names), or Pillow's for every step with `pillow_only`.
    """
    nodes = {node["id"]: node for node in graph["nodes"]}
    inputs = {edge["to"]: edge["from"] for edge in graph["edges"]}
    results: dict[str, Image.Image] = {}
    pending = list(nodes)
    while pending:
        node_id = next(n for n in pending if n not in inputs or inputs[n] in results)
        pending.remove(node_id)
        node = nodes[node_id]
        before = results.get(inputs.get(node_id, ""))
        results[node_id] = _reference_step(node["type"], node.get("params") or {}, before, image, pillow_only)
    return results


def _reference_step(
    type_name: str, params: dict[str, Any], image: Image.Image | None, source: Image.Image, pillow_only: bool
):
    if type_name == "source":
        return prepare_source(source)
    assert image is not None
    if type_name == "output":
        return image
    if type_name == "grayscale":
        return image.convert("LA").convert("RGBA") if image.mode == "RGBA" else image.convert("L")
    if type_name == "rotate":
        return image.rotate(-params["angle"], expand=True)
    if type_name == "blur":
        return image.filter(ImageFilter.GaussianBlur(params.get("radius", 2.0)))
    if type_name == "watermark":
        return apply_watermark_whole(image, Watermark.Params(**params))
    if type_name == "resize":
        size = resized_size(Size(*image.size), params.get("scale"), params.get("width"), params.get("height"))
        resample_name, engine = params.get("resample", "lanczos"), params.get("engine", "auto")
        if not pillow_only and runs_on_libvips(resample_name, image.mode, Size(*image.size), size, engine):
            return libvips_resize_whole(image, size, params.get("resample", "lanczos"))
        resample = RESAMPLE[params.get("resample", "lanczos")]
        if params.get("scale") is not None:
            width, height = image.size
            scale = params["scale"]
            half_up = (max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5)))  # as libvips
            return image.resize(half_up, resample)
        result = image.copy()
        result.thumbnail((params.get("width") or image.width, params.get("height") or image.height), resample, None)
        return result
    raise ValueError(f"no reference for step type {type_name!r}")


def libvips_resize_whole(image: Image.Image, size: Size, resample: str = "lanczos") -> Image.Image:
    """Return libvips' own resize of a whole L or RGB image to `size`."""
    bands = len(image.getbands())
    whole = pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, bands, "uchar")
    resized = whole.resize(
        size.width / image.width, vscale=size.height / image.height, kernel=VIPS_KERNEL[resample], gap=0.0
    )
    return Image.frombytes(image.mode, (resized.width, resized.height), resized.write_to_memory())
