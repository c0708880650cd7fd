// The flow canvas: a Drawflow view of a flow graph, whose node markup is built from the step type only.
//
// Drawflow's own import() renders the HTML stored in its export, an XSS hole when the graph comes from a
// file or another user. We never call it: every node is added from our flow document, with an empty HTML
// string, and its content is built with createElement/textContent.
import { el } from "../format.js";
import { gettext, interpolate } from "../i18n.js";
import { GroupFrames } from "./groups.js";
import { categoryClass } from "./palette.js";
import { Selection } from "./selection.js";
import { closesCycle, cyclePath, graphProblems } from "./wiring.js";

const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const COLUMN_WIDTH = 250;
const ROW_HEIGHT = 140;
const RUN_STATES = ["pending", "running", "done", "failed", "cancelled"];
// Fit never shrinks nodes below this zoom: past it their text is no longer readable.
export const MIN_FIT_ZOOM = 0.75;

export function isValidNodeId(id) {
  return NODE_ID_PATTERN.test(id);
}

// Short "key value" text summarising a node's params for its card.
function summarise(params) {
  return Object.entries(params || {})
    .filter(([, value]) => value !== null && value !== "" && value !== undefined)
    .map(([key, value]) => `${key} ${typeof value === "string" && value.length > 18 ? value.slice(0, 17) + "…" : value}`)
    .join(" · ");
}

export class FlowCanvas {
  constructor(container, catalog, { readonly = false, onChange = () => {}, onSelect = () => {}, onRefuse = () => {}, onView = () => {}, onContextMenu = () => {} } = {}) {
    this.container = container;
    this.catalog = new Map(catalog.map((step) => [step.type, step]));
    this.readonly = readonly;
    this.onChange = onChange;
    this.onSelect = onSelect;
    this.onRefuse = onRefuse; // (message, clientX, clientY): a link the rules refused, or a port's old link replaced
    this.onView = onView; // the view moved, zoomed, or the nodes moved (the minimap redraws)
    this.nodes = new Map(); // node id -> {id, type, params, dfId, element}
    this.byDfId = new Map(); // Drawflow's numeric id -> node id
    this.quiet = false; // true while we rebuild the view ourselves: not a user change
    this.selection = null; // {kind: "node", id} | {kind: "edge", from, to}

    const editor = new window.Drawflow(container);
    // Keys are handled by the page (undo history, focus rules); Drawflow's own Delete would bypass them.
    editor.key = (event) => editor.dispatch("keydown", event);
    // Our own context menu replaces Drawflow's bare "x".
    editor.contextmenu = (event) => {
      event.preventDefault();
      if (!readonly) onContextMenu(event, this.targetOf(event.target));
    };
    editor.reroute = false;
    editor.zoom_min = 0.3;
    editor.zoom_max = 2;
    editor.editor_mode = readonly ? "view" : "edit";
    editor.start();
    this.editor = editor;

    // A card grows with progress bars and error messages: its ports move, so its edges must follow.
    this.resizes = new ResizeObserver((entries) => {
      for (const entry of entries) if (entry.target.isConnected) editor.updateConnectionNodes(entry.target.id);
    });
    container.addEventListener("wheel", (event) => this.onWheel(event), { passive: false, capture: true });
    container.addEventListener("mousemove", (event) => (this.pointer = { x: event.clientX, y: event.clientY }), true);
    this.pointer = { x: 0, y: 0 };
    this.groups = new GroupFrames(this);
    this.selected = new Selection(this);
    editor.on("mouseMove", () => {
      this.selected.followDrag();
      this.groups.update();
      this.onView();
    });
    editor.on("translate", () => this.onView());
    editor.on("nodeSelected", (dfId) => this.select({ kind: "node", id: this.byDfId.get(String(dfId)) }));
    editor.on("nodeUnselected", () => this.select(null));
    editor.on("connectionSelected", (c) => {
      this.select({ kind: "edge", from: this.byDfId.get(String(c.output_id)), to: this.byDfId.get(String(c.input_id)) });
    });
    editor.on("connectionUnselected", () => this.select(null));
    editor.on("nodeMoved", () => {
      this.groups.update();
      this.changed("move");
    });
    editor.on("connectionCreated", (c) => {
      if (this.quiet) return;
      if (!this.checkNewLink(c)) return;
      this.markEdges();
      this.changed("connect", c);
    });
    editor.on("connectionRemoved", () => {
      if (this.quiet) return;
      this.changed("disconnect");
    });
    editor.on("nodeRemoved", (dfId) => {
      const id = this.byDfId.get(String(dfId));
      this.byDfId.delete(String(dfId));
      this.nodes.delete(id);
      this.selected.forget(id);
      this.groups.forget(id);
      if (this.quiet) return;
      this.select(null);
      this.changed("remove");
    });
  }

  changed(reason) {
    if (!this.quiet) this.onChange(reason);
  }

  select(selection) {
    this.selection = selection && (selection.id || selection.from) ? selection : null;
    this.selected.follow(this.selection);
    this.onSelect(this.selection);
  }

  // What a right-click or a click landed on: {kind: "node", id} | {kind: "edge", from, to} | {kind: "group", id} | {kind: "canvas"}.
  targetOf(target) {
    const nodeElement = target.closest?.(".drawflow-node");
    if (nodeElement) return { kind: "node", id: nodeElement.dataset.nodeId };
    const svg = target.closest?.(".connection");
    if (svg) return { kind: "edge", from: svg.dataset.from, to: svg.dataset.to };
    const group = target.closest?.(".tf-group");
    if (group) return { kind: "group", id: group.dataset.groupId };
    return { kind: "canvas" };
  }

  // A link just drawn: refuse one that closes a cycle; into a port that has a link already, replace the old one.
  checkNewLink(c) {
    const from = this.byDfId.get(String(c.output_id));
    const to = this.byDfId.get(String(c.input_id));
    const others = this.edges().filter((e) => !(e.from === from && e.to === to));
    const drop = (a, b) => {
      this.quiet = true;
      try {
        this.editor.removeSingleConnection(this.nodes.get(a).dfId, this.nodes.get(b).dfId, "output_1", "input_1");
      } finally {
        this.quiet = false;
      }
    };
    if (closesCycle(others, from, to)) {
      drop(from, to);
      const path = cyclePath(others, from, to).join(" → ");
      this.onRefuse(interpolate(gettext("Refused: %(from)s → %(to)s would close a cycle (%(path)s)"), { from, to, path }), this.pointer.x, this.pointer.y, "refused");
      return false;
    }
    const old = others.filter((e) => e.to === to);
    for (const edge of old) drop(edge.from, edge.to);
    if (old.length) {
      this.onRefuse(interpolate(gettext("%(to)s takes one input: the link from %(old)s was replaced by the one from %(from)s"), { to, old: old.map((e) => e.from).join(", "), from }), this.pointer.x, this.pointer.y, "replaced");
    }
    return true;
  }

  // Mark the links a whole graph gets wrong (see wiring.js); returns the problems.
  markEdgeProblems() {
    const problems = graphProblems(this.toGraph(), (type) => this.ports(type));
    for (const svg of this.container.querySelectorAll(".connection")) {
      const problem = problems.find((p) => p.from === svg.dataset.from && p.to === svg.dataset.to);
      svg.classList.toggle("edge-error", Boolean(problem));
      svg.querySelector("title")?.remove();
      if (problem) svg.prepend(el("title", { text: problem.message }));
    }
    return problems;
  }

  step(type) {
    return this.catalog.get(type) || { type, label: type, category: "Unknown", description: "", params_schema: {} };
  }

  ports(type) {
    if (type === "source") return [0, 1];
    if (type === "output") return [1, 0];
    return [1, 1];
  }

  // A fresh, meaningful node id for a step type: resize-1, resize-2, …
  newId(type) {
    const base = type.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 50) || "node";
    for (let n = 1; ; n += 1) if (!this.nodes.has(`${base}-${n}`)) return `${base}-${n}`;
  }

  buildCard(node) {
    const step = this.step(node.type);
    const card = el(
      "div",
      { class: "node-card" },
      el("div", { class: "node-head" }, el("span", { class: "node-dot", "aria-hidden": "true" }), el("span", { class: "node-label", text: step.label })),
      el("div", { class: "node-id", text: node.id, translate: "no" }),
      el("div", { class: "node-summary", text: summarise(node.params), translate: "no" }),
      el(
        "div",
        { class: "node-progress", hidden: true },
        el("div", { class: "node-bar" }, el("span", { class: "node-bar-fill" })),
        el("span", { class: "node-count" }),
      ),
      el("div", { class: "node-timing", hidden: true }),
      el("div", { class: "node-error", role: "alert", hidden: true }),
    );
    return card;
  }

  // Add a node at canvas coordinates; returns its id. `id` and `params` come from a document when loading.
  addNode(type, x, y, params = {}, id = null) {
    const nodeId = id || this.newId(type);
    const [inputs, outputs] = this.ports(type);
    const dfId = this.editor.addNode(type, inputs, outputs, x, y, `tf-node ${categoryClass(this.step(type))}`, {}, "", false);
    const element = this.container.querySelector(`#node-${dfId}`);
    const node = { id: nodeId, type, params: { ...params }, dfId: String(dfId), element };
    element.dataset.nodeId = nodeId;
    if (!this.readonly) this.makeKeyboardReachable(node);
    this.resizes.observe(element);
    element.dataset.type = type;
    element.querySelector(".drawflow_content_node").append(this.buildCard(node));
    this.nodes.set(nodeId, node);
    this.byDfId.set(String(dfId), nodeId);
    this.changed("add");
    return nodeId;
  }

  // A node is a tab stop: Enter or Space selects it, arrow keys move it (Shift: further), for people without
  // a precise pointer. Links are made from the parameter panel's "Connect to…" list.
  makeKeyboardReachable(node) {
    const element = node.element;
    element.tabIndex = 0;
    element.setAttribute("role", "button");
    element.setAttribute("aria-label", interpolate(gettext("%(step)s node %(node)s"), { step: this.step(node.type).label, node: node.id }));
    element.addEventListener("keydown", (event) => {
      if (event.target !== element || event.ctrlKey || event.metaKey || event.altKey) return;
      const step = event.shiftKey ? 60 : 20;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.selectNode(this.byDfId.get(node.dfId));
      } else if (moves[event.key]) {
        event.preventDefault();
        this.moveNode(this.byDfId.get(node.dfId), ...moves[event.key]);
      }
    });
  }

  // Select a node as a click on it would (Drawflow has no call for it).
  selectNode(id) {
    const node = this.nodes.get(id);
    const editor = this.editor;
    if (!node || editor.node_selected === node.element) return;
    if (editor.node_selected) {
      editor.node_selected.classList.remove("selected");
      editor.dispatch("nodeUnselected", true);
    }
    if (editor.connection_selected) {
      editor.connection_selected.classList.remove("selected");
      editor.removeReouteConnectionSelected();
      editor.connection_selected = null;
    }
    editor.dispatch("nodeSelected", node.dfId);
    editor.node_selected = node.element;
    node.element.classList.add("selected");
  }

  moveNode(id, dx, dy) {
    const node = this.nodes.get(id);
    if (!node) return;
    const data = this.editor.drawflow.drawflow.Home.data[node.dfId];
    data.pos_x = Math.max(0, data.pos_x + dx);
    data.pos_y = Math.max(0, data.pos_y + dy);
    node.element.style.left = `${data.pos_x}px`;
    node.element.style.top = `${data.pos_y}px`;
    this.editor.updateConnectionNodes(`node-${node.dfId}`);
    this.groups.update();
    this.onView();
    this.changed("move");
  }

  // Move nodes to canvas positions without recording (a drag in progress).
  placeNode(id, x, y) {
    const node = this.nodes.get(id);
    if (!node) return;
    const data = this.editor.drawflow.drawflow.Home.data[node.dfId];
    data.pos_x = Math.max(0, x);
    data.pos_y = Math.max(0, y);
    node.element.style.left = `${data.pos_x}px`;
    node.element.style.top = `${data.pos_y}px`;
    this.editor.updateConnectionNodes(`node-${node.dfId}`);
  }

  position(id) {
    const node = this.nodes.get(id);
    const data = node && this.editor.drawflow.drawflow.Home.data[node.dfId];
    return data ? { x: data.pos_x, y: data.pos_y } : null;
  }

  // Canvas-coordinate box of a node.
  box(id) {
    const node = this.nodes.get(id);
    const at = this.position(id);
    return { x: at.x, y: at.y, width: node.element.offsetWidth, height: node.element.offsetHeight };
  }

  // Whether a node box at (x, y) would overlap a node already there (keyboard adds and pastes avoid it).
  occupied(x, y, except = new Set()) {
    for (const id of this.nodes.keys()) {
      if (except.has(id)) continue;
      const at = this.position(id);
      if (Math.abs(at.x - x) < 60 && Math.abs(at.y - y) < 40) return true;
    }
    return false;
  }

  // The nearest free place from (x, y), stepping down and right.
  freePlace(x, y, except) {
    let placeX = x;
    let placeY = y;
    for (let tries = 0; tries < 50 && this.occupied(placeX, placeY, except); tries += 1) {
      placeX += 40;
      placeY += 40;
    }
    return { x: placeX, y: placeY };
  }

  // Nodes `from` may link to: those with an input, not linked yet, and not upstream of it (no cycle).
  linkTargets(from) {
    const source = this.nodes.get(from);
    if (!source || this.ports(source.type)[1] === 0) return [];
    const edges = this.edges();
    const upstream = new Set([from]);
    for (let grown = true; grown; ) {
      grown = false;
      for (const edge of edges) {
        if (upstream.has(edge.to) && !upstream.has(edge.from)) {
          upstream.add(edge.from);
          grown = true;
        }
      }
    }
    const linked = new Set(edges.filter((e) => e.from === from).map((e) => e.to));
    return [...this.nodes.values()].filter((n) => this.ports(n.type)[0] > 0 && !upstream.has(n.id) && !linked.has(n.id));
  }

  disconnect(from, to) {
    const a = this.nodes.get(from);
    const b = this.nodes.get(to);
    if (a && b) this.editor.removeSingleConnection(a.dfId, b.dfId, "output_1", "input_1");
  }

  setParams(id, params) {
    const node = this.nodes.get(id);
    if (!node) return;
    node.params = { ...params };
    node.element.querySelector(".node-summary").textContent = summarise(params);
  }

  renameNode(oldId, newId) {
    const node = this.nodes.get(oldId);
    if (!node || this.nodes.has(newId) || !isValidNodeId(newId)) return false;
    this.nodes.delete(oldId);
    node.id = newId;
    this.nodes.set(newId, node);
    this.byDfId.set(node.dfId, newId);
    node.element.dataset.nodeId = newId;
    node.element.querySelector(".node-id").textContent = newId;
    this.groups.rename(oldId, newId);
    this.selected.rename(oldId, newId);
    if (this.selection?.id === oldId) this.selection = { kind: "node", id: newId };
    return true;
  }

  connect(from, to) {
    const a = this.nodes.get(from);
    const b = this.nodes.get(to);
    if (!a || !b) return;
    this.editor.addConnection(a.dfId, b.dfId, "output_1", "input_1");
  }

  deleteSelection() {
    if (this.readonly) return false;
    const ids = this.selected.ids();
    if (ids.length) {
      this.removeNodes(ids);
      return true;
    }
    if (this.selection?.kind === "edge" && this.editor.connection_selected) {
      this.editor.removeConnection();
      this.select(null);
      return true;
    }
    return false;
  }

  // Remove several nodes as one change (one undo step).
  removeNodes(ids) {
    this.quiet = true;
    try {
      for (const id of ids) {
        const node = this.nodes.get(id);
        if (node) this.editor.removeNodeId(`node-${node.dfId}`);
      }
    } finally {
      this.quiet = false;
    }
    this.groups.update();
    this.select(null);
    this.changed("remove");
  }

  edges() {
    const edges = [];
    const data = this.editor.drawflow.drawflow.Home.data;
    for (const [dfId, dfNode] of Object.entries(data)) {
      for (const output of Object.values(dfNode.outputs || {})) {
        for (const connection of output.connections) {
          edges.push({ from: this.byDfId.get(String(dfId)), to: this.byDfId.get(String(connection.node)) });
        }
      }
    }
    return edges.filter((e) => e.from && e.to);
  }

  // The graph part of the flow document, with node positions.
  toGraph() {
    const data = this.editor.drawflow.drawflow.Home.data;
    const nodes = [...this.nodes.values()].map((node) => ({
      id: node.id,
      type: node.type,
      params: { ...node.params },
      position: { x: Math.round(data[node.dfId].pos_x), y: Math.round(data[node.dfId].pos_y) },
    }));
    const graph = { nodes, edges: this.edges() };
    const groups = this.groups.toDocument();
    if (groups.length) graph.groups = groups;
    return graph;
  }

  // Place nodes without a position in columns by their depth from the source.
  layout(graph) {
    const depth = new Map(graph.nodes.map((n) => [n.id, 0]));
    for (let pass = 0; pass < graph.nodes.length; pass += 1) {
      for (const edge of graph.edges) {
        if (depth.has(edge.from) && depth.has(edge.to) && depth.get(edge.to) < depth.get(edge.from) + 1) {
          depth.set(edge.to, Math.min(depth.get(edge.from) + 1, graph.nodes.length));
        }
      }
    }
    const rows = new Map();
    const positions = new Map();
    for (const node of graph.nodes) {
      const column = depth.get(node.id);
      const row = rows.get(column) || 0;
      rows.set(column, row + 1);
      positions.set(node.id, node.position || { x: 40 + column * COLUMN_WIDTH, y: 60 + row * ROW_HEIGHT });
    }
    return positions;
  }

  // Replace the canvas content with a graph (from the API, a file or the undo history).
  load(graph) {
    this.quiet = true;
    try {
      this.resizes.disconnect();
      this.editor.clear();
      this.nodes.clear();
      this.byDfId.clear();
      const positions = this.layout(graph);
      for (const node of graph.nodes || []) {
        const position = positions.get(node.id);
        this.addNode(String(node.type), Number(position.x) || 0, Number(position.y) || 0, node.params || {}, String(node.id));
      }
      for (const edge of graph.edges || []) this.connect(String(edge.from), String(edge.to));
      this.markEdges();
      this.groups.load(graph.groups || []);
    } finally {
      this.quiet = false;
    }
    this.selected.clear();
    this.select(null);
    requestAnimationFrame(() => {
      this.groups.update();
      this.onView();
    });
  }

  // Tag every edge with its source and target ids so run state can find it.
  markEdges() {
    for (const svg of this.container.querySelectorAll(".connection")) {
      const out = [...svg.classList].find((c) => c.startsWith("node_out_node-"));
      const into = [...svg.classList].find((c) => c.startsWith("node_in_node-"));
      if (out) svg.dataset.from = this.byDfId.get(out.slice("node_out_node-".length)) || "";
      if (into) svg.dataset.to = this.byDfId.get(into.slice("node_in_node-".length)) || "";
    }
  }

  // Client coordinates -> canvas coordinates (for drops).
  toCanvas(clientX, clientY) {
    const rect = this.editor.precanvas.getBoundingClientRect();
    return { x: (clientX - rect.x) / this.editor.zoom, y: (clientY - rect.y) / this.editor.zoom };
  }

  setView(zoom, canvasX, canvasY) {
    const editor = this.editor;
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = canvasX;
    editor.canvas_y = canvasY;
    editor.precanvas.style.transform = `translate(${canvasX}px, ${canvasY}px) scale(${zoom})`;
    this.onView();
  }

  // Move the view by (dx, dy) screen pixels.
  panBy(dx, dy) {
    this.setView(this.editor.zoom, this.editor.canvas_x + dx, this.editor.canvas_y + dy);
  }

  // Centre the view on a canvas point.
  centreOn(x, y) {
    const zoom = this.editor.zoom;
    const originX = this.editor.precanvas.clientWidth / 2;
    const originY = this.editor.precanvas.clientHeight / 2;
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    this.setView(zoom, width / 2 - originX - zoom * (x - originX), height / 2 - originY - zoom * (y - originY));
  }

  // The visible part of the canvas, in canvas coordinates.
  viewport() {
    const box = this.container.getBoundingClientRect();
    const topLeft = this.toCanvas(box.x, box.y);
    const bottomRight = this.toCanvas(box.x + box.width, box.y + box.height);
    return { x: topLeft.x, y: topLeft.y, width: bottomRight.x - topLeft.x, height: bottomRight.y - topLeft.y };
  }

  // Zoom by `factor`, keeping the canvas point under (clientX, clientY) in place.
  zoomBy(factor, clientX, clientY) {
    const editor = this.editor;
    const zoom = Math.min(editor.zoom_max, Math.max(editor.zoom_min, editor.zoom * factor));
    const box = this.container.getBoundingClientRect();
    const anchorX = clientX ?? box.x + box.width / 2;
    const anchorY = clientY ?? box.y + box.height / 2;
    const point = this.toCanvas(anchorX, anchorY);
    // The precanvas scales around its centre (CSS transform-origin 50% 50%).
    const originX = editor.precanvas.clientWidth / 2;
    const originY = editor.precanvas.clientHeight / 2;
    const canvasX = anchorX - box.x - originX - zoom * (point.x - originX);
    const canvasY = anchorY - box.y - originY - zoom * (point.y - originY);
    this.setView(zoom, canvasX, canvasY);
  }

  // A touchpad pinch arrives as a wheel event with ctrlKey: zoom by how far the fingers moved. A two-finger
  // swipe (pixel deltas, often with deltaX) pans; a mouse wheel's notches (line deltas or large round steps) zoom.
  onWheel(event) {
    event.preventDefault();
    event.stopPropagation();
    if (event.ctrlKey) {
      this.zoomBy(Math.exp(-event.deltaY * 0.01), event.clientX, event.clientY);
    } else if (event.deltaMode === 0 && (event.deltaX !== 0 || Math.abs(event.deltaY) < 50)) {
      this.panBy(-event.deltaX, -event.deltaY);
    } else {
      this.zoomBy(event.deltaY > 0 ? 1 / 1.1 : 1.1, event.clientX, event.clientY);
    }
  }

  fit() {
    const nodes = [...this.nodes.values()];
    if (!nodes.length) {
      this.setView(1, 0, 0);
      return;
    }
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const { element } of nodes) {
      minX = Math.min(minX, element.offsetLeft);
      minY = Math.min(minY, element.offsetTop);
      maxX = Math.max(maxX, element.offsetLeft + element.offsetWidth);
      maxY = Math.max(maxY, element.offsetTop + element.offsetHeight);
    }
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    const padding = 48;
    const wanted = Math.min((width - padding * 2) / (maxX - minX), (height - padding * 2) / (maxY - minY));
    const zoom = Math.min(this.editor.zoom_max, 1.2, Math.max(MIN_FIT_ZOOM, wanted));
    const originX = this.editor.precanvas.clientWidth / 2;
    const originY = this.editor.precanvas.clientHeight / 2;
    // When the flow is wider than the screen even at the smallest readable zoom, start from its source side.
    const fitsX = zoom * (maxX - minX) <= width - padding * 2;
    const fitsY = zoom * (maxY - minY) <= height - padding * 2;
    const centreX = fitsX ? (minX + maxX) / 2 : minX - padding / zoom + width / (2 * zoom);
    const centreY = fitsY ? (minY + maxY) / 2 : minY - padding / zoom + height / (2 * zoom);
    this.setView(zoom, width / 2 - originX - zoom * (centreX - originX), height / 2 - originY - zoom * (centreY - originY));
  }

  // Server or client validation messages on nodes: {nodeId: [messages]}.
  showErrors(errorsByNode) {
    for (const node of this.nodes.values()) {
      const messages = errorsByNode[node.id] || [];
      const box = node.element.querySelector(".node-error");
      box.textContent = messages.join(" · ");
      box.hidden = !messages.length;
      node.element.classList.toggle("has-error", messages.length > 0);
    }
  }

  // Run state of one node: status pending|running|done|failed|cancelled, tiles done/total, optional timing text.
  setRunState(id, { status, done, total, timing } = {}) {
    const node = this.nodes.get(id);
    if (!node) return;
    const element = node.element;
    for (const state of RUN_STATES) element.classList.toggle(`state-${state}`, status === state);
    const progress = element.querySelector(".node-progress");
    progress.hidden = false;
    const fraction = total ? Math.min(1, done / total) : status === "done" ? 1 : 0;
    element.querySelector(".node-bar-fill").style.width = `${(fraction * 100).toFixed(1)}%`;
    element.querySelector(".node-count").textContent = total ? `${done}/${total}` : status || "";
    element.dataset.done = String(done ?? 0);
    element.dataset.total = String(total ?? 0);
    element.dataset.status = status || "";
    const timingBox = element.querySelector(".node-timing");
    timingBox.textContent = timing || "";
    timingBox.hidden = !timing;
    for (const svg of this.container.querySelectorAll(".connection")) {
      if (svg.dataset.from === id) svg.classList.toggle("flowing", status === "running");
    }
  }

  clearRunState() {
    for (const node of this.nodes.values()) {
      node.element.classList.remove(...RUN_STATES.map((state) => `state-${state}`));
      node.element.querySelector(".node-progress").hidden = true;
      node.element.querySelector(".node-timing").hidden = true;
      delete node.element.dataset.status;
    }
    for (const svg of this.container.querySelectorAll(".connection.flowing")) svg.classList.remove("flowing");
  }
}
