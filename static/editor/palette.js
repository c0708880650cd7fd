// The step palette: built from GET /api/steps, grouped by category, filtered by a search box.
import { el } from "../format.js";

export const DRAG_TYPE = "application/x-tileflow-step";

export function buildPalette(list, search, steps, { onAdd }) {
  const render = () => {
    const query = search.value.trim().toLowerCase();
    const groups = new Map();
    for (const step of steps) {
      const text = `${step.type} ${step.label} ${step.category} ${step.description}`.toLowerCase();
      if (query && !text.includes(query)) continue;
      if (!groups.has(step.category)) groups.set(step.category, []);
      groups.get(step.category).push(step);
    }
    list.replaceChildren();
    if (!groups.size) list.append(el("p", { class: "muted small", text: "No step matches." }));
    for (const [category, members] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const items = members
        .sort((a, b) => a.label.localeCompare(b.label))
        .map((step) => {
          const item = el(
            "li",
            {
              class: "palette-item",
              draggable: "true",
              tabindex: "0",
              role: "button",
              title: step.description,
              "aria-label": `Add ${step.label}`,
              dataset: { type: step.type },
            },
            el("span", { class: "palette-label", text: step.label }),
            el("span", { class: "palette-type", text: step.type }),
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
      list.append(
        el(
          "section",
          { class: `palette-group cat-${category.toLowerCase().replace(/[^a-z0-9]+/g, "-")}` },
          el("h3", { text: category }),
          el("ul", {}, items),
        ),
      );
    }
  };
  search.addEventListener("input", render);
  render();
}
