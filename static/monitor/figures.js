// Image figures with a caption and a download button, for inputs and outputs.
import { el, formatBytes } from "../format.js";
import { gettext, interpolate } from "../i18n.js";

export function imageFigure(src, alt, caption, dataset = {}) {
  return el(
    "figure",
    { class: "result" },
    el("img", { src, alt, class: "result-image", dataset }),
    el("figcaption", {}, el("span", { text: caption, translate: "no" }), el("a", { class: "btn btn-small", href: src, download: "", text: gettext("Download"), dataset })),
  );
}

export function outputFigure(output) {
  return imageFigure(output.url, interpolate(gettext("Output of %(node)s"), { node: output.node }), `${output.node} · ${output.content_type} · ${formatBytes(output.size)}`, {
    output: output.node,
  });
}
