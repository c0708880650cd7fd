// The Versions tab: every save of the flow, newest first, with what it changed; any one can be restored.
import { api } from "../api.js";
import { el, formatDateTime } from "../format.js";
import { gettext, interpolate } from "../i18n.js";

function value(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

// Human lines for a version's changes (see flows/versions.py).
export function describeChanges(changes) {
  const lines = [];
  if (changes.renamed) lines.push(interpolate(gettext("renamed “%(from)s” → “%(to)s”"), changes.renamed));
  for (const n of changes.nodes_added || []) lines.push(interpolate(gettext("+ node %(node)s (%(type)s)"), n));
  for (const n of changes.nodes_removed || []) lines.push(interpolate(gettext("− node %(node)s (%(type)s)"), n));
  for (const n of changes.nodes_changed || []) {
    if (n.type) lines.push(interpolate(gettext("%(node)s: type %(from)s → %(to)s"), { node: n.node, ...n.type }));
    for (const [key, v] of Object.entries(n.params_added || {})) lines.push(interpolate(gettext("%(node)s: + %(param)s = %(value)s"), { node: n.node, param: key, value: value(v) }));
    for (const [key, v] of Object.entries(n.params_removed || {})) lines.push(interpolate(gettext("%(node)s: − %(param)s (was %(value)s)"), { node: n.node, param: key, value: value(v) }));
    for (const [key, v] of Object.entries(n.params_changed || {})) {
      lines.push(interpolate(gettext("%(node)s: %(param)s %(from)s → %(to)s"), { node: n.node, param: key, from: value(v.from), to: value(v.to) }));
    }
  }
  for (const e of changes.edges_added || []) lines.push(interpolate(gettext("+ link %(from)s → %(to)s"), e));
  for (const e of changes.edges_removed || []) lines.push(interpolate(gettext("− link %(from)s → %(to)s"), e));
  if (changes.description_changed) lines.push(gettext("description changed"));
  return lines;
}

export function createVersionsPanel(root, { flowId, onRestore }) {
  const list = el("ol", { class: "version-list", id: "version-list" });
  const message = el("p", { class: "alert alert-error", role: "alert", hidden: true });
  root.append(el("h2", { class: "panel-title", text: gettext("Versions") }), el("p", { class: "muted small", text: gettext("Every save is kept. Runs never change the flow; restoring makes an old version the current one, as a new save.") }), message, list);

  const refresh = async () => {
    const id = flowId();
    if (!id) {
      list.replaceChildren(el("li", { class: "muted", text: gettext("Save the flow to start its history.") }));
      return;
    }
    let versions;
    try {
      versions = (await api.versions(id)).versions;
    } catch (error) {
      message.textContent = error.message;
      message.hidden = false;
      return;
    }
    message.hidden = true;
    list.replaceChildren(
      ...versions.map((version) => {
        const lines = describeChanges(version.changes);
        const head = el(
          "div",
          { class: "version-head" },
          el("strong", { text: interpolate(gettext("Version %(n)s"), { n: version.version }) }),
          el("time", { class: "muted small", datetime: version.created_at, text: formatDateTime(version.created_at) }),
        );
        const item = el("li", { class: "version", dataset: { version: String(version.version) } }, head);
        if (version.restored_from) item.append(el("p", { class: "small muted", text: interpolate(gettext("restored from version %(n)s"), { n: version.restored_from }) }));
        item.append(el("ul", { class: "change-list", translate: "no" }, lines.length ? lines.map((line) => el("li", { text: line })) : [el("li", { class: "muted", text: gettext("no change to nodes or links") })]));
        if (version.current) item.append(el("span", { class: "badge status-succeeded", text: gettext("current") }));
        else {
          const button = el("button", { class: "btn btn-small", type: "button", text: gettext("Restore"), dataset: { restore: String(version.version) } });
          button.addEventListener("click", async () => {
            button.disabled = true;
            try {
              await onRestore(version.version);
            } finally {
              button.disabled = false;
            }
          });
          item.append(button);
        }
        return item;
      }),
    );
  };
  return { refresh };
}
