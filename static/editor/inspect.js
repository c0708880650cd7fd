// Inspect a node after a run: its own output (a small preview the server makes from the run's input),
// its size and mode, and its timings.
import { api } from "../api.js";
import { el, formatMs } from "../format.js";
import { gettext, interpolate } from "../i18n.js";

export function showInspection(box, nodeId, execution) {
  box.replaceChildren();
  const node = execution?.nodes?.[nodeId];
  if (!execution || execution.status !== "succeeded" || !node || !execution.graph?.nodes?.some((n) => n.id === nodeId)) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const facts = el("dl", { class: "run-stats inspect-facts" });
  const fact = (key, label, value) => facts.append(el("div", { dataset: { fact: key } }, el("dt", { text: label }), el("dd", { text: value })));
  const image = el("img", { class: "result-image inspect-image", alt: interpolate(gettext("Output of %(node)s"), { node: nodeId }), dataset: { inspect: nodeId } });
  const status = el("p", { class: "muted small", role: "status", text: gettext("Making the preview…") });
  box.append(el("h3", { text: gettext("This node's output in the last run") }), image, status, facts);
  fact("busy", gettext("Busy"), formatMs(node.busy_ms));
  fact("window", gettext("Start → end"), `${formatMs(node.started_ms)} → ${formatMs(node.finished_ms)}`);
  fact("tiles", gettext("Tiles"), `${node.done}/${node.total}`);
  api
    .nodePreview(execution.id, nodeId)
    .then((preview) => {
      image.src = preview.url;
      status.textContent = "";
      fact("size", gettext("Size"), interpolate(gettext("%(width)s × %(height)s px"), preview));
      fact("mode", gettext("Mode"), preview.mode);
    })
    .catch((error) => {
      image.hidden = true;
      status.textContent = interpolate(gettext("No preview: %(reason)s"), { reason: error.message });
    });
}
