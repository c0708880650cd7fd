"""What one node of a graph produces, for inspecting a run: the node's own steps applied to the whole image.

CONTRACT §2 holds every tiled result equal to the whole-image result of the same operation, so running
the node's chain of steps once over the whole input (through `run_chain`, as a worker runs a task) gives
exactly the image the node produced in the run, without the run keeping every intermediate image.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps

from runtime.chain import assemble, run_chain
from runtime.images import normalize
from runtime.plan import compile_plan
from runtime.registry import ImageInfo
from runtime.tiles import Size, Tile


class UnknownNode(KeyError):
    """The graph has no node of that id."""


def node_image(graph: dict[str, Any], node_id: str, image: Image.Image) -> Image.Image:
    """Return the image `node_id` produces from `image` (an output node: the image it encodes)."""
    source = normalize(ImageOps.exif_transpose(image))
    plan = compile_plan(graph, ImageInfo(Size(*source.size), source.mode))
    if node_id not in plan.nodes:
        raise UnknownNode(node_id)
    path = [node_id]
    while plan.nodes[path[0]].inputs:
        path.insert(0, plan.nodes[path[0]].inputs[0])
    current = source
    for step_id in path:
        node = plan.nodes[step_id]
        if node.step is None:  # the source is the input; an output encodes what it is given
            continue
        out_box = node.output.size.box
        result = run_chain([(step_id, node.step)], (out_box,), Tile.from_image(node.input.size.box, current))
        current = assemble(list(result.tiles), out_box, step_id).image()
    return current
