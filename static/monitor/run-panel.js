// Run a flow from the editor: choose or drop an image, start an execution, watch it on the canvas, cancel it.
import { api, watchExecution } from "../api.js";
import { between, el, formatBytes, formatMs, statusLabel } from "../format.js";
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

// What the server accepts (runtime/decode.py ACCEPTED_FORMATS, docs/limits.md): it tells formats by content, so
// the first bytes decide here too; a name or type that says image is enough to let the server judge the rest.
const ACCEPTED_NAME = /\.(jpe?g|jpe|mpo|png|webp|gif|bmp|tiff?|heic|heif|avif)$/i;
const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1", "avif", "avis"];

function startsWith(bytes, signature, offset = 0) {
  return signature.length + offset <= bytes.length && [...signature].every((char, i) => bytes[offset + i] === char.charCodeAt(0));
}

function hasAcceptedSignature(bytes) {
  return (
    startsWith(bytes, "\xff\xd8\xff") || // JPEG, MPO
    startsWith(bytes, "\x89PNG\r\n\x1a\n") ||
    startsWith(bytes, "GIF87a") ||
    startsWith(bytes, "GIF89a") ||
    startsWith(bytes, "BM") ||
    (startsWith(bytes, "RIFF") && startsWith(bytes, "WEBP", 8)) ||
    ["II*\0", "MM\0*", "II+\0", "MM\0+"].some((tiff) => startsWith(bytes, tiff)) ||
    (startsWith(bytes, "ftyp", 4) && HEIF_BRANDS.some((brand) => startsWith(bytes, brand, 8)))
  );
}

async function mayBeAccepted(file) {
  if (file.type.startsWith("image/") || ACCEPTED_NAME.test(file.name)) return true;
  return hasAcceptedSignature(new Uint8Array(await file.slice(0, 16).arrayBuffer()));
}

// A sample photo drawn in the browser, for a first run without a file at hand.
function samplePhoto() {
  const canvas = Object.assign(document.createElement("canvas"), { width: 1200, height: 800 });
  const context = canvas.getContext("2d");
  const sky = context.createLinearGradient(0, 0, 0, 800);
  sky.addColorStop(0, "#4f8fe8");
  sky.addColorStop(1, "#f7c97e");
  context.fillStyle = sky;
  context.fillRect(0, 0, 1200, 800);
  context.fillStyle = "#f9e27d";
  context.beginPath();
  context.arc(900, 260, 110, 0, Math.PI * 2);
  context.fill();
  context.fillStyle = "#2f5d3a";
  context.beginPath();
  context.moveTo(0, 800);
  for (let x = 0; x <= 1200; x += 60) context.lineTo(x, 560 + Math.sin(x / 130) * 70);
  context.lineTo(1200, 800);
  context.fill();
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(new File([blob], "sample.png", { type: "image/png" })), "image/png"));
}

export function createRunPanel(root, { canvas, flowId, draft, problems, onStart, onFinish = () => {} }) {
  let file = null;
  let socket = null;
  let state = null;
  let ticker = null;
  let localStart = 0;
  let previews = null;
  let firstSeen = 0;

  const fileInput = el("input", { id: "run-file", class: "visually-hidden", type: "file", accept: "image/*,.tif,.tiff,.heic,.heif,.avif" });
  const dropText = el("span", { text: gettext("Drop an image here, or choose one…") });
  const dropZone = el("label", { class: "drop-zone", for: "run-file", tabindex: "0" }, dropText);
  const thumb = el("img", { class: "run-thumb", alt: gettext("Chosen image"), hidden: true });
  // A file the server reads but this browser cannot show (TIFF, HEIC in Chromium): its name and size, no thumbnail.
  const placeholderKind = el("span", { class: "run-placeholder-kind", "aria-hidden": "true" });
  const placeholderName = el("span", { class: "run-placeholder-name", translate: "no" });
  const placeholder = el(
    "div",
    { class: "run-placeholder", id: "run-placeholder", hidden: true },
    placeholderKind,
    placeholderName,
    el("span", { class: "muted small", text: gettext("No preview in this browser; the server reads it when it runs.") }),
  );
  const runButton = el("button", { class: "btn btn-primary", id: "run", type: "button", disabled: true, text: gettext("Run") });
  const sampleButton = el("button", { class: "btn btn-small", id: "run-sample", type: "button", text: gettext("Use a sample image") });
  const draftNote = el("p", { class: "muted small", id: "run-draft-note", text: gettext("Runs use the canvas as it is, unsaved changes too, and never change the saved flow.") });
  const legend = el("p", { class: "muted small", id: "run-legend", hidden: true, text: gettext("On each node: tiles done/total; “busy” is the time its tiles took, “start → end” when it worked, from the run's start. Click a node to see its own output.") });
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
    draftNote,
    dropZone,
    fileInput,
    sampleButton,
    thumb,
    placeholder,
    el("div", { class: "run-actions" }, runButton, cancelButton, badge, elapsed),
    message,
    legend,
    outputProgress,
    stats,
    results,
    pageLink,
  );

  // A new choice clears the last one's error. Any file the server may accept can run: the thumbnail is only a
  // preview, and the server has the last word on the rest.
  let choice = 0;
  const choose = async (chosen) => {
    if (!chosen) return;
    const current = ++choice;
    message.hidden = true;
    const label = `${chosen.name} · ${formatBytes(chosen.size)}`;
    dropText.textContent = label;
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    thumb.removeAttribute("src");
    file = null;
    runButton.disabled = true;
    thumb.hidden = true;
    placeholder.hidden = true;
    if (!(await mayBeAccepted(chosen))) {
      if (current !== choice) return;
      message.textContent = interpolate(gettext("%(name)s is not an image Tileflow reads; choose a JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF file."), { name: chosen.name });
      message.hidden = false;
      return;
    }
    if (current !== choice) return;
    file = chosen;
    runButton.disabled = Boolean(state && !state.finished);
    thumb.onload = () => {
      if (current === choice) thumb.hidden = false;
    };
    thumb.onerror = () => {
      if (current !== choice) return;
      placeholderKind.textContent = chosen.name.includes(".") ? chosen.name.split(".").pop().toUpperCase() : "?";
      placeholderName.textContent = label;
      placeholder.hidden = false;
    };
    thumb.src = URL.createObjectURL(chosen);
  };
  sampleButton.addEventListener("click", async () => choose(await samplePhoto()));
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
    badge.textContent = statusLabel(execution.status);
    badge.dataset.status = execution.status;
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
    // Progress frames carry no timestamps: the first output tile seen here stands for the first output.
    const ttfo = between(execution.started_at || execution.created_at, execution.first_output_at);
    if (ttfo !== null) setStat("ttfo", gettext("Time to first output"), formatMs(ttfo));
    else if (done > 0 && !firstSeen) {
      firstSeen = performance.now();
      setStat("ttfo", gettext("Time to first output"), formatMs(firstSeen - localStart));
    }
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
    legend.hidden = false;
    previews.finish(execution);
    onFinish(execution);
  };

  runButton.addEventListener("click", async () => {
    if (!file) return;
    message.hidden = true;
    const problem = problems();
    if (problem) {
      message.textContent = problem;
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
      execution = await api.startExecution(flowId(), file, draft());
    } catch (error) {
      message.textContent = interpolate(gettext("Could not start the run: %(reason)s"), { reason: error.message });
      message.hidden = false;
      runButton.disabled = false;
      return;
    }
    localStart = performance.now();
    firstSeen = 0;
    legend.hidden = true;
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

  return {
    lastExecution: () => (state?.finished ? state.execution : null),
    async runSample() {
      onStart();
      await choose(await samplePhoto());
      runButton.click();
    },
  };
}
