// Live previews of a running execution's outputs. Each <img> follows the output file as the conductor writes it
// (GET …/output?node=N&follow=1): PNG and JPEG arrive band by band, so the browser paints the image top down.
// When the run ends, a preview becomes the result figure (caption, download) without loading the image again.
import { api } from "../api.js";
import { el } from "../format.js";
import { outputFigure } from "./figures.js";
import { gettext, interpolate } from "../i18n.js";

export class OutputPreviews {
  // container: where the figures go; nodeIds: the execution's output node ids.
  constructor(container, executionId, nodeIds) {
    this.container = container;
    this.figures = new Map();
    for (const node of nodeIds) {
      const image = el("img", { class: "result-image", alt: interpolate(gettext("Output of %(node)s, filling in"), { node }), dataset: { output: node, live: "" } });
      const note = el("span", { class: "muted", text: gettext("filling in as it is produced…") });
      // Not every run streams from this server (a conductor elsewhere, or an error): the result comes at the end.
      image.addEventListener("error", () => {
        if (image.dataset.live !== undefined) {
          image.hidden = true;
          note.textContent = gettext("the result appears when the run finishes");
        }
      });
      image.src = api.outputUrl(executionId, node, { follow: true });
      const figure = el("figure", { class: "result result-live", dataset: { preview: node } }, image, el("figcaption", {}, el("span", { text: node }), note));
      this.figures.set(node, { figure, image });
      container.append(figure);
    }
  }

  // The run ended: successful outputs keep their (already loaded) image and gain a download; others go.
  finish(execution) {
    const outputs = new Map((execution.status === "succeeded" ? execution.outputs || [] : []).map((o) => [o.node, o]));
    for (const [node, { figure, image }] of this.figures) {
      const output = outputs.get(node);
      if (!output) {
        figure.remove();
        continue;
      }
      delete image.dataset.live;
      const result = outputFigure(output);
      if (image.hidden || (image.complete && !image.naturalWidth)) image.src = output.url;
      image.hidden = false;
      image.alt = interpolate(gettext("Output of %(node)s"), { node });
      result.querySelector("img").replaceWith(image);
      figure.replaceWith(result);
    }
    this.figures.clear();
  }
}
