// Rules a link must follow, checked as it is drawn: no cycle, and one input per step (a new link into a
// port that has one replaces it). `graphProblems` finds the same mistakes in a graph that arrived whole
// (a file, a paste, an old flow), naming the exact links.
import { gettext, interpolate } from "../i18n.js";

// Whether `to` can already reach `from` by the links in `edges`: then from → to would close a cycle.
export function closesCycle(edges, from, to) {
  if (from === to) return true;
  const next = new Map();
  for (const edge of edges) {
    if (!next.has(edge.from)) next.set(edge.from, []);
    next.get(edge.from).push(edge.to);
  }
  const seen = new Set([to]);
  const stack = [to];
  while (stack.length) {
    const node = stack.pop();
    if (node === from) return true;
    for (const after of next.get(node) || []) {
      if (!seen.has(after)) {
        seen.add(after);
        stack.push(after);
      }
    }
  }
  return false;
}

// The path to → … → from, for the refusal message.
export function cyclePath(edges, from, to) {
  const previous = new Map([[to, null]]);
  const queue = [to];
  while (queue.length) {
    const node = queue.shift();
    if (node === from) break;
    for (const edge of edges) {
      if (edge.from === node && !previous.has(edge.to)) {
        previous.set(edge.to, node);
        queue.push(edge.to);
      }
    }
  }
  const path = [];
  for (let node = from; node !== null && node !== undefined; node = previous.get(node)) path.unshift(node);
  return [from, ...path];
}

// Problems of a whole graph, each naming its link: {from, to, message}.
export function graphProblems(graph, portsOf) {
  const problems = [];
  const types = new Map(graph.nodes.map((node) => [node.id, node.type]));
  const into = new Map();
  for (const edge of graph.edges) {
    if (!into.has(edge.to)) into.set(edge.to, []);
    into.get(edge.to).push(edge);
  }
  for (const [target, edges] of into) {
    if (types.has(target) && portsOf(types.get(target))[0] === 0) {
      for (const edge of edges) problems.push({ ...edge, message: interpolate(gettext("%(to)s takes no input"), { to: target }) });
    } else if (edges.length > 1) {
      const feeding = edges.map((e) => e.from).join(", ");
      for (const edge of edges) {
        problems.push({ ...edge, message: interpolate(gettext("%(to)s takes one input, but %(count)s links feed it (%(from)s): remove all but one"), { to: target, count: edges.length, from: feeding }) });
      }
    }
  }
  const kept = [];
  for (const edge of graph.edges) {
    if (closesCycle(kept, edge.from, edge.to)) {
      problems.push({ ...edge, message: interpolate(gettext("the link %(from)s → %(to)s closes a cycle"), edge) });
    } else kept.push(edge);
  }
  return problems;
}
