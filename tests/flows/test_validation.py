"""Graph validation: every CONTRACT §1 rule, named errors, and no exception whatever the input."""

import copy
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from flows.validation import GraphError, validate_graph
from runtime.registry import Step, StepParams, StepRegistry, registry, step
from tests.flows.documents import example_graph

EXAMPLE = example_graph()


def check(graph, *, max_nodes=200, max_text=500, steps=None) -> list[tuple[str | None, str]]:
    return [(e.node, e.message) for e in validate_graph(graph, max_nodes=max_nodes, max_text=max_text, steps=steps)]


def edited(**changes) -> dict:
    """Return the example graph with some nodes' fields replaced (node id → dict of fields)."""
    graph = copy.deepcopy(EXAMPLE)
    for node in graph["nodes"]:
        node.update(changes.get(node["id"], {}))
    return graph


def chain(*nodes: tuple[str, str, dict]) -> dict:
    """Return a straight-line graph of (id, type, params) nodes."""
    return {
        "nodes": [{"id": i, "type": t, "params": p} for i, t, p in nodes],
        "edges": [{"from": a[0], "to": b[0]} for a, b in itertools.pairwise(nodes)],
    }


def test_contract_example_is_valid():
    assert check(EXAMPLE) == []


def test_fan_out_to_two_outputs_is_valid():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "thumb", "type": "output", "params": {"format": "png"}})
    graph["edges"].append({"from": "shrink", "to": "thumb"})
    assert check(graph) == []


def test_graph_error_as_dict():
    assert GraphError("a", "m").as_dict() == {"node": "a", "message": "m"}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ([], [(None, "graph must be an object with 'nodes' and 'edges', not a list")]),
        ("x", [(None, "graph must be an object with 'nodes' and 'edges', not a string")]),
        (
            {"edges": []},
            [
                (None, "graph 'nodes' is missing"),
                (None, "graph has no source node"),
                (None, "graph has no output node"),
            ],
        ),
        (
            {"nodes": {}, "edges": []},
            [
                (None, "graph 'nodes' must be a list, not an object"),
                (None, "graph has no source node"),
                (None, "graph has no output node"),
            ],
        ),
    ],
)
def test_shape_errors(graph, expected):
    assert check(graph) == expected


def test_edges_must_be_a_list():
    graph = copy.deepcopy(EXAMPLE)
    graph["edges"] = "in->out"
    errors = check(graph)
    assert errors[0] == (None, "graph 'edges' must be a list, not a string")


def test_missing_edges_means_no_edges():
    graph = chain(("in", "source", {}), ("out", "output", {}))
    del graph["edges"]
    assert check(graph) == [
        ("out", "node 'out' is not reachable from the source"),
        ("in", "node 'in' cannot reach an output"),
    ]


def test_cycle_is_named_with_its_path():
    graph = chain(("in", "source", {}), ("a", "grayscale", {}), ("b", "blur", {}), ("out", "output", {}))
    graph["edges"].append({"from": "b", "to": "a"})
    assert ("a", "cycle: a → b → a") in check(graph)


def test_cycle_away_from_the_source():
    graph = chain(("in", "source", {}), ("out", "output", {}))
    graph["nodes"] += [{"id": "x", "type": "grayscale"}, {"id": "y", "type": "grayscale"}]
    graph["edges"] += [{"from": "x", "to": "y"}, {"from": "y", "to": "x"}]
    errors = check(graph)
    assert ("x", "cycle: x → y → x") in errors
    assert ("x", "node 'x' is not reachable from the source") in errors
    assert ("y", "node 'y' cannot reach an output") in errors


def test_self_loop_is_a_cycle():
    graph = chain(("in", "source", {}), ("g", "grayscale", {}), ("out", "output", {}))
    graph["edges"].append({"from": "g", "to": "g"})
    assert ("g", "cycle: g → g") in check(graph)


def test_two_sources():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "in2", "type": "source"})
    graph["edges"].append({"from": "in2", "to": "out"})
    errors = check(graph)
    assert (None, "graph has 2 source nodes: 'in', 'in2'") in errors
    assert ("out", "node 'out': an output takes exactly one input, but 2 nodes feed it: 'mark', 'in2'") in errors


def test_no_source_and_no_output():
    assert check(chain(("g", "grayscale", {}))) == [
        (None, "graph has no source node"),
        (None, "graph has no output node"),
    ]


def test_no_output():
    graph = chain(("in", "source", {}), ("g", "grayscale", {}))
    assert check(graph) == [(None, "graph has no output node")]


def test_unknown_step_type_does_not_break_the_structure_checks():
    assert check(edited(shrink={"type": "sharpen"})) == [("shrink", "node 'shrink': unknown step type 'sharpen'")]


def test_orphan_node():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "x", "type": "grayscale"})
    assert check(graph) == [
        ("x", "node 'x' is not reachable from the source"),
        ("x", "node 'x' cannot reach an output"),
    ]


def test_dead_end_branch_cannot_reach_an_output():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "side", "type": "blur", "params": {"radius": 1}})
    graph["edges"].append({"from": "in", "to": "side"})
    assert check(graph) == [("side", "node 'side' cannot reach an output")]


def test_edge_to_a_missing_node():
    graph = copy.deepcopy(EXAMPLE)
    graph["edges"].append({"from": "mark", "to": "zz"})
    assert check(graph) == [(None, "edge 3 ('mark' → 'zz'): node 'zz' does not exist")]


@pytest.mark.parametrize("edge", [5, {"from": "in"}, {"from": "in", "to": 3}, None])
def test_malformed_edge(edge):
    graph = copy.deepcopy(EXAMPLE)
    graph["edges"].append(edge)
    errors = check(graph)
    assert len(errors) == 1
    assert errors[0][1].startswith("edge 3 must be an object with string 'from' and 'to'")


def test_repeated_edge():
    graph = copy.deepcopy(EXAMPLE)
    graph["edges"].append({"from": "in", "to": "shrink"})
    assert check(graph) == [("in", "edge 3 ('in' → 'shrink') repeats edge 0")]


def test_source_takes_no_input_and_output_feeds_nothing():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "more", "type": "grayscale"})
    graph["edges"] += [{"from": "out", "to": "more"}, {"from": "more", "to": "in"}]
    errors = check(graph)
    assert ("in", "node 'in': a source takes no inputs, but 'more' feeds it") in errors
    assert ("out", "node 'out': an output feeds nothing, but it has edges to 'more'") in errors
    assert ("in", "cycle: in → shrink → mark → out → more → in") in errors


def test_step_with_two_inputs():
    graph = copy.deepcopy(EXAMPLE)
    graph["edges"].append({"from": "in", "to": "mark"})
    assert check(graph) == [
        ("mark", "node 'mark': a step takes exactly one input, but 2 nodes feed it: 'shrink', 'in'")
    ]


def test_a_duplicated_id_is_the_one_error_of_an_otherwise_wired_graph():
    graph = {
        "nodes": [
            {"id": "in", "type": "source"},
            {"id": "a", "type": "grayscale"},
            {"id": "a", "type": "grayscale"},
            {"id": "out", "type": "output"},
        ],
        "edges": [{"from": "in", "to": "a"}, {"from": "a", "to": "out"}],
    }
    assert check(graph) == [("a", "node id 'a' is used by 2 nodes")]  # no unreachable 'out', no stranded 'in'


def test_duplicate_and_malformed_ids():
    graph = copy.deepcopy(EXAMPLE)
    graph["nodes"].append({"id": "mark", "type": "grayscale"})
    graph["nodes"].append({"id": "bad id!", "type": "grayscale"})
    graph["nodes"].append({"id": 7, "type": "grayscale"})
    graph["nodes"].append("node")
    errors = check(graph)
    assert ("mark", "node id 'mark' is used by 2 nodes") in errors
    assert ("bad id!", "node 'bad id!': id must be 1 to 64 letters, digits, '_' or '-'") in errors
    assert (None, "node 6: 'id' must be a string, not a number") in errors
    assert (None, "node 7 must be an object, not a string") in errors
    long_id = "a" * 65
    assert (long_id, f"node '{long_id}': id must be 1 to 64 letters, digits, '_' or '-'") in check(
        chain(("in", "source", {}), (long_id, "grayscale", {}), ("out", "output", {}))
    )


def test_type_and_params_and_position_shapes():
    errors = check(
        edited(shrink={"type": None}, mark={"params": [1]}, out={"position": {"x": "1", "y": 2}}),
    )
    assert ("shrink", "node 'shrink': 'type' must be a string, not null") in errors
    assert ("mark", "node 'mark': params must be an object, not a list") in errors
    assert ("out", "node 'out': position must be an object with numbers 'x' and 'y'") in errors


@pytest.mark.parametrize(
    ("node", "params", "message"),
    [
        ("mark", {"text": "x", "opacity": 7}, "node 'mark': opacity must be between 0 and 1"),
        ("mark", {"text": "x", "opacity": "0.5"}, "node 'mark': opacity must be a number"),
        ("mark", {"text": "x", "color": "red"}, "node 'mark': color must be a colour written #rrggbb, like '#ffffff'"),
        (
            "mark",
            {"text": "x", "position": "middle"},
            "node 'mark': position must be one of 'top-left', "
            "'top-right', 'bottom-left', 'bottom-right', 'center', 'tiled'",
        ),
        ("mark", {"text": ""}, "node 'mark': text must not be empty"),
        ("mark", {"opacity": 0.2}, "node 'mark': text is required"),
        ("mark", {"text": 5}, "node 'mark': text must be a string"),
        ("mark", {"text": "x", "font_size": 0}, "node 'mark': font_size must be between 1 and 2000"),
        ("mark", {"text": "x", "foo": 1}, "node 'mark': unknown param 'foo'"),
        ("shrink", {"scale": 0}, "node 'shrink': scale must be greater than 0 and at most 1"),
        ("shrink", {}, "node 'shrink': give either scale, or width and/or height"),
        ("shrink", {"scale": 0.5, "width": 10}, "node 'shrink': give either scale, or width and/or height, not both"),
        ("shrink", {"width": 10.5}, "node 'shrink': width must be a whole number"),
        ("shrink", {"width": True}, "node 'shrink': width must be a whole number"),
        ("out", {"format": "gif"}, "node 'out': format must be one of 'png', 'jpeg', 'webp', 'avif'"),
        ("out", {"quality": 101}, "node 'out': quality must be between 1 and 100"),
        ("in", {"anything": 1}, "node 'in': unknown param 'anything'"),
    ],
)
def test_param_errors(node, params, message):
    assert check(edited(**{node: {"params": params}})) == [(node, message)]


def test_rotate_by_45():
    graph = chain(("in", "source", {}), ("r", "rotate", {"angle": 45}), ("out", "output", {}))
    assert check(graph) == [("r", "node 'r': angle must be one of 90, 180, 270")]


def test_rotate_without_angle():
    graph = chain(("in", "source", {}), ("r", "rotate", {}), ("out", "output", {}))
    assert check(graph) == [("r", "node 'r': angle is required")]


def test_every_error_at_once():
    graph = edited(mark={"params": {"text": "x", "opacity": 7, "color": "red"}}, out={"type": "sharpen"})
    graph["nodes"].append({"id": "x", "type": "grayscale"})
    messages = [message for _, message in check(graph)]
    assert messages == [
        "node 'mark': opacity must be between 0 and 1",
        "node 'mark': color must be a colour written #rrggbb, like '#ffffff'",
        "node 'out': unknown step type 'sharpen'",
        "graph has no output node",
        "node 'x' is not reachable from the source",
    ]


def test_node_limit():
    graph = chain(("in", "source", {}), *[(f"g{i}", "grayscale", {}) for i in range(4)], ("out", "output", {}))
    assert check(graph, max_nodes=6) == []
    assert check(graph, max_nodes=5) == [(None, "graph has 6 nodes; the limit is 5")]


def test_watermark_text_limit_replaces_the_schema_message():
    graph = edited(mark={"params": {"text": "字" * 30}})
    assert check(graph, max_text=30) == []
    assert check(graph, max_text=29) == [("mark", "node 'mark': text is 30 characters long; the limit is 29")]
    graph = edited(mark={"params": {"text": "x" * 501}})
    assert check(graph, max_text=1000) == [("mark", "node 'mark': text must be at most 500 characters")]
    assert check(graph, max_text=10) == [("mark", "node 'mark': text is 501 characters long; the limit is 10")]


def test_params_must_be_json():
    graph = edited(mark={"params": {"text": "x", "opacity": float("nan")}})
    assert check(graph) == [("mark", "node 'mark': params must hold only JSON values (no NaN or Infinity)")]


def test_third_party_step_with_other_bounds_and_model_errors():
    steps = StepRegistry()
    for builtin in ("source", "output"):
        steps.register(registry.get(builtin))

    @step("levels", label="Levels", category="Colour", target=steps)
    class Levels(Step):
        """Stretch the levels."""

        class Params(StepParams):
            low: int = Field(0, ge=0, lt=255)
            gamma: float = Field(1.0, gt=0)
            names: list[str] = Field(default_factory=list, max_length=2)
            strict: bool = False

    graph = chain(("in", "source", {}), ("l", "levels", {}), ("out", "output", {}))
    assert check(graph, steps=steps) == []
    graph["nodes"][1]["params"] = {"low": 255, "gamma": -1, "names": ["a", "b", "c"], "strict": "yes"}
    assert check(graph, steps=steps) == [
        ("l", "node 'l': low must be at least 0 and less than 255"),
        ("l", "node 'l': gamma must be greater than 0"),
        ("l", "node 'l': names must have at most 2 items"),
        ("l", "node 'l': strict must be true or false"),
    ]
    graph["nodes"][1]["params"] = {"names": [1]}
    assert check(graph, steps=steps) == [("l", "node 'l': names.0 must be a string")]


# Anything JSON can hold, biased towards graph-like shapes so the deep checks run too.
ids = st.sampled_from(["in", "a", "b", "out", "x y", "", "a" * 70]) | st.text(max_size=5)
types = st.sampled_from(["source", "output", "resize", "watermark", "rotate", "grayscale", "blur", "sharpen"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
param_values = st.fixed_dictionaries(
    {},
    optional={
        "scale": json_values | st.floats(0, 2),
        "angle": st.sampled_from([90, 45, "90"]),
        "text": st.text(max_size=20),
        "opacity": st.floats(-1, 2),
        "color": st.sampled_from(["#ffffff", "red"]),
        "format": st.sampled_from(["png", "gif"]),
        "width": json_values,
    },
)
nodes = st.fixed_dictionaries(
    {},
    optional={
        "id": ids | json_values,
        "type": types | json_values,
        "params": param_values | json_values,
        "position": st.fixed_dictionaries({"x": json_values, "y": st.floats()}) | json_values,
    },
)
edges = st.fixed_dictionaries({}, optional={"from": ids | json_values, "to": ids | json_values}) | json_values
graphs = (
    st.fixed_dictionaries(
        {},
        optional={
            "nodes": st.lists(nodes | json_values, max_size=8) | json_values,
            "edges": st.lists(edges, max_size=10) | json_values,
        },
    )
    | json_values
)


@settings(max_examples=400, deadline=None)
@given(graph=graphs, max_nodes=st.integers(0, 10), max_text=st.integers(0, 30))
def test_any_input_validates_or_yields_named_errors(graph, max_nodes, max_text):
    errors = validate_graph(graph, max_nodes=max_nodes, max_text=max_text)
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error, GraphError)
        assert error.node is None or isinstance(error.node, str)
        assert isinstance(error.message, str) and error.message


@settings(max_examples=200, deadline=None)
@given(
    middle=st.lists(st.sampled_from(["grayscale", "blur", "rotate"]), max_size=6),
    extra_edges=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=4),
)
def test_generated_chains_are_valid_exactly_when_acyclic_single_input(middle, extra_edges):
    params = {"grayscale": {}, "blur": {"radius": 1}, "rotate": {"angle": 90}}
    graph = chain(
        ("in", "source", {}), *[(f"n{i}", kind, params[kind]) for i, kind in enumerate(middle)], ("out", "output", {})
    )
    names = [node["id"] for node in graph["nodes"]]
    added = {(names[a % len(names)], names[b % len(names)]) for a, b in extra_edges}
    existing = {(edge["from"], edge["to"]) for edge in graph["edges"]}
    graph["edges"] += [{"from": a, "to": b} for a, b in sorted(added - existing)]
    errors = validate_graph(graph, max_nodes=200, max_text=500)
    # A chain stays valid only if no edge was added: every added edge gives some node a second input,
    # feeds the source, or leaves the output.
    assert (errors == []) == (added <= existing)
