// The steps panel and the details panel fold away (toolbar buttons), so the canvas keeps the room on small
// screens: under 1100 px wide both start folded and open over the canvas; the choice is remembered.
const NARROW = "(max-width: 1100px)";
const KEY = "tileflow.panels";

export function setupPanels() {
  const workspace = document.getElementById("workspace");
  const narrow = window.matchMedia(NARROW);
  const toggles = { palette: document.getElementById("toggle-palette"), side: document.getElementById("toggle-side") };
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(KEY) || "{}");
  } catch {
    saved = {};
  }
  const mode = () => (narrow.matches ? "narrow" : "wide");
  const set = (panel, open, remember = true) => {
    workspace.classList.toggle(`${panel}-collapsed`, !open);
    toggles[panel].setAttribute("aria-expanded", String(open));
    if (remember) {
      saved[`${mode()}-${panel}`] = open;
      try {
        localStorage.setItem(KEY, JSON.stringify(saved));
      } catch {
        // not remembered in private mode
      }
    }
    window.dispatchEvent(new Event("resize")); // Drawflow and the minimap measure the canvas again
  };
  const apply = () => {
    for (const panel of Object.keys(toggles)) set(panel, saved[`${mode()}-${panel}`] ?? !narrow.matches, false);
  };
  for (const [panel, button] of Object.entries(toggles)) {
    button.addEventListener("click", () => set(panel, workspace.classList.contains(`${panel}-collapsed`)));
  }
  narrow.addEventListener("change", apply);
  apply();
  return {
    // Open a panel for something the user asked to see (a selected node, a run), without remembering it.
    reveal(panel) {
      if (workspace.classList.contains(`${panel}-collapsed`)) set(panel, true, false);
    },
  };
}
