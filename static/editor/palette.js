// The step palette: built from GET /api/steps, grouped by category, filtered by a search box that matches
// a step in every language the console speaks (its `aliases`), so "blur" and "模糊" both find the blur.
import { el } from "../format.js";
import { gettext, interpolate, locale } from "../i18n.js";

export const DRAG_TYPE = "application/x-tileflow-step";

export function categoryClass(step) {
  return `cat-${(step.category_key || step.category || "other").toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
}

function searchText(step) {
  return [step.type, step.label, step.category, step.description, ...(step.aliases || [])].join(" ").toLowerCase();
}

export function buildPalette(list, search, steps, { onAdd }) {
  const render = () => {
    const query = search.value.trim().toLowerCase();
    const groups = new Map();
    for (const step of steps) {
      if (query && !searchText(step).includes(query)) continue;
      if (!groups.has(step.category)) groups.set(step.category, []);
      groups.get(step.category).push(step);
    }
    list.replaceChildren();
    if (!groups.size) list.append(el("p", { class: "muted small", text: gettext("No step matches.") }));
    for (const [category, members] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b, locale))) {
      const items = members
        .sort((a, b) => a.label.localeCompare(b.label, locale))
        .map((step) => {
          const item = el(
            "li",
            {
              class: "palette-item",
              draggable: "true",
              tabindex: "0",
              role: "button",
              title: step.description,
              "aria-label": interpolate(gettext("Add %(step)s"), { step: step.label }),
              dataset: { type: step.type },
            },
            el("span", { class: "palette-label", text: step.label }),
            el("span", { class: "palette-type", text: step.type, translate: "no" }),
          );
          item.addEventListener("dragstart", (event) => {
            event.dataTransfer.setData(DRAG_TYPE, step.type);
            event.dataTransfer.setData("text/plain", step.type);
            event.dataTransfer.effectAllowed = "copy";
          });
          // Keyboard users add a step with Enter or Space.
          item.addEventListener("keydown", (event) => {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              onAdd(step.type);
            }
          });
          item.addEventListener("dblclick", () => onAdd(step.type));
          return item;
        });
      list.append(el("section", { class: `palette-group ${categoryClass(members[0])}` }, el("h3", { text: category }), el("ul", {}, items)));
    }
  };
  search.addEventListener("input", render);
  render();
}
