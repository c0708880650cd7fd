// Home page: templates one click from a running flow, import (as a copy when the name is taken), and
// rename, duplicate, delete from the list of flows; the workers' heartbeats in local time.
import { api } from "./api.js";
import { confirmFlowDelete } from "./flow-delete.js";
import { formatClock } from "./format.js";
import { gettext, interpolate } from "./i18n.js";

const input = document.getElementById("import-file");
const status = document.getElementById("import-status");

function fail(message) {
  status.textContent = message;
  status.hidden = false;
}

input.addEventListener("change", async () => {
  const file = input.files[0];
  if (!file) return;
  status.hidden = true;
  try {
    const doc = JSON.parse(await file.text());
    const flow = await api.createFlow({ name: doc.name, description: doc.description || "", graph: doc.graph }, { onConflict: "copy" });
    location.href = `/flows/${encodeURIComponent(flow.id)}/`;
  } catch (error) {
    fail(interpolate(gettext("Could not import %(file)s: %(reason)s"), { file: file.name, reason: error.message }));
  } finally {
    input.value = "";
  }
});

for (const button of document.querySelectorAll("[data-use-template]")) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    const doc = JSON.parse(document.getElementById(button.dataset.useTemplate).textContent);
    try {
      const flow = await api.createFlow(doc, { onConflict: "copy" });
      location.href = `/flows/${encodeURIComponent(flow.id)}/?run=sample`;
    } catch (error) {
      button.disabled = false;
      fail(interpolate(gettext("Could not create the flow: %(reason)s"), { reason: error.message }));
    }
  });
}

async function rename(id, name) {
  const dialog = document.getElementById("rename");
  const field = document.getElementById("rename-input");
  const error = document.getElementById("rename-error");
  field.value = name;
  error.textContent = "";
  dialog.showModal();
  field.select();
  dialog.addEventListener(
    "close",
    async () => {
      if (dialog.returnValue !== "ok" || !field.value.trim() || field.value.trim() === name) return;
      try {
        await api.patchFlow(id, { name: field.value.trim() });
        location.reload();
      } catch (problem) {
        fail(interpolate(gettext("Could not rename: %(reason)s"), { reason: problem.message }));
      }
    },
    { once: true },
  );
}

document.getElementById("flow-table")?.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-flow-action]");
  if (!button) return;
  const row = button.closest("tr");
  const { flowId, flowName } = row.dataset;
  try {
    if (button.dataset.flowAction === "rename") await rename(flowId, flowName);
    else if (button.dataset.flowAction === "duplicate") {
      await api.duplicateFlow(flowId);
      location.reload();
    } else if (button.dataset.flowAction === "delete") {
      if (!(await confirmFlowDelete(flowId, flowName))) return;
      await api.deleteFlow(flowId);
      row.remove();
    }
  } catch (error) {
    fail(error.message);
  }
});

// The workers' last heartbeats come as ISO timestamps: show them in the reader's time zone and language.
for (const time of document.querySelectorAll("#worker-table time[datetime]")) {
  time.title = time.dateTime;
  time.textContent = formatClock(time.dateTime);
}
