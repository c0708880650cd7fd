// Groups: a titled frame around some nodes that moves them together. Stored in the flow document as
// graph.groups = [{id, title, nodes: [node ids]}]; the runtime ignores them. The frame is drawn from its
// members' boxes, so it follows them; dragging its title bar moves every member.
import { el } from "../format.js";
import { gettext } from "../i18n.js";

const PADDING = 20;
const HEAD = 30;
const GROUP_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class GroupFrames {
  constructor(canvas) {
    this.canvas = canvas;
    this.groups = new Map(); // id -> {id, title, nodes: Set, element, titleElement}
  }

  newId() {
    for (let n = 1; ; n += 1) if (!this.groups.has(`group-${n}`)) return `group-${n}`;
  }

  load(list) {
    for (const group of this.groups.values()) group.element.remove();
    this.groups.clear();
    for (const group of Array.isArray(list) ? list : []) {
      const members = (Array.isArray(group?.nodes) ? group.nodes : []).map(String).filter((id) => this.canvas.nodes.has(id));
      if (!members.length) continue;
      const id = GROUP_ID.test(String(group.id)) && !this.groups.has(String(group.id)) ? String(group.id) : this.newId();
      this.create(typeof group.title === "string" ? group.title : "", members, id);
    }
  }

  create(title, nodeIds, id = this.newId()) {
    for (const nodeId of nodeIds) this.forget(nodeId, { keepEmpty: true });
    const titleElement = el("span", { class: "tf-group-title", text: title, translate: "no" });
    const head = el("div", { class: "tf-group-head", title: gettext("Drag to move the group; double-click to rename") }, titleElement);
    const element = el("div", { class: "tf-group", dataset: { groupId: id } }, head);
    const group = { id, title, nodes: new Set(nodeIds), element, titleElement };
    this.groups.set(id, group);
    this.canvas.editor.precanvas.prepend(element);
    if (!this.canvas.readonly) {
      head.addEventListener("mousedown", (event) => this.drag(event, group));
      head.addEventListener("dblclick", () => this.editTitle(group));
    }
    this.prune();
    this.update();
    return id;
  }

  toDocument() {
    return [...this.groups.values()].filter((g) => g.nodes.size).map((g) => ({ id: g.id, title: g.title, nodes: [...g.nodes] }));
  }

  groupOf(nodeId) {
    return [...this.groups.values()].find((g) => g.nodes.has(nodeId)) || null;
  }

  remove(id) {
    const group = this.groups.get(id);
    if (!group) return;
    group.element.remove();
    this.groups.delete(id);
  }

  forget(nodeId, { keepEmpty = false } = {}) {
    for (const group of this.groups.values()) group.nodes.delete(nodeId);
    if (!keepEmpty) this.prune();
  }

  prune() {
    for (const group of [...this.groups.values()]) if (!group.nodes.size) this.remove(group.id);
  }

  rename(oldId, newId) {
    for (const group of this.groups.values()) {
      if (group.nodes.delete(oldId)) group.nodes.add(newId);
    }
  }

  setTitle(id, title) {
    const group = this.groups.get(id);
    if (!group) return;
    group.title = title;
    group.titleElement.textContent = title;
  }

  // Fit every frame around its members.
  update() {
    for (const group of this.groups.values()) {
      const boxes = [...group.nodes].filter((id) => this.canvas.nodes.has(id)).map((id) => this.canvas.box(id));
      if (!boxes.length) continue;
      const left = Math.min(...boxes.map((b) => b.x)) - PADDING;
      const top = Math.min(...boxes.map((b) => b.y)) - PADDING - HEAD;
      const right = Math.max(...boxes.map((b) => b.x + b.width)) + PADDING;
      const bottom = Math.max(...boxes.map((b) => b.y + b.height)) + PADDING;
      Object.assign(group.element.style, { left: `${left}px`, top: `${top}px`, width: `${right - left}px`, height: `${bottom - top}px` });
    }
  }

  drag(event, group) {
    if (event.button !== 0) return;
    event.stopPropagation();
    event.preventDefault();
    const starts = new Map([...group.nodes].map((id) => [id, this.canvas.position(id)]));
    const zoom = this.canvas.editor.zoom;
    const startX = event.clientX;
    const startY = event.clientY;
    let moved = false;
    this.canvas.selected.setIds([...group.nodes]);
    const move = (e) => {
      const dx = (e.clientX - startX) / zoom;
      const dy = (e.clientY - startY) / zoom;
      moved = moved || Math.abs(dx) + Math.abs(dy) > 1;
      for (const [id, at] of starts) this.canvas.placeNode(id, at.x + dx, at.y + dy);
      this.update();
      this.canvas.onView();
    };
    const up = () => {
      window.removeEventListener("mousemove", move, true);
      window.removeEventListener("mouseup", up, true);
      if (moved) this.canvas.changed("move");
    };
    window.addEventListener("mousemove", move, true);
    window.addEventListener("mouseup", up, true);
  }

  // Rename in place: Enter or leaving the field keeps the title, Escape keeps the old one.
  editTitle(group) {
    const input = el("input", { type: "text", class: "tf-group-input", value: group.title, maxlength: 200, "aria-label": gettext("Group title") });
    group.titleElement.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (keep) => {
      if (done) return;
      done = true;
      input.replaceWith(group.titleElement);
      if (keep && input.value.trim() !== group.title) {
        this.setTitle(group.id, input.value.trim());
        this.canvas.changed("group");
      }
    };
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    input.addEventListener("mousedown", (event) => event.stopPropagation());
  }
}
