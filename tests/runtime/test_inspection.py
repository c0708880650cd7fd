"""Inspecting a node: its own image is the whole-image result of the steps up to it (CONTRACT §2)."""

import pytest

from runtime.inspection import UnknownNode, node_image
from runtime.testing import make_image, reference_flow

GRAPH = {
    "nodes": [
        {"id": "in", "type": "source", "params": {}},
        {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
        {"id": "mark", "type": "watermark", "params": {"text": "© 水印", "position": "center"}},
        {"id": "turn", "type": "rotate", "params": {"angle": 90}},
        {"id": "grey", "type": "grayscale", "params": {}},
        {"id": "big", "type": "output", "params": {"format": "png"}},
        {"id": "small", "type": "output", "params": {"format": "png"}},
    ],
    "edges": [
        {"from": "in", "to": "shrink"},
        {"from": "shrink", "to": "mark"},
        {"from": "mark", "to": "turn"},
        {"from": "turn", "to": "big"},
        {"from": "shrink", "to": "grey"},
        {"from": "grey", "to": "small"},
    ],
}


@pytest.mark.parametrize("node", ["in", "shrink", "mark", "turn", "grey", "big", "small"])
def test_each_node_gives_its_own_image(node):
    source = make_image(700, 420, seed=5)
    expected = reference_flow(GRAPH, source)[node]
    got = node_image(GRAPH, node, source)
    assert (got.mode, got.size) == (expected.mode, expected.size)
    assert got.tobytes() == expected.tobytes()


def test_an_unknown_node_is_refused():
    with pytest.raises(UnknownNode):
        node_image(GRAPH, "nope", make_image(64, 64))
