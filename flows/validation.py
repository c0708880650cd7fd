"""Graph validation (CONTRACT §1): every rule checked, every error reported at once, each naming its node.

Pure: no database, no settings. Callers pass the limits (`settings.TILEFLOW`) and may pass another
step registry (tests do).
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from runtime.registry import COLOR_PATTERN, StepParams, StepRegistry, registry

NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

SOURCE, OUTPUT = "source", "output"


@dataclass(frozen=True, slots=True)
class GraphError:
    """One thing wrong with a graph: the node it concerns (or None for the whole graph) and what."""

    node: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"node": self.node, "message": self.message}


def validate_graph(graph: Any, *, max_nodes: int, max_text: int, steps: StepRegistry | None = None) -> list[GraphError]:
    """Return every error of `graph` (empty when valid); never raise, whatever `graph` holds."""
    return _GraphCheck(graph, max_nodes=max_nodes, max_text=max_text, steps=steps or registry).run()


def quote(value: Any) -> str:
    """Show a value from a document in a message: strings in quotes, anything else short."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON at all (say, a circular list): still name it
        text = type(value).__name__
    return text if len(text) <= 80 else text[:77] + "…"


class _GraphCheck:
    def __init__(self, graph: Any, *, max_nodes: int, max_text: int, steps: StepRegistry) -> None:
        self.graph = graph
        self.max_nodes = max_nodes
        self.max_text = max_text
        self.steps = steps
        self.errors: list[GraphError] = []
        # id → type ("" when not a string) of every node with a unique string id: the graph's structure.
        self.types: dict[str, str] = {}
        self.duplicates: set[str] = set()
        self.declared: list[tuple[str | None, str]] = []  # (id, type) of every node, duplicates included

    def error(self, node: str | None, message: str) -> None:
        self.errors.append(GraphError(node, message))

    def run(self) -> list[GraphError]:
        if not isinstance(self.graph, Mapping):
            self.error(None, f"graph must be an object with 'nodes' and 'edges', not {_kind(self.graph)}")
            return self.errors
        nodes = self.graph.get("nodes")
        edges = self.graph.get("edges", [])
        if not isinstance(nodes, list):
            what = "is missing" if nodes is None else f"must be a list, not {_kind(nodes)}"
            self.error(None, f"graph 'nodes' {what}")
            nodes = []
        if not isinstance(edges, list):
            self.error(None, f"graph 'edges' must be a list, not {_kind(edges)}")
            edges = []
        if len(nodes) > self.max_nodes:
            self.error(None, f"graph has {len(nodes)} nodes; the limit is {self.max_nodes}")
        self.check_nodes(nodes)
        links = self.check_edges(edges)
        self.check_structure(links)
        return self.errors

    def check_nodes(self, nodes: list[Any]) -> None:
        seen: dict[str, int] = {}
        for index, node in enumerate(nodes):
            if not isinstance(node, Mapping):
                self.error(None, f"node {index} must be an object, not {_kind(node)}")
                continue
            node_id = node.get("id")
            type_name = node.get("type")
            self.declared.append((node_id if isinstance(node_id, str) else None, type_name))
            if not isinstance(node_id, str):
                self.error(None, f"node {index}: 'id' must be a string, not {_kind(node_id)}")
                continue
            if not NODE_ID.fullmatch(node_id):
                self.error(node_id, f"node {_show_id(node_id)}: id must be 1 to 64 letters, digits, '_' or '-'")
            seen[node_id] = seen.get(node_id, 0) + 1
            self.types[node_id] = type_name if isinstance(type_name, str) else ""
            self.check_node(node_id, node)
        for node_id, count in seen.items():
            if count > 1:
                self.duplicates.add(node_id)
                self.types.pop(node_id, None)
                self.error(node_id, f"node id {_show_id(node_id)} is used by {count} nodes")

    def check_node(self, node_id: str, node: Mapping[str, Any]) -> None:
        name = _show_id(node_id)
        position = node.get("position")
        if position is not None and not _is_point(position):
            self.error(node_id, f"node {name}: position must be an object with numbers 'x' and 'y'")
        type_name = node.get("type")
        if not isinstance(type_name, str):
            self.error(node_id, f"node {name}: 'type' must be a string, not {_kind(type_name)}")
            return
        step_class = self.steps.get(type_name)
        if step_class is None:
            self.error(node_id, f"node {name}: unknown step type {quote(type_name)}")
            return
        params = node.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            self.error(node_id, f"node {name}: params must be an object, not {_kind(params)}")
            return
        for message in self.check_params(step_class.Params, params):
            self.error(node_id, f"node {name}: {message}")

    def check_params(self, params_class: type[StepParams], params: Mapping[str, Any]) -> list[str]:
        messages = []
        text = params.get("text")
        text_too_long = isinstance(text, str) and len(text) > self.max_text
        if text_too_long:
            messages.append(f"text is {len(text)} characters long; the limit is {self.max_text}")
        try:
            # Params arrive as JSON: validate them as JSON, strictly, so "0.5" is not a number.
            payload = json.dumps(params, allow_nan=False)
        except (TypeError, ValueError):
            return [*messages, "params must hold only JSON values (no NaN or Infinity)"]
        try:
            params_class.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                if text_too_long and error["type"] == "string_too_long" and tuple(error["loc"]) == ("text",):
                    continue
                messages.append(describe_error(error, params_class.model_fields))
        return messages

    def check_edges(self, edges: list[Any]) -> list[tuple[str, str]]:
        """Check each edge; return the usable ones (both ends existing and unambiguous), once each."""
        links: list[tuple[str, str]] = []
        first_index: dict[tuple[str, str], int] = {}
        for index, edge in enumerate(edges):
            ends = (edge.get("from"), edge.get("to")) if isinstance(edge, Mapping) else None
            if ends is None or not all(isinstance(end, str) for end in ends):
                self.error(None, f"edge {index} must be an object with string 'from' and 'to', not {quote(edge)}")
                continue
            source, target = ends
            label = f"edge {index} ({_show_id(source)} → {_show_id(target)})"
            usable = True
            for end in dict.fromkeys(ends):
                if end in self.duplicates:
                    usable = False
                elif end not in self.types:
                    self.error(None, f"{label}: node {_show_id(end)} does not exist")
                    usable = False
            if not usable:
                continue
            if (source, target) in first_index:
                self.error(source, f"{label} repeats edge {first_index[(source, target)]}")
                continue
            first_index[(source, target)] = index
            links.append((source, target))
        return links

    def check_structure(self, links: list[tuple[str, str]]) -> None:
        nodes = list(self.types)
        inputs: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        outputs: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        for source, target in links:
            outputs[source].append(target)
            inputs[target].append(source)
        sources = [node_id for node_id in nodes if self.types[node_id] == SOURCE]
        sinks = [node_id for node_id in nodes if self.types[node_id] == OUTPUT]
        declared_sources = [node_id or "?" for node_id, kind in self.declared if kind == SOURCE]
        if len(declared_sources) > 1:
            self.error(None, f"graph has {len(declared_sources)} source nodes: {_id_list(declared_sources)}")
        elif not declared_sources:
            self.error(None, "graph has no source node")
        if not any(kind == OUTPUT for _, kind in self.declared):
            self.error(None, "graph has no output node")
        for node_id in nodes:
            self.check_degree(node_id, inputs[node_id], outputs[node_id])
        for cycle in _cycles(nodes, outputs):
            self.error(cycle[0], "cycle: " + " → ".join([*cycle, cycle[0]]))
        if self.duplicates:
            return  # which node an edge to a duplicated id means is unknown: so is what reaches what through it
        if sources:
            reached = _reach(sources, outputs)
            for node_id in nodes:
                if node_id not in reached:
                    self.error(node_id, f"node {_show_id(node_id)} is not reachable from the source")
        if sinks:
            reaching = _reach(sinks, inputs)
            for node_id in nodes:
                if node_id not in reaching:
                    self.error(node_id, f"node {_show_id(node_id)} cannot reach an output")

    def check_degree(self, node_id: str, inputs: list[str], outputs: list[str]) -> None:
        """Check how many edges enter and leave a node; a missing input shows as unreachability."""
        name, kind = _show_id(node_id), self.types[node_id]
        if kind == SOURCE:
            if inputs:
                self.error(node_id, f"node {name}: a source takes no inputs, but {_id_list(inputs)} feeds it")
        elif len(inputs) > 1:
            what = "an output" if kind == OUTPUT else "a step"
            self.error(
                node_id,
                f"node {name}: {what} takes exactly one input, but {len(inputs)} nodes feed it: {_id_list(inputs)}",
            )
        if kind == OUTPUT and outputs:
            self.error(node_id, f"node {name}: an output feeds nothing, but it has edges to {_id_list(outputs)}")


_TYPE_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "json_invalid": "must be valid JSON",
}


def describe_error(error: Mapping[str, Any], fields: Mapping[str, FieldInfo] | None = None) -> str:
    """Say in words what a pydantic error means for the field it names."""
    loc = [str(part) for part in error.get("loc", ())]
    field = ".".join(loc)
    info = (fields or {}).get(loc[0]) if len(loc) == 1 else None
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if not loc:
        return _strip_prefix(str(error.get("msg", "is not valid")))
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"unknown param {quote(field)}" if len(loc) == 1 else f"unknown key {quote(field)}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"{field} must be {_bounds(info, ctx)}"
    if kind in {"literal_error", "enum"}:
        return f"{field} must be one of {_choices(info, ctx)}"
    if kind == "string_pattern_mismatch":
        if _is_color(info, ctx.get("pattern")):
            return f"{field} must be a colour written #rrggbb, like '#ffffff'"
        return f"{field} must match the pattern {ctx.get('pattern')}"
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return f"{field} must not be empty" if minimum == 1 else f"{field} must be at least {minimum} characters"
    if kind == "string_too_long":
        return f"{field} must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"{field} must have at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"{field} must have at most {ctx.get('max_length')} items"
    if kind in _TYPE_MESSAGES:
        return f"{field} {_TYPE_MESSAGES[kind]}"
    message = _strip_prefix(str(error.get("msg", "is not valid")))
    return f"{field}: {message[:1].lower()}{message[1:]}"


def _strip_prefix(message: str) -> str:
    """Drop pydantic's "Value error, " prefix: a model validator's message is already a sentence."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _bounds(info: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    """Describe every bound of a field, so one message says the whole allowed range."""
    bounds: dict[str, Any] = {}
    for item in info.metadata if info is not None else ():
        for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
            if isinstance(item, cls):
                bounds[key] = getattr(item, key)
    if not bounds:
        bounds = {key: ctx[key] for key in ("ge", "gt", "le", "lt") if key in ctx}
    low = ("ge", bounds["ge"]) if "ge" in bounds else ("gt", bounds["gt"]) if "gt" in bounds else None
    high = ("le", bounds["le"]) if "le" in bounds else ("lt", bounds["lt"]) if "lt" in bounds else None
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"between {_num(low[1])} and {_num(high[1])}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    return " and ".join(f"{words[key]} {_num(value)}" for key, value in (bound for bound in (low, high) if bound))


def _num(value: Any) -> str:
    return f"{value:_}".replace("_", " ") if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _choices(info: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    values = _literal_values(info.annotation) if info is not None else []
    if values:
        return ", ".join(str(value) if isinstance(value, int | float) else quote(value) for value in values)
    return str(ctx.get("expected", "the allowed values"))


def _literal_values(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    values: list[Any] = []
    for arg in get_args(annotation):
        values.extend(_literal_values(arg))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
    return values


def _is_color(info: FieldInfo | None, pattern: Any) -> bool:
    extra = info.json_schema_extra if info is not None else None
    return pattern == COLOR_PATTERN or (isinstance(extra, Mapping) and extra.get("format") == "color")


def _kind(value: Any) -> str:
    """Name a JSON value's kind, as a reader of the document would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _show_id(node_id: str) -> str:
    return quote(node_id)


def _id_list(ids: Iterable[str]) -> str:
    return ", ".join(_show_id(node_id) for node_id in ids)


def _is_point(value: Any) -> bool:
    return isinstance(value, Mapping) and all(_is_number(value.get(axis)) for axis in ("x", "y"))


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _reach(starts: list[str], neighbours: Mapping[str, list[str]]) -> set[str]:
    seen = set(starts)
    stack = list(starts)
    while stack:
        for nxt in neighbours[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _cycles(nodes: list[str], outputs: Mapping[str, list[str]]) -> list[list[str]]:
    """Return one cycle through each strongly connected component that has one (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = outputs[node]
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    position = {node: order for order, node in enumerate(nodes)}
    cycles = []
    for component in components:
        start = min(component, key=position.__getitem__)
        if len(component) > 1 or start in outputs[start]:
            cycles.append(_cycle_through(start, set(component), outputs))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _cycle_through(start: str, members: set[str], outputs: Mapping[str, list[str]]) -> list[str]:
    """Return the shortest path from `start` back to itself inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in outputs[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]
