"""Flow documents the tests share, written out independently of the code under test."""

import copy

# The example of CONTRACT §1, as a client would send it.
CONTRACT_EXAMPLE = {
    "name": "compress-and-watermark",
    "description": "optional free text",
    "graph": {
        "nodes": [
            {"id": "in", "type": "source", "params": {}, "position": {"x": 40, "y": 80}},
            {"id": "shrink", "type": "resize", "params": {"scale": 0.5}},
            {
                "id": "mark",
                "type": "watermark",
                "params": {"text": "© ACME", "opacity": 0.5, "position": "bottom-right"},
            },
            {"id": "out", "type": "output", "params": {"format": "jpeg", "quality": 85}},
        ],
        "edges": [{"from": "in", "to": "shrink"}, {"from": "shrink", "to": "mark"}, {"from": "mark", "to": "out"}],
    },
}


def example_graph() -> dict:
    """Return a fresh copy of the contract example's graph, free to edit."""
    return copy.deepcopy(CONTRACT_EXAMPLE["graph"])


def example_document(**changes) -> dict:
    """Return a fresh copy of the contract example document with some top-level fields replaced."""
    return {**copy.deepcopy(CONTRACT_EXAMPLE), **changes}
