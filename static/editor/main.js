// The editor page: palette, canvas, parameter panel, undo/redo, save, import/export, and the run panel.
import { api, ApiError } from "../api.js";
import { el } from "../format.js";
import { createRunPanel } from "../monitor/run-panel.js";
import { FlowCanvas, isValidNodeId } from "./canvas.js";
import { History } from "./history.js";
import { buildPalette, DRAG_TYPE } from "./palette.js";
import { buildParamsForm, defaultParams } from "./params-form.js";

const root = document.getElementById("editor");
const $ = (id) => document.getElementById(id);
const nameInput = $("flow-name");
const descriptionInput = $("flow-description");
const errorBanner = $("flow-errors");
const nodePanel = $("node-panel");
const nodeEmpty = $("node-empty");

let flowId = root.dataset.flowId || null;
let savedText = null;
let canvas;
let steps = [];
const history = new History();
const clientErrors = {}; // node id -> {field: message}, from the parameter forms
let serverErrors = {}; // node id -> [messages], from the last save

function documentNow() {
  return { name: nameInput.value.trim(), description: descriptionInput.value, graph: canvas.toGraph() };
}

function isDirty() {
  return JSON.stringify(documentNow()) !== savedText;
}

function refreshState() {
  const dirty = isDirty();
  $("dirty-mark").hidden = !dirty;
  root.classList.toggle("is-dirty", dirty);
  document.title = `${dirty ? "● " : ""}${nameInput.value.trim() || "New flow"} · Tileflow`;
  $("undo").disabled = !history.canUndo;
  $("redo").disabled = !history.canRedo;
  $("delete").disabled = !canvas.selection;
  $("canvas-hint").hidden = canvas.nodes.size > 1;
}

function showErrors() {
  const byNode = {};
  for (const [id, messages] of Object.entries(serverErrors)) byNode[id] = [...messages];
  for (const [id, fields] of Object.entries(clientErrors)) {
    for (const [field, message] of Object.entries(fields)) (byNode[id] ||= []).push(`${field}: must be ${message}`);
  }
  canvas.showErrors(byNode);
}

function setBanner(messages) {
  errorBanner.replaceChildren(...messages.map((m) => el("span", { text: m })));
  errorBanner.hidden = !messages.length;
}

// A user edit happened on the canvas: record it for undo and refresh the marks.
function recordChange() {
  history.push(canvas.toGraph());
  for (const id of Object.keys(clientErrors)) if (!canvas.nodes.has(id)) delete clientErrors[id];
  refreshState();
}

function restore(graph) {
  if (!graph) return;
  canvas.load(graph);
  // The server's messages were about the graph we just left.
  serverErrors = {};
  setBanner([]);
  for (const id of Object.keys(clientErrors)) if (!canvas.nodes.has(id)) delete clientErrors[id];
  showErrors();
  showNodePanel(null);
  refreshState();
}

function showNodePanel(selection) {
  const node = selection?.kind === "node" ? canvas.nodes.get(selection.id) : null;
  nodePanel.replaceChildren();
  nodePanel.hidden = !node;
  nodeEmpty.hidden = Boolean(node);
  if (!node) return;
  selectTab("node");
  const step = canvas.step(node.type);
  const idInput = el("input", { id: "node-id-input", type: "text", value: node.id, maxlength: 64, spellcheck: "false" });
  const idError = el("span", { class: "field-error", role: "status" });
  idInput.addEventListener("change", () => {
    const wanted = idInput.value.trim();
    if (wanted === node.id) return;
    if (!isValidNodeId(wanted)) idError.textContent = "Letters, digits, - and _ only (1–64)";
    else if (canvas.nodes.has(wanted)) idError.textContent = "Another node has this id";
    else {
      const old = node.id;
      canvas.renameNode(old, wanted);
      if (clientErrors[old]) {
        clientErrors[wanted] = clientErrors[old];
        delete clientErrors[old];
      }
      idError.textContent = "";
      recordChange();
    }
  });
  const form = buildParamsForm(
    step.params_schema,
    node.params,
    (params, errors, commit) => {
      canvas.setParams(node.id, params);
      if (Object.keys(errors).length) clientErrors[node.id] = errors;
      else delete clientErrors[node.id];
      delete serverErrors[node.id];
      showErrors();
      if (commit) recordChange();
      else refreshState();
    },
    { idPrefix: `param-${node.dfId}` },
  );
  nodePanel.append(
    el("h2", { class: "panel-title" }, el("span", { class: "node-dot", "aria-hidden": "true" }), step.label),
    el("p", { class: "muted small", text: step.description }),
    el("div", { class: "field" }, el("label", { for: "node-id-input", text: "Node id" }), idInput, idError),
    form.element,
    linksSection(node),
  );
  const errors = form.errors();
  if (Object.keys(errors).length) clientErrors[node.id] = errors;
  showErrors();
}

// The node's links, made and removed without dragging: a "Connect to…" list of the nodes it may feed.
function linksSection(node) {
  const label = (id) => `${canvas.step(canvas.nodes.get(id).type).label} (${id})`;
  const relink = (focusId) => {
    showNodePanel({ kind: "node", id: node.id });
    $(focusId)?.focus();
  };
  const section = el("section", { class: "links", "aria-labelledby": "links-title" }, el("h3", { id: "links-title", text: "Links" }));
  const targets = canvas.linkTargets(node.id);
  if (canvas.ports(node.type)[1] > 0) {
    const select = el("select", { id: "connect-to", disabled: !targets.length }, el("option", { value: "", text: targets.length ? "Choose a node…" : "No node to link to" }));
    for (const target of targets) select.append(el("option", { value: target.id, text: label(target.id) }));
    select.addEventListener("change", () => {
      if (!select.value) return;
      canvas.connect(node.id, select.value);
      relink("connect-to");
    });
    section.append(el("div", { class: "field" }, el("label", { for: "connect-to", text: "Connect to… (key C)" }), select));
  }
  const edges = canvas.edges().filter((e) => e.from === node.id || e.to === node.id);
  const list = el("ul", { class: "link-list" });
  for (const edge of edges) {
    const outgoing = edge.from === node.id;
    const other = outgoing ? edge.to : edge.from;
    const remove = el("button", { class: "btn btn-small", type: "button", text: "Remove", "aria-label": `Remove the link ${outgoing ? "to" : "from"} ${other}` });
    remove.addEventListener("click", () => {
      canvas.disconnect(edge.from, edge.to);
      relink(canvas.ports(node.type)[1] > 0 ? "connect-to" : "node-id-input");
    });
    list.append(el("li", { dataset: { from: edge.from, to: edge.to } }, el("span", { text: `${outgoing ? "→" : "←"} ${label(other)}` }), remove));
  }
  section.append(edges.length ? list : el("p", { class: "muted small", text: "Not linked yet." }));
  return section;
}

function selectTab(name) {
  for (const tab of ["node", "run"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`tab-${tab}`).tabIndex = tab === name ? 0 : -1;
    $(`panel-${tab}`).hidden = tab !== name;
  }
}

async function save() {
  const doc = documentNow();
  const problems = [];
  if (!doc.name) problems.push("Give the flow a name.");
  if (Object.keys(clientErrors).length) problems.push(`Fix the parameters of: ${Object.keys(clientErrors).join(", ")}.`);
  if (problems.length) {
    setBanner(problems);
    showErrors();
    if (!doc.name) nameInput.focus();
    return false;
  }
  const button = $("save");
  button.disabled = true;
  button.textContent = "Saving…";
  try {
    const flow = flowId ? await api.updateFlow(flowId, doc) : await api.createFlow(doc);
    flowId = flow.id;
    root.dataset.flowId = flowId;
    if (!location.pathname.endsWith(`/flows/${flowId}/`)) history_replace(`/flows/${flowId}/`);
    savedText = JSON.stringify(doc);
    serverErrors = {};
    setBanner([]);
    showErrors();
    refreshState();
    button.textContent = "Saved";
    setTimeout(() => (button.textContent = "Save"), 1200);
    return true;
  } catch (error) {
    button.textContent = "Save";
    if (error instanceof ApiError && error.errors.length) {
      serverErrors = {};
      const general = [];
      for (const { node, message } of error.errors) {
        if (node && canvas.nodes.has(node)) (serverErrors[node] ||= []).push(message);
        else general.push(node ? `${node}: ${message}` : message);
      }
      setBanner(general.length ? general : ["The flow is not valid: see the marked nodes."]);
      showErrors();
    } else {
      setBanner([`Could not save: ${error.message}`]);
    }
    return false;
  } finally {
    button.disabled = false;
  }
}

function history_replace(path) {
  window.history.replaceState(null, "", path);
}

function exportFlow() {
  const doc = documentNow();
  const blob = new Blob([JSON.stringify(doc, null, 2) + "\n"], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `${(doc.name || "flow").replace(/[^\w.-]+/g, "_")}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// Keep only the fields a flow document has, as plain data (ids, types and params are never rendered as HTML).
function sanitiseGraph(graph) {
  if (!graph || !Array.isArray(graph.nodes)) throw new Error("the file has no graph.nodes list");
  const nodes = graph.nodes.map((node) => {
    const clean = { id: String(node.id), type: String(node.type), params: node.params && typeof node.params === "object" ? node.params : {} };
    if (node.position && Number.isFinite(+node.position.x) && Number.isFinite(+node.position.y)) {
      clean.position = { x: +node.position.x, y: +node.position.y };
    }
    return clean;
  });
  const edges = (Array.isArray(graph.edges) ? graph.edges : []).map((e) => ({ from: String(e.from), to: String(e.to) }));
  return { nodes, edges };
}

async function importFlow(file) {
  try {
    const doc = JSON.parse(await file.text());
    const graph = sanitiseGraph(doc.graph);
    if (typeof doc.name === "string" && doc.name.trim()) nameInput.value = doc.name.trim().slice(0, 200);
    if (typeof doc.description === "string") descriptionInput.value = doc.description;
    canvas.load(graph);
    recordChange();
    canvas.fit();
    setBanner([]);
  } catch (error) {
    setBanner([`Could not import ${file.name}: ${error.message}`]);
  }
}

function addStep(type, x, y) {
  const step = steps.find((s) => s.type === type);
  if (!step) return;
  let position = { x, y };
  if (x === undefined) {
    const box = $("canvas").getBoundingClientRect();
    position = canvas.toCanvas(box.x + box.width / 2 - 90, box.y + box.height / 2 - 40);
  }
  const id = canvas.addNode(type, Math.round(position.x), Math.round(position.y), defaultParams(step.params_schema));
  recordChange();
  showNodePanel({ kind: "node", id });
  return id;
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.matches("input, textarea, select") || target.isContentEditable);
}

function onKeyDown(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "s") {
    event.preventDefault();
    save();
  } else if (mod && key === "z" && !isTyping(event.target)) {
    event.preventDefault();
    restore(event.shiftKey ? history.redo() : history.undo());
  } else if (mod && key === "y" && !isTyping(event.target)) {
    event.preventDefault();
    restore(history.redo());
  } else if ((event.key === "Delete" || event.key === "Backspace") && !isTyping(event.target)) {
    if (canvas.deleteSelection()) event.preventDefault();
  } else if (key === "f" && !mod && !isTyping(event.target)) {
    canvas.fit();
  } else if (key === "c" && !mod && !isTyping(event.target) && canvas.selection?.kind === "node" && $("connect-to")) {
    event.preventDefault();
    $("connect-to").focus();
  }
}

async function init() {
  steps = await api.steps();
  canvas = new FlowCanvas($("canvas"), steps, {
    onChange: (reason) => {
      if (reason === "add") return; // recorded by addStep once the node is placed
      if (reason === "connect" || reason === "disconnect" || reason === "remove") {
        serverErrors = {};
        setBanner([]);
        showErrors();
      }
      recordChange();
    },
    onSelect: (selection) => {
      showNodePanel(selection);
      refreshState();
    },
  });
  buildPalette($("palette-list"), $("palette-search"), steps, { onAdd: (type) => addStep(type) });

  let doc;
  if (flowId) {
    doc = await api.flow(flowId);
    nameInput.value = doc.name;
    descriptionInput.value = doc.description || "";
  } else {
    // A new flow starts with its one required source; the rest comes from the palette.
    doc = { name: "", description: "", graph: { nodes: [{ id: "source", type: "source", params: {}, position: { x: 60, y: 160 } }], edges: [] } };
  }
  canvas.load(sanitiseGraph(doc.graph));
  history.reset(canvas.toGraph());
  savedText = flowId ? JSON.stringify(documentNow()) : JSON.stringify({ name: "", description: "", graph: { nodes: [], edges: [] } });
  requestAnimationFrame(() => {
    if (flowId) canvas.fit();
  });

  const surface = $("canvas");
  surface.addEventListener("dragover", (event) => {
    if ([...event.dataTransfer.types].includes(DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  });
  surface.addEventListener("drop", (event) => {
    const type = event.dataTransfer.getData(DRAG_TYPE);
    if (!type) return;
    event.preventDefault();
    const point = canvas.toCanvas(event.clientX, event.clientY);
    addStep(type, Math.round(point.x - 20), Math.round(point.y - 20));
  });

  $("undo").addEventListener("click", () => restore(history.undo()));
  $("redo").addEventListener("click", () => restore(history.redo()));
  $("delete").addEventListener("click", () => canvas.deleteSelection());
  $("zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
  $("zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
  $("fit").addEventListener("click", () => canvas.fit());
  $("save").addEventListener("click", () => save());
  $("export").addEventListener("click", exportFlow);
  $("import-flow").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) importFlow(file);
  });
  $("tab-node").addEventListener("click", () => selectTab("node"));
  $("tab-run").addEventListener("click", () => selectTab("run"));
  for (const [tab, other] of [["node", "run"], ["run", "node"]]) {
    $(`tab-${tab}`).addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      selectTab(other);
      $(`tab-${other}`).focus();
    });
  }
  nameInput.addEventListener("input", refreshState);
  descriptionInput.addEventListener("input", refreshState);
  document.addEventListener("keydown", onKeyDown);
  window.addEventListener("beforeunload", (event) => {
    if (isDirty()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  createRunPanel($("run-panel"), {
    canvas,
    flowId: () => flowId,
    // A run uses the saved flow: save first when there are unsaved changes.
    ensureSaved: async () => (isDirty() || !flowId ? save() : true),
    onStart: () => selectTab("run"),
  });
  refreshState();
  root.classList.add("ready");
}

init().catch((error) => setBanner([`Could not open the editor: ${error.message}`]));
