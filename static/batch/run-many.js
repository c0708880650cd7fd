// "Run on many…": a dialog that takes a dropped folder, several images or one zip and starts a batch.
// Any element with data-run-many and data-flow-id (and data-flow-name) opens it for that flow.
import { createBatch } from "../api.js";
import { gettext, interpolate, ngettext } from "../i18n.js";

const dialog = document.getElementById("run-many");
const drop = document.getElementById("run-many-drop");
const filesInput = document.getElementById("run-many-files");
const folderInput = document.getElementById("run-many-folder");
const summary = document.getElementById("run-many-summary");
const progress = document.getElementById("run-many-progress");
const errorBox = document.getElementById("run-many-error");
const startButton = document.getElementById("run-many-start");
const IMAGE = /\.(jpe?g|jpe|mpo|png|webp|gif|bmp|tiff?|heic|heif|avif)$/i;
const ARCHIVE = /\.zip$/i;

let flowId = null;
let chosen = { images: [], archive: null, others: 0 };

function fail(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

// Take (file, relative path) pairs: images by name, at most one zip; hidden files and others left out.
function choose(entries) {
  const next = { images: [], archive: null, others: 0 };
  fail("");
  for (const { file, path } of entries) {
    const name = path.split("/").pop();
    if (name.startsWith(".")) continue;
    if (ARCHIVE.test(name)) {
      if (next.archive) {
        fail(gettext("One zip at a time: drop a single archive, or the images themselves."));
        return;
      }
      next.archive = file;
    } else if (IMAGE.test(name)) {
      next.images.push({ file, path });
    } else {
      next.others += 1;
    }
  }
  chosen = next;
  const parts = [];
  const images = chosen.images.length;
  if (images) parts.push(interpolate(ngettext("%(n)s image", "%(n)s images", images), { n: images }));
  if (chosen.archive) parts.push(interpolate(gettext("the archive %(name)s"), { name: chosen.archive.name }));
  if (chosen.others) parts.push(interpolate(ngettext("%(n)s other file left out", "%(n)s other files left out", chosen.others), { n: chosen.others }));
  summary.textContent = parts.length ? parts.join(" · ") : gettext("No images in what was dropped.");
  startButton.disabled = !(chosen.images.length || chosen.archive);
}

function fromInput(input) {
  return [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

// Walk a dropped folder (FileSystemEntry API), keeping each file's path from the dropped folder.
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
    }
  }
}

async function fromDrop(transfer) {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...transfer.files].map((file) => ({ file, path: file.name }));
  const out = [];
  for (const entry of entries) await walk(entry, "", out);
  return out;
}

filesInput.addEventListener("change", () => choose(fromInput(filesInput)));
folderInput.addEventListener("change", () => choose(fromInput(folderInput)));
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("is-over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("is-over");
  try {
    choose(await fromDrop(event.dataTransfer));
  } catch (error) {
    fail(error.message);
  }
});

startButton.addEventListener("click", async () => {
  startButton.disabled = true;
  progress.hidden = false;
  progress.value = 0;
  fail("");
  try {
    const batch = await createBatch(flowId, chosen, (sent, total) => {
      progress.max = total || 1;
      progress.value = sent;
      summary.textContent = interpolate(gettext("Uploading… %(percent)s%"), {
        percent: total ? Math.floor((100 * sent) / total) : 0,
      });
    });
    location.href = `/batches/${encodeURIComponent(batch.id)}/`;
  } catch (error) {
    fail(error.message);
    startButton.disabled = false;
    progress.hidden = true;
  }
});

for (const opener of document.querySelectorAll("[data-run-many]")) {
  opener.addEventListener("click", () => {
    flowId = opener.dataset.flowId;
    if (!flowId) return;
    document.getElementById("run-many-flow").textContent = opener.dataset.flowName || "";
    filesInput.value = "";
    folderInput.value = "";
    chosen = { images: [], archive: null, others: 0 };
    summary.textContent = "";
    progress.hidden = true;
    startButton.disabled = true;
    fail("");
    dialog.showModal();
  });
}
