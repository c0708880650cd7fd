// The batch page (/batches/{id}/): overall progress from the websocket, the grid of items filling in.
import { api, watchBatch } from "../api.js";
import { gettext, interpolate, locale } from "../i18n.js";

const root = document.getElementById("batch");
const batchId = root.dataset.batchId;
const grid = document.getElementById("batch-grid");
const statusBadge = document.getElementById("batch-status");
const countsLine = document.getElementById("batch-counts");
const bar = document.getElementById("batch-bar");
const cancelButton = document.getElementById("batch-cancel");
const download = document.getElementById("batch-download");
const errorBox = document.getElementById("batch-error");
const FINISHED = ["succeeded", "failed", "cancelled"];
const STATUS_LABELS = {
  queued: gettext("queued"),
  running: gettext("running"),
  succeeded: gettext("succeeded"),
  failed: gettext("failed"),
  cancelled: gettext("cancelled"),
};
const REFRESH_MS = 1000;

let batch = null;
let filter = "all";
let refreshTimer = null;
const tiles = new Map(); // item index -> {element, key}
const numbers = new Intl.NumberFormat(locale);

function duration(ms) {
  if (ms == null) return "";
  return ms < 1000
    ? interpolate(gettext("%(ms)s ms"), { ms: numbers.format(ms) })
    : interpolate(gettext("%(s)s s"), { s: new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }).format(ms / 1000) });
}

function showCounts(counts) {
  const total = counts.total || 0;
  const width = (n) => `${total ? (100 * n) / total : 0}%`;
  document.getElementById("batch-bar-ok").style.width = width(counts.succeeded);
  document.getElementById("batch-bar-failed").style.width = width(counts.failed);
  document.getElementById("batch-bar-cancelled").style.width = width(counts.cancelled);
  const done = counts.succeeded + counts.failed + counts.cancelled;
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(done));
  countsLine.textContent = interpolate(
    gettext("%(done)s of %(total)s done · %(succeeded)s succeeded · %(failed)s failed · %(cancelled)s cancelled"),
    {
      done: numbers.format(done),
      total: numbers.format(total),
      succeeded: numbers.format(counts.succeeded),
      failed: numbers.format(counts.failed),
      cancelled: numbers.format(counts.cancelled),
    },
  );
}

function showStatus(status) {
  statusBadge.className = `badge status-${status}`;
  statusBadge.textContent = STATUS_LABELS[status] || status;
  const finished = FINISHED.includes(status);
  cancelButton.hidden = finished;
  download.hidden = !finished;
}

function thumbnailUrl(item) {
  const node = batch.outputs[0];
  if (item.status === "succeeded" && item.execution && node) return api.outputUrl(item.execution, node);
  return item.input_url;
}

function renderTile(item) {
  const key = `${item.status}|${item.execution}|${item.error}|${item.duration_ms}`;
  let tile = tiles.get(item.index);
  if (tile && tile.key === key) return tile.element;
  const element = tile?.element || document.createElement("li");
  element.className = "batch-item";
  element.dataset.status = item.status;
  element.replaceChildren();
  const picture = document.createElement(item.execution ? "a" : "div");
  picture.className = "batch-thumb";
  if (item.execution) picture.href = `/executions/${encodeURIComponent(item.execution)}/`;
  const url = thumbnailUrl(item);
  if (url && item.status !== "failed") {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = "";
    img.src = url;
    picture.append(img);
  } else {
    picture.classList.add("batch-thumb-empty");
    picture.textContent = item.status === "failed" ? "!" : "…";
  }
  const name = document.createElement("p");
  name.className = "batch-name";
  name.translate = false;
  name.textContent = item.name;
  name.title = item.name;
  const meta = document.createElement("p");
  meta.className = "batch-meta";
  const badge = document.createElement("span");
  badge.className = `badge status-${item.status}`;
  badge.textContent = STATUS_LABELS[item.status] || item.status;
  meta.append(badge, " ", duration(item.duration_ms));
  element.append(picture, name, meta);
  if (item.error) {
    const error = document.createElement("p");
    error.className = "batch-item-error";
    error.textContent = item.error;
    element.append(error);
  }
  tiles.set(item.index, { element, key });
  return element;
}

function renderItems() {
  const fragment = document.createDocumentFragment();
  for (const item of batch.items) {
    const element = renderTile(item);
    element.hidden = filter === "failed" && item.status !== "failed";
    if (!element.isConnected) fragment.append(element);
  }
  grid.append(fragment);
}

async function refresh() {
  refreshTimer = null;
  try {
    batch = await api.batch(batchId);
    errorBox.hidden = true;
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.hidden = false;
    return;
  }
  showCounts(batch);
  showStatus(batch.status);
  renderItems();
}

function refreshSoon() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, REFRESH_MS);
}

for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => {
    filter = button.dataset.filter;
    for (const other of document.querySelectorAll("[data-filter]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    if (batch) renderItems();
  });
}

cancelButton.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    batch = await api.cancelBatch(batchId);
    showCounts(batch);
    showStatus(batch.status);
    renderItems();
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.hidden = false;
  } finally {
    cancelButton.disabled = false;
  }
});

watchBatch(batchId, (message) => {
  if (message.type === "snapshot") {
    batch = message.batch;
    showCounts(batch);
    showStatus(batch.status);
    renderItems();
  } else if (message.type === "progress") {
    showCounts({ ...message });
    refreshSoon();
  } else if (message.type === "status") {
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    refresh();
  }
});
