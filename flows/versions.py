"""A flow's saved versions: recorded on every save, compared with the one before, restored as a new save."""

from __future__ import annotations

from typing import Any

from flows.models import Flow, FlowVersion


def record(flow: Flow, *, restored_from: int | None = None) -> FlowVersion:
    """Store the flow's current state as its version `flow.version`."""
    return FlowVersion.objects.create(
        flow=flow,
        version=flow.version,
        name=flow.name,
        description=flow.description,
        graph=flow.graph,
        restored_from=restored_from,
    )


def _nodes(graph: Any) -> dict[str, dict[str, Any]]:
    nodes = graph.get("nodes", []) if isinstance(graph, dict) else []
    return {node["id"]: node for node in nodes if isinstance(node, dict) and isinstance(node.get("id"), str)}


def _edges(graph: Any) -> set[tuple[str, str]]:
    edges = graph.get("edges", []) if isinstance(graph, dict) else []
    return {(edge.get("from"), edge.get("to")) for edge in edges if isinstance(edge, dict)}


def _type(nodes: dict[str, dict[str, Any]], key: str) -> Any:
    return nodes[key].get("type")


def changes(before: FlowVersion | None, after: FlowVersion) -> dict[str, Any]:
    """Return what `after` changed from `before`: nodes, params and edges added, removed or changed.

    Node positions and groups are layout, not listed. The first version lists its nodes as added.
    """
    old_nodes = _nodes(before.graph) if before else {}
    new_nodes = _nodes(after.graph)
    changed = []
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        old, new = old_nodes[node_id], new_nodes[node_id]
        old_params, new_params = old.get("params") or {}, new.get("params") or {}
        entry: dict[str, Any] = {"node": node_id}
        if old.get("type") != new.get("type"):
            entry["type"] = {"from": old.get("type"), "to": new.get("type")}
        added = {key: new_params[key] for key in sorted(new_params.keys() - old_params.keys())}
        removed = {key: old_params[key] for key in sorted(old_params.keys() - new_params.keys())}
        altered = {
            key: {"from": old_params[key], "to": new_params[key]}
            for key in sorted(old_params.keys() & new_params.keys())
            if old_params[key] != new_params[key]
        }
        for name, part in (("params_added", added), ("params_removed", removed), ("params_changed", altered)):
            if part:
                entry[name] = part
        if len(entry) > 1:
            changed.append(entry)
    old_edges, new_edges = _edges(before.graph) if before else set(), _edges(after.graph)
    result: dict[str, Any] = {
        "nodes_added": [{"node": key, "type": _type(new_nodes, key)} for key in sorted(new_nodes - old_nodes.keys())],
        "nodes_removed": [{"node": key, "type": _type(old_nodes, key)} for key in sorted(old_nodes - new_nodes.keys())],
        "nodes_changed": changed,
        "edges_added": [{"from": a, "to": b} for a, b in sorted(new_edges - old_edges, key=str)],
        "edges_removed": [{"from": a, "to": b} for a, b in sorted(old_edges - new_edges, key=str)],
    }
    if before is not None and before.name != after.name:
        result["renamed"] = {"from": before.name, "to": after.name}
    if before is not None and before.description != after.description:
        result["description_changed"] = True
    return result


def history(flow: Flow) -> list[dict[str, Any]]:
    """Return the flow's versions, newest first, each with what it changed from the one before."""
    rows = list(FlowVersion.objects.filter(flow=flow).order_by("version"))
    entries = []
    previous = None
    for row in rows:
        entries.append(
            {
                "version": row.version,
                "name": row.name,
                "created_at": row.created_at,
                "restored_from": row.restored_from,
                "current": row.version == flow.version,
                "changes": changes(previous, row),
            }
        )
        previous = row
    return entries[::-1]
