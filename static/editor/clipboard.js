// Copy and paste of nodes as flow JSON: what goes on the clipboard is a small flow document (its nodes,
// the links among them, the groups wholly inside), so a paste works in another tab, another flow, or a
// text editor. localStorage keeps the last copy too, for browsers that refuse the clipboard.
import { isValidNodeId } from "./canvas.js";

export const CLIPBOARD_KIND = "tileflow/nodes";
const STORAGE_KEY = "tileflow.clipboard";

export function selectionDocument(canvas, ids) {
  const graph = canvas.toGraph();
  const chosen = new Set(ids);
  return {
    kind: CLIPBOARD_KIND,
    graph: {
      nodes: graph.nodes.filter((n) => chosen.has(n.id)),
      edges: graph.edges.filter((e) => chosen.has(e.from) && chosen.has(e.to)),
      groups: (graph.groups || []).filter((g) => g.nodes.every((id) => chosen.has(id))),
    },
  };
}

export function remember(text) {
  try {
    localStorage.setItem(STORAGE_KEY, text);
  } catch {
    // private mode: the system clipboard still has it
  }
}

export function remembered() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

// The graph in pasted text: our own copy, a whole flow document, or a bare graph; null for anything else.
export function parseClipboard(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  const graph = data?.graph && typeof data.graph === "object" ? data.graph : data;
  if (!graph || !Array.isArray(graph.nodes)) return null;
  return {
    nodes: graph.nodes.filter((n) => n && typeof n === "object" && typeof n.type === "string"),
    edges: Array.isArray(graph.edges) ? graph.edges.filter((e) => e && typeof e === "object") : [],
    groups: Array.isArray(graph.groups) ? graph.groups : [],
  };
}

// Add the graph's nodes to the canvas, offset so they never land on nodes already there; returns the new ids
// and the nodes left out (a second source, an unknown step type).
export function pasteInto(canvas, graph, { offset = 40 } = {}) {
  const hasSource = [...canvas.nodes.values()].some((n) => n.type === "source");
  const idMap = new Map();
  const skipped = [];
  const placed = graph.nodes.filter((node) => {
    const wrongSource = node.type === "source" && hasSource;
    if (wrongSource || !canvas.catalog.has(node.type)) {
      skipped.push({ id: String(node.id), type: node.type, reason: wrongSource ? "source" : "type" });
      return false;
    }
    return true;
  });
  if (!placed.length) return { ids: [], skipped };
  const at = (node) => ({ x: Number(node.position?.x) || 0, y: Number(node.position?.y) || 0 });
  let shift = offset;
  const clash = () => placed.some((node) => canvas.occupied(at(node).x + shift, at(node).y + shift));
  for (let tries = 0; tries < 40 && clash(); tries += 1) shift += offset;
  canvas.quiet = true;
  try {
    for (const node of placed) {
      const wanted = String(node.id);
      const id = isValidNodeId(wanted) && !canvas.nodes.has(wanted) && !idMap.has(wanted) ? wanted : canvas.newId(node.type);
      const params = node.params && typeof node.params === "object" ? node.params : {};
      canvas.addNode(node.type, Math.round(at(node).x + shift), Math.round(at(node).y + shift), params, id);
      idMap.set(wanted, id);
    }
    for (const edge of graph.edges) {
      const from = idMap.get(String(edge.from));
      const to = idMap.get(String(edge.to));
      if (from && to) canvas.connect(from, to);
    }
    canvas.markEdges();
    for (const group of graph.groups) {
      const members = (Array.isArray(group.nodes) ? group.nodes : []).map((id) => idMap.get(String(id))).filter(Boolean);
      if (members.length) canvas.groups.create(typeof group.title === "string" ? group.title : "", members);
    }
  } finally {
    canvas.quiet = false;
  }
  const ids = [...idMap.values()];
  canvas.selected.setIds(ids);
  requestAnimationFrame(() => canvas.groups.update());
  canvas.changed("paste");
  return { ids, skipped };
}
