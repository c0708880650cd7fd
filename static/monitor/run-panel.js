// Run a flow from the editor: choose or drop an image, start an execution, watch it on the canvas, cancel it.
import { api, watchExecution } from "../api.js";
import { between, el, formatBytes, formatMs } from "../format.js";
import { gettext, interpolate } from "../i18n.js";
import { OutputPreviews } from "./preview.js";
import { ExecutionState } from "./state.js";

export function nodeTiming(node) {
  if (!node || node.busy_ms === undefined) return "";
  const parts = [interpolate(gettext("busy %(time)s"), { time: formatMs(node.busy_ms) })];
  if (node.started_ms !== undefined && node.finished_ms !== undefined) {
    parts.push(`${formatMs(node.started_ms)} → ${formatMs(node.finished_ms)}`);
  }
  return parts.join(" · ");
}

export function createRunPanel(root, { canvas, flowId, ensureSaved, onStart }) {
  let file = null;
  let socket = null;
  let state = null;
  let ticker = null;
  let localStart = 0;
  let previews = null;

  const fileInput = el("input", { id: "run-file", class: "visually-hidden", type: "file", accept: "image/*" });
  const dropText = el("span", { text: gettext("Drop an image here, or choose one…") });
  const dropZone = el("label", { class: "drop-zone", for: "run-file", tabindex: "0" }, dropText);
  const thumb = el("img", { class: "run-thumb", alt: gettext("Chosen image"), hidden: true });
  const runButton = el("button", { class: "btn btn-primary", id: "run", type: "button", disabled: true, text: gettext("Run") });
  const cancelButton = el("button", { class: "btn btn-danger", id: "run-cancel", type: "button", hidden: true, text: gettext("Cancel") });
  const badge = el("span", { class: "badge", id: "run-status", hidden: true });
  const elapsed = el("span", { class: "muted small", id: "run-elapsed" });
  const message = el("p", { class: "alert alert-error", id: "run-error", role: "alert", hidden: true });
  const outputFill = el("div", { class: "band-fill" });
  const outputCount = el("span", { class: "small muted" });
  const outputProgress = el(
    "div",
    { class: "output-progress", hidden: true },
    el("div", { class: "band-box", "aria-hidden": "true" }, outputFill),
    outputCount,
  );
  const results = el("div", { class: "run-results", id: "run-results" });
  const stats = el("dl", { class: "run-stats", id: "run-stats" });
  const pageLink = el("a", { id: "run-link", hidden: true, text: gettext("Open the execution page →") });

  root.append(
    el("h2", { class: "panel-title", text: gettext("Run this flow") }),
    dropZone,
    fileInput,
    thumb,
    el("div", { class: "run-actions" }, runButton, cancelButton, badge, elapsed),
    message,
    outputProgress,
    stats,
    results,
    pageLink,
  );

  const choose = (chosen) => {
    if (!chosen) return;
    file = chosen;
    dropText.textContent = `${file.name} · ${formatBytes(file.size)}`;
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    thumb.src = URL.createObjectURL(file);
    thumb.hidden = false;
    runButton.disabled = Boolean(state && !state.finished);
  };
  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  // Dropping an image on the panel or the canvas chooses it (a step dragged from the palette is not a file).
  for (const target of [dropZone, canvas.container]) {
    target.addEventListener("dragover", (event) => {
      if ([...event.dataTransfer.types].includes("Files")) {
        event.preventDefault();
        dropZone.classList.add("over");
      }
    });
    target.addEventListener("dragleave", () => dropZone.classList.remove("over"));
    target.addEventListener("drop", (event) => {
      const dropped = event.dataTransfer.files[0];
      dropZone.classList.remove("over");
      if (!dropped) return;
      event.preventDefault();
      choose(dropped);
      onStart();
    });
  }

  const outputIds = () => [...canvas.nodes.values()].filter((n) => n.type === "output").map((n) => n.id);

  const setStat = (key, label, value) => {
    let row = stats.querySelector(`[data-stat="${key}"]`);
    if (!row) {
      row = el("div", { dataset: { stat: key } }, el("dt", { text: label }), el("dd"));
      stats.append(row);
    }
    row.querySelector("dd").textContent = value;
  };

  const render = (changed) => {
    const execution = state.execution;
    badge.hidden = false;
    badge.textContent = execution.status;
    badge.className = `badge status-${execution.status}`;
    for (const id of changed ?? canvas.nodes.keys()) {
      const node = state.nodeState(id);
      canvas.setRunState(id, { ...node, timing: state.finished ? nodeTiming(execution.nodes[id]) : "" });
    }
    // Next to the live previews, the striped box counts the output's encoded tiles.
    const outputs = outputIds().map((id) => state.nodeState(id));
    const done = outputs.reduce((sum, n) => sum + (n.done || 0), 0);
    const total = outputs.reduce((sum, n) => sum + (n.total || 0), 0);
    outputProgress.hidden = state.finished;
    outputFill.style.height = `${total ? (100 * done) / total : 0}%`;
    outputCount.textContent = total ? interpolate(gettext("Output: %(done)s of %(total)s tiles encoded"), { done, total }) : gettext("Waiting for the first tile…");
    // The status frame carries the reason a run failed: show it now, not after the final REST read.
    if (state.finished && execution.error) {
      message.textContent = execution.error;
      message.hidden = false;
    }
    const ttfo = between(execution.started_at || execution.created_at, execution.first_output_at);
    if (ttfo !== null) setStat("ttfo", gettext("Time to first output"), formatMs(ttfo));
  };

  const finish = async () => {
    clearInterval(ticker);
    cancelButton.hidden = true;
    runButton.disabled = !file;
    try {
      state.execution = { ...state.execution, ...(await api.execution(state.execution.id)) };
    } catch (error) {
      message.textContent = interpolate(gettext("Could not read the final state: %(reason)s"), { reason: error.message });
      message.hidden = false;
    }
    const execution = state.execution;
    render();
    const start = execution.started_at || execution.created_at;
    setStat("ttfo", gettext("Time to first output"), formatMs(between(start, execution.first_output_at)));
    setStat("total", gettext("Total time"), formatMs(between(start, execution.finished_at) ?? performance.now() - localStart));
    elapsed.textContent = "";
    previews.finish(execution);
  };

  runButton.addEventListener("click", async () => {
    if (!file) return;
    message.hidden = true;
    if (!(await ensureSaved())) {
      message.textContent = gettext("Save the flow without errors before running it.");
      message.hidden = false;
      return;
    }
    socket?.close();
    canvas.clearRunState();
    results.replaceChildren();
    stats.replaceChildren();
    runButton.disabled = true;
    onStart();
    let execution;
    try {
      execution = await api.startExecution(flowId(), file);
    } catch (error) {
      message.textContent = interpolate(gettext("Could not start the run: %(reason)s"), { reason: error.message });
      message.hidden = false;
      runButton.disabled = false;
      return;
    }
    localStart = performance.now();
    state = new ExecutionState(execution);
    cancelButton.hidden = false;
    cancelButton.disabled = false;
    pageLink.href = `/executions/${encodeURIComponent(execution.id)}/`;
    pageLink.hidden = false;
    render();
    previews = new OutputPreviews(results, execution.id, outputIds());
    ticker = setInterval(() => (elapsed.textContent = formatMs(performance.now() - localStart)), 100);
    const watched = state;
    let ended = false;
    socket = watchExecution(execution.id, (frame) => {
      if (state !== watched || ended) return;
      const changed = state.apply(frame);
      render(frame.type === "progress" ? changed : undefined);
      if (state.finished) {
        ended = true;
        finish();
      }
    });
  });

  cancelButton.addEventListener("click", async () => {
    if (!state) return;
    cancelButton.disabled = true;
    try {
      await api.cancel(state.execution.id);
    } catch (error) {
      message.textContent = interpolate(gettext("Could not cancel: %(reason)s"), { reason: error.message });
      message.hidden = false;
      cancelButton.disabled = false;
    }
  });
}
