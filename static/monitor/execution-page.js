// The execution page: the frozen graph read-only, per-node timings, timeline, images; live while it runs.
import { api, watchExecution } from "../api.js";
import { FlowCanvas } from "../editor/canvas.js";
import { between, el, formatMs, statusLabel } from "../format.js";
import { gettext, interpolate } from "../i18n.js";
import { imageFigure, outputFigure } from "./figures.js";
import { OutputPreviews } from "./preview.js";
import { nodeTiming } from "./run-panel.js";
import { ExecutionState } from "./state.js";
import { renderTimeline } from "./timeline.js";

const root = document.getElementById("execution");
const executionId = root.dataset.executionId;
const $ = (id) => document.getElementById(id);
let canvas;
let state;
let graph;
let previews = null;

function stat(label, value, key) {
  return el("div", { class: "stat", dataset: { stat: key } }, el("span", { class: "stat-label", text: label }), el("span", { class: "stat-value", text: value }));
}

function renderStats(execution) {
  const start = execution.started_at || execution.created_at;
  const nodes = Object.values(execution.nodes || {});
  const tiles = nodes.reduce((sum, n) => sum + (n.done || 0), 0);
  $("stats").replaceChildren(
    stat(gettext("Status"), statusLabel(execution.status), "status"),
    stat(gettext("Time to first output"), formatMs(between(start, execution.first_output_at)), "ttfo"),
    stat(gettext("Total time"), formatMs(between(start, execution.finished_at)), "total"),
    stat(gettext("Queued for"), formatMs(between(execution.created_at, execution.started_at)), "queued"),
    stat(gettext("Tiles processed"), String(tiles), "tiles"),
  );
}

function renderNodeTable(execution) {
  const rows = graph.nodes.map((node) => {
    const info = state.nodeState(node.id);
    const raw = execution.nodes?.[node.id] || {};
    return el(
      "tr",
      { dataset: { node: node.id } },
      el("td", {}, el("code", { text: node.id, translate: "no" })),
      el("td", { text: canvas.step(node.type).label }),
      el("td", {}, el("span", { class: `badge state-${info.status}`, text: statusLabel(info.status), dataset: { status: info.status } })),
      el("td", { class: "num", text: info.total ? `${info.done}/${info.total}` : String(info.done || 0) }),
      el("td", { class: "num", text: formatMs(raw.started_ms) }),
      el("td", { class: "num", text: formatMs(raw.finished_ms) }),
      el("td", { class: "num", text: formatMs(raw.busy_ms) }),
      el("td", { class: "num", text: raw.busy_ms !== undefined && info.done ? formatMs(raw.busy_ms / info.done) : "—" }),
    );
  });
  const head = [gettext("Node"), gettext("Step"), gettext("State"), gettext("Tiles"), gettext("Started"), gettext("Finished"), gettext("Busy"), gettext("Per tile")].map((h) => el("th", { text: h }));
  $("node-table").replaceChildren(el("table", { class: "table compact" }, el("thead", {}, el("tr", {}, head)), el("tbody", {}, rows)));
}

// The input, then the outputs: live previews while the run goes, which become the results when it ends.
function renderImages(execution) {
  const images = $("images");
  if (previews) {
    if (state.finished) previews.finish(execution);
    return;
  }
  images.replaceChildren(imageFigure(api.inputUrl(execution.id), gettext("Input image"), gettext("Input"), { input: "input" }));
  if (state.finished) {
    for (const output of execution.outputs || []) images.append(outputFigure(output));
  } else {
    const outputNodes = graph.nodes.filter((n) => n.type === "output").map((n) => String(n.id));
    previews = new OutputPreviews(images, executionId, outputNodes);
  }
}

function render(changed) {
  const execution = state.execution;
  const badge = $("status-badge");
  badge.textContent = statusLabel(execution.status);
  badge.dataset.status = execution.status;
  badge.className = `badge status-${execution.status}`;
  $("cancel").hidden = state.finished;
  const error = $("execution-error");
  error.textContent = execution.error || "";
  error.hidden = !execution.error;
  for (const id of changed ?? canvas.nodes.keys()) {
    canvas.setRunState(id, { ...state.nodeState(id), timing: nodeTiming(execution.nodes?.[id]) });
  }
  renderStats(execution);
  renderNodeTable(execution);
  if (changed === undefined) {
    renderTimeline($("timeline"), execution, graph.nodes.map((n) => n.id));
    renderImages(execution);
  }
}

async function init() {
  graph = JSON.parse(document.getElementById("execution-graph").textContent);
  const [steps, execution] = await Promise.all([api.steps(), api.execution(executionId)]);
  canvas = new FlowCanvas($("canvas"), steps, { readonly: true });
  canvas.load({ nodes: graph.nodes.map((n) => ({ id: String(n.id), type: String(n.type), params: n.params || {}, position: n.position })), edges: graph.edges || [] });
  requestAnimationFrame(() => canvas.fit());
  state = new ExecutionState(execution);
  render();

  $("cancel").addEventListener("click", async () => {
    $("cancel").disabled = true;
    try {
      await api.cancel(executionId);
    } catch (error) {
      $("execution-error").textContent = interpolate(gettext("Could not cancel: %(reason)s"), { reason: error.message });
      $("execution-error").hidden = false;
      $("cancel").disabled = false;
    }
  });
  $("rerun").addEventListener("click", async () => {
    $("rerun").disabled = true;
    try {
      const next = await api.rerun(executionId);
      location.href = `/executions/${encodeURIComponent(next.id)}/`;
    } catch (error) {
      $("execution-error").textContent = interpolate(gettext("Could not run again: %(reason)s"), { reason: error.message });
      $("execution-error").hidden = false;
      $("rerun").disabled = false;
    }
  });

  if (!state.finished) {
    let ended = false;
    watchExecution(executionId, async (frame) => {
      const changed = state.apply(frame);
      const final = frame.type === "status" || (frame.type === "snapshot" && state.finished);
      if (final && !ended) {
        ended = true;
        // The REST answer carries the timings and outputs that frames do not.
        state = new ExecutionState(await api.execution(executionId));
        render();
      } else if (!final) {
        render(frame.type === "progress" ? changed : undefined);
      }
    });
  }
  root.classList.add("ready");
}

init().catch((error) => {
  $("execution-error").textContent = interpolate(gettext("Could not load the execution: %(reason)s"), { reason: error.message });
  $("execution-error").hidden = false;
});
