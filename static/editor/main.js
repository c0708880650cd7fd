// The editor page: palette, canvas, parameter panel, undo/redo, clipboard, groups, save, versions and runs.
import { api, ApiError } from "../api.js";
import { confirmAction } from "../dialog.js";
import { el } from "../format.js";
import { gettext, interpolate } from "../i18n.js";
import { confirmFlowDelete } from "../flow-delete.js";
import { createRunPanel } from "../monitor/run-panel.js";
import { FlowCanvas, isValidNodeId } from "./canvas.js";
import { parseClipboard, pasteInto, remember, remembered, selectionDocument } from "./clipboard.js";
import { closeMenu, showMenu } from "./context-menu.js";
import { History } from "./history.js";
import { showInspection } from "./inspect.js";
import { Minimap } from "./minimap.js";
import { buildPalette, DRAG_TYPE } from "./palette.js";
import { buildParamsForm, defaultParams } from "./params-form.js";
import { setupPanels } from "./panels.js";
import { createVersionsPanel } from "./versions.js";

const root = document.getElementById("editor");
const $ = (id) => document.getElementById(id);
const nameInput = $("flow-name");
const descriptionInput = $("flow-description");
const errorBanner = $("flow-errors");
const nodePanel = $("node-panel");
const nodeEmpty = $("node-empty");
const TABS = ["node", "run", "versions"];

let flowId = root.dataset.flowId || null;
let savedText = null;
let canvas;
let steps = [];
let minimap;
let versionsPanel;
let panels;
let runPanel;
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
  if (dirty) $("saved-mark").hidden = true;
  root.classList.toggle("is-dirty", dirty);
  document.title = `${dirty ? "● " : ""}${nameInput.value.trim() || gettext("New flow")} · Tileflow`;
  $("undo").disabled = !history.canUndo;
  $("redo").disabled = !history.canRedo;
  $("delete").disabled = !canvas.selected.size && canvas.selection?.kind !== "edge";
  $("canvas-hint").hidden = canvas.nodes.size > 1;
  minimap?.schedule();
}

function showErrors() {
  const byNode = {};
  for (const [id, messages] of Object.entries(serverErrors)) byNode[id] = [...messages];
  for (const [id, fields] of Object.entries(clientErrors)) {
    for (const [field, message] of Object.entries(fields)) (byNode[id] ||= []).push(`${field}: ${message}`);
  }
  canvas.showErrors(byNode);
}

function setBanner(messages) {
  errorBanner.replaceChildren(...messages.map((m) => el("span", { text: m })));
  errorBanner.hidden = !messages.length;
}

// Links a graph gets wrong (from a file, a paste, an old flow) are marked on the canvas and named above it.
function showLinkProblems() {
  const problems = canvas.markEdgeProblems();
  if (problems.length) setBanner(problems.map((p) => interpolate(gettext("Link %(from)s → %(to)s: %(message)s"), p)));
  return problems;
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
  showLinkProblems();
  showNodePanel(null);
  refreshState();
}

function showNodePanel(selection) {
  const node = selection?.kind === "node" ? canvas.nodes.get(selection.id) : null;
  nodePanel.replaceChildren();
  nodePanel.hidden = !node;
  nodeEmpty.hidden = Boolean(node);
  if (!node) {
    $("node-inspect").hidden = true;
    return;
  }
  selectTab("node");
  panels.reveal("side");
  const step = canvas.step(node.type);
  const idInput = el("input", { id: "node-id-input", type: "text", value: node.id, maxlength: 64, spellcheck: "false", translate: "no" });
  const idError = el("span", { class: "field-error", role: "status" });
  idInput.addEventListener("change", () => {
    const wanted = idInput.value.trim();
    if (wanted === node.id) return;
    if (!isValidNodeId(wanted)) idError.textContent = gettext("Letters, digits, - and _ only (1–64)");
    else if (canvas.nodes.has(wanted)) idError.textContent = gettext("Another node has this id");
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
    el("div", { class: "field" }, el("label", { for: "node-id-input", text: gettext("Node id") }), idInput, idError),
    form.element,
    linksSection(node),
  );
  const errors = form.errors();
  if (Object.keys(errors).length) clientErrors[node.id] = errors;
  showErrors();
  showInspection($("node-inspect"), node.id, runPanel?.lastExecution());
}

// The node's links, made and removed without dragging: a "Connect to…" list of the nodes it may feed.
function linksSection(node) {
  const label = (id) => `${canvas.step(canvas.nodes.get(id).type).label} (${id})`;
  const relink = (focusId) => {
    showNodePanel({ kind: "node", id: node.id });
    $(focusId)?.focus();
  };
  const section = el("section", { class: "links", "aria-labelledby": "links-title" }, el("h3", { id: "links-title", text: gettext("Links") }));
  const targets = canvas.linkTargets(node.id);
  if (canvas.ports(node.type)[1] > 0) {
    const select = el("select", { id: "connect-to", disabled: !targets.length }, el("option", { value: "", text: targets.length ? gettext("Choose a node…") : gettext("No node to link to") }));
    for (const target of targets) select.append(el("option", { value: target.id, text: label(target.id) }));
    select.addEventListener("change", () => {
      if (!select.value) return;
      canvas.connect(node.id, select.value);
      relink("connect-to");
    });
    section.append(el("div", { class: "field" }, el("label", { for: "connect-to", text: gettext("Connect to… (key C)") }), select));
  }
  const edges = canvas.edges().filter((e) => e.from === node.id || e.to === node.id);
  const list = el("ul", { class: "link-list" });
  for (const edge of edges) {
    const outgoing = edge.from === node.id;
    const other = outgoing ? edge.to : edge.from;
    const remove = el("button", {
      class: "btn btn-small",
      type: "button",
      text: gettext("Remove"),
      "aria-label": interpolate(outgoing ? gettext("Remove the link to %(node)s") : gettext("Remove the link from %(node)s"), { node: other }),
    });
    remove.addEventListener("click", () => {
      canvas.disconnect(edge.from, edge.to);
      relink(canvas.ports(node.type)[1] > 0 ? "connect-to" : "node-id-input");
    });
    list.append(el("li", { dataset: { from: edge.from, to: edge.to } }, el("span", { text: `${outgoing ? "→" : "←"} ${label(other)}` }), remove));
  }
  section.append(edges.length ? list : el("p", { class: "muted small", text: gettext("Not linked yet.") }));
  return section;
}

function selectTab(name) {
  for (const tab of TABS) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`tab-${tab}`).tabIndex = tab === name ? 0 : -1;
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (name === "versions") versionsPanel.refresh();
}

function showSaved() {
  const mark = $("saved-mark");
  mark.hidden = false;
  clearTimeout(showSaved.timer);
  showSaved.timer = setTimeout(() => (mark.hidden = true), 4000);
}

async function save() {
  const doc = documentNow();
  const problems = [];
  if (!doc.name) problems.push(gettext("Give the flow a name."));
  if (Object.keys(clientErrors).length) problems.push(interpolate(gettext("Fix the parameters of: %(nodes)s."), { nodes: Object.keys(clientErrors).join(", ") }));
  if (problems.length) {
    setBanner(problems);
    showErrors();
    if (!doc.name) nameInput.focus();
    return false;
  }
  const button = $("save");
  button.disabled = true;
  try {
    const flow = flowId ? await api.updateFlow(flowId, doc) : await api.createFlow(doc);
    flowId = flow.id;
    root.dataset.flowId = flowId;
    if (!location.pathname.endsWith(`/flows/${flowId}/`)) window.history.replaceState(null, "", `/flows/${flowId}/`);
    $("duplicate-flow").disabled = false;
    $("delete-flow").disabled = false;
    savedText = JSON.stringify(doc);
    serverErrors = {};
    setBanner([]);
    showErrors();
    refreshState();
    showSaved();
    if (!$("panel-versions").hidden) versionsPanel.refresh();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.errors.length) {
      serverErrors = {};
      const general = [];
      for (const { node, message } of error.errors) {
        if (node && canvas.nodes.has(node)) (serverErrors[node] ||= []).push(message);
        else general.push(node ? `${node}: ${message}` : message);
      }
      setBanner(general.length ? general : [gettext("The flow is not valid: see the marked nodes.")]);
      showErrors();
      showLinkProblems();
    } else {
      setBanner([interpolate(gettext("Could not save: %(reason)s"), { reason: error.message })]);
    }
    return false;
  } finally {
    button.disabled = false;
  }
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
  if (!graph || !Array.isArray(graph.nodes)) throw new Error(gettext("the file has no graph.nodes list"));
  const nodes = graph.nodes.map((node) => {
    const clean = { id: String(node.id), type: String(node.type), params: node.params && typeof node.params === "object" ? node.params : {} };
    if (node.position && Number.isFinite(+node.position.x) && Number.isFinite(+node.position.y)) {
      clean.position = { x: +node.position.x, y: +node.position.y };
    }
    return clean;
  });
  const edges = (Array.isArray(graph.edges) ? graph.edges : []).map((e) => ({ from: String(e.from), to: String(e.to) }));
  const clean = { nodes, edges };
  if (Array.isArray(graph.groups)) clean.groups = graph.groups;
  return clean;
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
    showLinkProblems();
  } catch (error) {
    setBanner([interpolate(gettext("Could not import %(file)s: %(reason)s"), { file: file.name, reason: error.message })]);
  }
}

// Add a step where it does not cover another node: next to the selected node, else in the middle of the view.
function addStep(type, x, y) {
  const step = steps.find((s) => s.type === type);
  if (!step) return;
  let position = { x, y };
  if (x === undefined) {
    const selected = canvas.selection?.kind === "node" ? canvas.position(canvas.selection.id) : null;
    if (selected) position = { x: selected.x + 250, y: selected.y };
    else {
      const box = $("canvas").getBoundingClientRect();
      position = canvas.toCanvas(box.x + box.width / 2 - 90, box.y + box.height / 2 - 40);
    }
    position = canvas.freePlace(Math.round(position.x), Math.round(position.y));
  }
  const id = canvas.addNode(type, Math.round(position.x), Math.round(position.y), defaultParams(step.params_schema));
  recordChange();
  canvas.selectNode(id);
  showNodePanel({ kind: "node", id });
  return id;
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.matches("input, textarea, select") || target.isContentEditable);
}

function selectedIds() {
  return canvas.selected.ids();
}

function copyText() {
  const ids = selectedIds();
  if (!ids.length) return null;
  const text = JSON.stringify(selectionDocument(canvas, ids), null, 2);
  remember(text);
  return text;
}

function paste(text) {
  const graph = text ? parseClipboard(text) : null;
  if (!graph) return false;
  const { ids, skipped } = pasteInto(canvas, graph);
  const notes = [];
  if (skipped.some((s) => s.reason === "source")) notes.push(gettext("A flow has one image input: the copied one was left out."));
  for (const s of skipped.filter((s) => s.reason === "type")) notes.push(interpolate(gettext("%(node)s: unknown step type %(type)s, left out."), { node: s.id, type: s.type }));
  setBanner(notes);
  if (ids.length) showLinkProblems();
  return ids.length > 0;
}

function duplicate() {
  const text = copyText();
  if (text) paste(text);
}

function cut() {
  if (copyText()) canvas.deleteSelection();
}

function groupSelection() {
  const ids = selectedIds();
  if (!ids.length) return;
  const id = canvas.groups.create(gettext("Group"), ids);
  recordChange();
  canvas.groups.editTitle(canvas.groups.groups.get(id));
}

function ungroup(groupId) {
  canvas.groups.remove(groupId);
  recordChange();
}

function selectAll() {
  canvas.selected.setIds([...canvas.nodes.keys()]);
  refreshState();
}

function openContextMenu(event, target) {
  const mod = navigator.platform.startsWith("Mac") ? "⌘" : "Ctrl+";
  const items = [];
  if (target.kind === "node") {
    if (!canvas.selected.has(target.id)) canvas.selectNode(target.id);
    const group = canvas.groups.groupOf(target.id);
    const many = canvas.selected.size > 1;
    items.push(
      { id: "copy", label: many ? gettext("Copy the selected nodes") : gettext("Copy"), shortcut: `${mod}C`, action: () => copyText() && navigator.clipboard?.writeText(remembered()).catch(() => {}) },
      { id: "cut", label: gettext("Cut"), shortcut: `${mod}X`, action: cut },
      { id: "duplicate", label: gettext("Duplicate"), shortcut: `${mod}D`, action: duplicate },
      { id: "group", label: gettext("Group the selection"), shortcut: `${mod}G`, action: groupSelection },
    );
    if (group) items.push({ id: "ungroup", label: interpolate(gettext("Ungroup “%(title)s”"), { title: group.title || gettext("Group") }), action: () => ungroup(group.id) });
    if (canvas.ports(canvas.nodes.get(target.id).type)[1] > 0 && !many) {
      items.push({ id: "connect", label: gettext("Connect to…"), shortcut: "C", action: () => $("connect-to")?.focus() });
    }
    items.push("separator", { id: "delete", label: many ? gettext("Delete the selected nodes") : gettext("Delete"), shortcut: "Del", action: () => canvas.deleteSelection() });
  } else if (target.kind === "edge") {
    items.push({
      id: "delete-link",
      label: interpolate(gettext("Delete the link %(from)s → %(to)s"), target),
      shortcut: "Del",
      action: () => canvas.disconnect(target.from, target.to),
    });
  } else if (target.kind === "group") {
    const group = canvas.groups.groups.get(target.id);
    items.push(
      { id: "rename-group", label: gettext("Rename the group"), action: () => canvas.groups.editTitle(group) },
      { id: "ungroup", label: gettext("Ungroup"), action: () => ungroup(target.id) },
    );
  } else {
    items.push(
      { id: "paste", label: gettext("Paste"), shortcut: `${mod}V`, disabled: !remembered(), action: () => paste(remembered()) },
      { id: "select-all", label: gettext("Select all"), shortcut: `${mod}A`, action: selectAll },
      { id: "fit", label: gettext("Fit the flow to the view"), shortcut: "F", action: () => canvas.fit() },
      "separator",
      { id: "shortcuts", label: gettext("Keyboard shortcuts"), shortcut: "?", action: () => $("shortcuts").showModal() },
    );
  }
  showMenu(event.clientX, event.clientY, items);
}

// Shown where the pointer is: why a link was refused, or which link it replaced.
function showWireTip(message, clientX, clientY, kind) {
  const tip = $("wire-tip");
  const box = $("canvas-wrap").getBoundingClientRect();
  tip.textContent = message;
  tip.dataset.kind = kind;
  tip.hidden = false;
  tip.style.left = `${Math.max(8, Math.min(clientX - box.x + 12, box.width - 300))}px`;
  tip.style.top = `${Math.max(8, clientY - box.y + 12)}px`;
  clearTimeout(showWireTip.timer);
  showWireTip.timer = setTimeout(() => (tip.hidden = true), 5000);
}

function onKeyDown(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  const typing = isTyping(event.target) || document.querySelector("dialog[open]");
  if (mod && key === "s") {
    event.preventDefault();
    save();
    return;
  }
  if (typing) return;
  if (mod && key === "z") {
    event.preventDefault();
    restore(event.shiftKey ? history.redo() : history.undo());
  } else if (mod && key === "y") {
    event.preventDefault();
    restore(history.redo());
  } else if (mod && key === "d") {
    event.preventDefault();
    duplicate();
  } else if (mod && key === "a") {
    event.preventDefault();
    selectAll();
  } else if (mod && key === "g") {
    event.preventDefault();
    groupSelection();
  } else if (mod && key === "v") {
    // The paste event brings the clipboard; when the browser gives none, the last copy made here is used.
    pendingPaste = true;
    setTimeout(() => {
      if (pendingPaste) paste(remembered());
      pendingPaste = false;
    }, 150);
  } else if (event.key === "Delete" || event.key === "Backspace") {
    if (canvas.deleteSelection()) event.preventDefault();
  } else if (event.key === "?") {
    event.preventDefault();
    $("shortcuts").showModal();
  } else if (event.key === "Escape") {
    closeMenu();
    canvas.selected.clear();
  } else if (key === "f" && !mod) {
    canvas.fit();
  } else if (key === "c" && !mod && canvas.selection?.kind === "node" && $("connect-to")) {
    event.preventDefault();
    $("connect-to").focus();
  }
}

let pendingPaste = false;

function setupClipboard() {
  // Copy and cut put the selected nodes on the clipboard as flow JSON (text typed or selected is left alone).
  for (const kind of ["copy", "cut"]) {
    document.addEventListener(kind, (event) => {
      if (isTyping(event.target) || window.getSelection()?.toString()) return;
      const text = copyText();
      if (!text) return;
      event.clipboardData.setData("text/plain", text);
      event.preventDefault();
      if (kind === "cut") canvas.deleteSelection();
    });
  }
  document.addEventListener("paste", (event) => {
    if (isTyping(event.target)) return;
    const text = event.clipboardData?.getData("text/plain");
    if (text && parseClipboard(text)) {
      pendingPaste = false;
      event.preventDefault();
      paste(text);
    }
  });
}

async function restoreVersion(version) {
  if (isDirty() && !(await confirmAction(gettext("Restoring replaces your unsaved changes. Restore this version?"), gettext("Restore")))) return;
  const flow = await api.restoreVersion(flowId, version);
  nameInput.value = flow.name;
  descriptionInput.value = flow.description || "";
  canvas.load(sanitiseGraph(flow.graph));
  history.push(canvas.toGraph());
  savedText = JSON.stringify(documentNow());
  refreshState();
  showSaved();
  await versionsPanel.refresh();
}

function setupFlowMenu() {
  const button = $("flow-menu-button");
  const menu = $("flow-menu");
  const toggle = (open) => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) menu.querySelector(".menu-item:not([disabled])")?.focus();
  };
  button.addEventListener("click", () => toggle(menu.hidden));
  menu.addEventListener("click", (event) => {
    if (event.target.closest(".menu-item")) toggle(false);
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      toggle(false);
      button.focus();
    }
  });
  document.addEventListener("mousedown", (event) => {
    if (!menu.hidden && !event.target.closest(".menu-wrap")) toggle(false);
  });
  // The file input is no tab stop; its label, the import item, opens the chooser on Enter and Space.
  $("import-item").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      toggle(false);
      button.focus();
      $("import-flow").click();
    }
  });
  $("export").addEventListener("click", exportFlow);
  $("shortcuts-button").addEventListener("click", () => $("shortcuts").showModal());
  $("duplicate-flow").addEventListener("click", async () => {
    if (!flowId) return;
    if (isDirty() && !(await save())) return;
    const copy = await api.duplicateFlow(flowId);
    location.href = `/flows/${encodeURIComponent(copy.id)}/`;
  });
  $("delete-flow").addEventListener("click", async () => {
    if (!flowId) return;
    if (!(await confirmFlowDelete(flowId, nameInput.value.trim()))) return;
    try {
      await api.deleteFlow(flowId);
      savedText = JSON.stringify(documentNow()); // nothing left to lose: leave without asking
      location.href = "/";
    } catch (error) {
      setBanner([interpolate(gettext("Could not delete: %(reason)s"), { reason: error.message })]);
    }
  });
}

async function init() {
  steps = await api.steps();
  canvas = new FlowCanvas($("canvas"), steps, {
    onChange: (reason) => {
      if (reason === "add") return; // recorded by addStep once the node is placed
      if (["connect", "disconnect", "remove", "paste"].includes(reason)) {
        serverErrors = {};
        setBanner([]);
        showErrors();
        canvas.markEdgeProblems();
      }
      recordChange();
    },
    onSelect: (selection) => {
      showNodePanel(selection);
      refreshState();
    },
    onRefuse: showWireTip,
    onView: () => minimap?.schedule(),
    onContextMenu: openContextMenu,
  });
  minimap = new Minimap($("canvas-wrap"), canvas);
  panels = setupPanels();
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
    showLinkProblems();
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
  $("import-flow").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) importFlow(file);
  });
  setupFlowMenu();
  for (const tab of TABS) {
    $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
    $(`tab-${tab}`).addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = TABS[(TABS.indexOf(tab) + (event.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }
  nameInput.addEventListener("input", refreshState);
  descriptionInput.addEventListener("input", refreshState);
  document.addEventListener("keydown", onKeyDown);
  setupClipboard();
  window.addEventListener("beforeunload", (event) => {
    if (isDirty()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  versionsPanel = createVersionsPanel($("versions-panel"), { flowId: () => flowId, onRestore: restoreVersion });
  runPanel = createRunPanel($("run-panel"), {
    canvas,
    flowId: () => flowId,
    // A run executes the canvas as it is (a draft when it differs from the saved flow): it never saves.
    draft: () => (JSON.stringify(canvas.toGraph()) !== JSON.stringify(JSON.parse(savedText).graph) ? canvas.toGraph() : null),
    problems: () => {
      if (!flowId) return gettext("Save the flow once before running it: runs belong to a saved flow.");
      if (Object.keys(clientErrors).length) return interpolate(gettext("Fix the parameters of: %(nodes)s."), { nodes: Object.keys(clientErrors).join(", ") });
      return "";
    },
    onStart: () => {
      selectTab("run");
      panels.reveal("side");
    },
    onFinish: () => {
      if (canvas.selection?.kind === "node") showInspection($("node-inspect"), canvas.selection.id, runPanel.lastExecution());
    },
  });
  refreshState();
  root.classList.add("ready");
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted === "sample") {
    // From a template: run it at once on the sample image, and leave a clean address behind.
    window.history.replaceState(null, "", location.pathname);
    runPanel.runSample();
  }
}

init().catch((error) => setBanner([interpolate(gettext("Could not open the editor: %(reason)s"), { reason: error.message })]));
