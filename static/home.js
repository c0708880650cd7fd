// Home page: import a flow JSON file through the API, then open it in the editor.
import { api } from "./api.js";

const input = document.getElementById("import-file");
const status = document.getElementById("import-status");

input.addEventListener("change", async () => {
  const file = input.files[0];
  if (!file) return;
  status.hidden = true;
  try {
    const doc = JSON.parse(await file.text());
    const flow = await api.createFlow({ name: doc.name, description: doc.description || "", graph: doc.graph });
    location.href = `/flows/${encodeURIComponent(flow.id)}/`;
  } catch (error) {
    status.textContent = `Could not import ${file.name}: ${error.message}`;
    status.hidden = false;
  } finally {
    input.value = "";
  }
});
