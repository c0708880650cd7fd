// A context menu of the actions that apply where one right-clicked; arrow keys move, Enter runs, Escape closes.
import { el } from "../format.js";

let open = null;

export function closeMenu() {
  open?.remove();
  open = null;
}

// items: [{label, shortcut?, action, disabled?}] or "separator".
export function showMenu(clientX, clientY, items) {
  closeMenu();
  const menu = el("div", { class: "context-menu", role: "menu", id: "context-menu" });
  const buttons = [];
  for (const item of items) {
    if (item === "separator") {
      menu.append(el("div", { class: "menu-separator", role: "separator" }));
      continue;
    }
    const button = el(
      "button",
      { type: "button", role: "menuitem", class: "menu-item", disabled: item.disabled, dataset: { action: item.id || "" } },
      el("span", { text: item.label }),
      item.shortcut ? el("kbd", { text: item.shortcut }) : null,
    );
    button.addEventListener("click", () => {
      closeMenu();
      item.action();
    });
    buttons.push(button);
    menu.append(button);
  }
  document.body.append(menu);
  const width = menu.offsetWidth;
  const height = menu.offsetHeight;
  menu.style.left = `${Math.min(clientX, innerWidth - width - 4)}px`;
  menu.style.top = `${Math.min(clientY, innerHeight - height - 4)}px`;
  open = menu;
  const enabled = () => buttons.filter((b) => !b.disabled);
  enabled()[0]?.focus();
  menu.addEventListener("keydown", (event) => {
    const list = enabled();
    const index = list.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      closeMenu();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      list[(index + (event.key === "ArrowDown" ? 1 : list.length - 1)) % list.length]?.focus();
    }
  });
}

window.addEventListener("mousedown", (event) => {
  if (open && !open.contains(event.target)) closeMenu();
});
window.addEventListener("blur", closeMenu);
