// The one client of Tileflow's HTTP API (CONTRACT §3) and websocket (§4) used by every page.

export class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.describe(status, body));
    this.status = status;
    this.body = body;
  }

  // Per-node validation errors ({"errors": [{node, message}]}), or an empty list.
  get errors() {
    return Array.isArray(this.body?.errors) ? this.body.errors : [];
  }

  static describe(status, body) {
    if (body?.error) return String(body.error);
    if (Array.isArray(body?.errors)) return body.errors.map((e) => (e.node ? `${e.node}: ` : "") + e.message).join("; ");
    if (Array.isArray(body?.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return `HTTP ${status}`;
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function request(method, path, { json, form } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text.slice(0, 200) || `HTTP ${response.status}` };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  steps: () => request("GET", "/api/steps").then((d) => d.steps),
  flows: () => request("GET", "/api/flows").then((d) => d.flows),
  flow: (id) => request("GET", `/api/flows/${encodeURIComponent(id)}`),
  // onConflict "copy": a name already taken is given a free one ("name (2)") instead of an error.
  createFlow: (doc, { onConflict = "error" } = {}) => request("POST", `/api/flows${onConflict === "copy" ? "?on_conflict=copy" : ""}`, { json: doc }),
  patchFlow: (id, changes) => request("PATCH", `/api/flows/${encodeURIComponent(id)}`, { json: changes }),
  duplicateFlow: (id) => request("POST", `/api/flows/${encodeURIComponent(id)}/duplicate`),
  versions: (id) => request("GET", `/api/flows/${encodeURIComponent(id)}/versions`),
  restoreVersion: (id, version) => request("POST", `/api/flows/${encodeURIComponent(id)}/versions/${version}/restore`),
  updateFlow: (id, doc) => request("PUT", `/api/flows/${encodeURIComponent(id)}`, { json: doc }),
  deleteFlow: (id) => request("DELETE", `/api/flows/${encodeURIComponent(id)}`),
  // With `graph`, a draft run of that graph (the editor's unsaved canvas); the saved flow is not changed.
  startExecution(flowId, file, graph = null) {
    const form = new FormData();
    form.append("image", file, file.name || "image");
    if (graph) form.append("graph", JSON.stringify(graph));
    return request("POST", `/api/flows/${encodeURIComponent(flowId)}/executions`, { form });
  },
  execution: (id) => request("GET", `/api/executions/${encodeURIComponent(id)}`),
  executions: (flowId) =>
    request("GET", "/api/executions" + (flowId ? `?flow=${encodeURIComponent(flowId)}` : "")).then((d) => d.executions),
  nodePreview: (id, node) => request("GET", `/api/executions/${encodeURIComponent(id)}/nodes/${encodeURIComponent(node)}`),
  cancel: (id) => request("POST", `/api/executions/${encodeURIComponent(id)}/cancel`),
  rerun: (id) => request("POST", `/api/executions/${encodeURIComponent(id)}/rerun`),
  inputUrl: (id) => `/api/executions/${encodeURIComponent(id)}/input`,
  batch: (id) => request("GET", `/api/batches/${encodeURIComponent(id)}`),
  cancelBatch: (id) => request("POST", `/api/batches/${encodeURIComponent(id)}/cancel`),
  batchResultsUrl: (id) => `/api/batches/${encodeURIComponent(id)}/results`,
  triggers: (flowId) => request("GET", `/api/triggers?flow=${encodeURIComponent(flowId)}`).then((d) => d.triggers),
  createTrigger: (flowId, doc) => request("POST", `/api/flows/${encodeURIComponent(flowId)}/triggers`, { json: doc }),
  updateTrigger: (id, changes) => request("PATCH", `/api/triggers/${encodeURIComponent(id)}`, { json: changes }),
  deleteTrigger: (id) => request("DELETE", `/api/triggers/${encodeURIComponent(id)}`),
  triggerEvents: (id, limit = 20) =>
    request("GET", `/api/triggers/${encodeURIComponent(id)}/events?limit=${limit}`).then((d) => d.events),
  // With follow, a running execution's output streams as it is written (a live preview); else the download.
  outputUrl: (id, node, { follow = false } = {}) =>
    `/api/executions/${encodeURIComponent(id)}/output?node=${encodeURIComponent(node)}${follow ? "&follow=1" : ""}`,
};

const FINISHED = ["succeeded", "failed", "cancelled"];

// Open a websocket of the API; call onMessage for each frame, reconnecting until `ended(message)`.
function watchSocket(path, onMessage, ended) {
  let socket = null;
  let finished = false;
  let stopped = false;
  let attempts = 0;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.addEventListener("message", (event) => {
      attempts = 0;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (ended(message)) finished = true;
      onMessage(message);
    });
    socket.addEventListener("close", () => {
      // The snapshot sent on reconnect covers whatever was missed meanwhile.
      if (finished || stopped || attempts >= 5) return;
      attempts += 1;
      setTimeout(open, 500 * attempts);
    });
  };
  open();
  return {
    close() {
      stopped = true;
      socket?.close();
    },
  };
}

// Open the execution's websocket (CONTRACT §4), reconnecting until a final status.
export function watchExecution(id, onMessage) {
  return watchSocket(
    `/ws/executions/${encodeURIComponent(id)}/`,
    onMessage,
    (message) => message.type === "status" || (message.type === "snapshot" && FINISHED.includes(message.execution?.status)),
  );
}

// Open a batch's websocket (CONTRACT §7: snapshot, progress counts, final status), reconnecting until the end.
export function watchBatch(id, onMessage) {
  return watchSocket(
    `/ws/batches/${encodeURIComponent(id)}/`,
    onMessage,
    (message) => message.type === "status" || (message.type === "snapshot" && FINISHED.includes(message.batch?.status)),
  );
}

// Start a batch (CONTRACT §7) from images (each {file, path}) and/or one zip; onProgress(sent, total)
// follows the upload, which fetch cannot report.
export function createBatch(flowId, { images = [], archive = null }, onProgress = () => {}) {
  const form = new FormData();
  for (const { file, path } of images) {
    form.append("path", path || file.name);
    form.append("image", file, file.name || "image");
  }
  if (archive) form.append("archive", archive, archive.name || "archive.zip");
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/flows/${encodeURIComponent(flowId)}/batches`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.total));
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = { error: xhr.responseText.slice(0, 200) || `HTTP ${xhr.status}` };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error: "the upload failed: network error" })));
    xhr.send(form);
  });
}
