// Several nodes selected at once: Shift-click adds or removes a node, Shift-drag on the empty canvas draws a
// box around nodes, and dragging one selected node moves all of them. Drawflow itself knows one node only;
// it still holds the "primary" node whose params the panel shows.
import { el } from "../format.js";

export class Selection {
  constructor(canvas) {
    this.canvas = canvas;
    this.set = new Set();
    this.keep = false; // a drag of a node of the selection began: Drawflow's single select must not reset it
    this.drag = null; // {dragged, starts: Map(id -> {x, y})}
    if (canvas.readonly) return;
    canvas.container.addEventListener("mousedown", (event) => this.onMouseDown(event), true);
    window.addEventListener("mouseup", () => {
      this.keep = false;
      this.drag = null;
    });
  }

  ids() {
    return [...this.set].filter((id) => this.canvas.nodes.has(id));
  }

  has(id) {
    return this.set.has(id);
  }

  get size() {
    return this.ids().length;
  }

  setIds(ids) {
    this.set = new Set(ids);
    this.paint();
    const [only] = ids;
    if (ids.length === 1) this.canvas.selectNode(only);
    else this.canvas.onSelect(this.canvas.selection);
  }

  clear() {
    this.set.clear();
    this.paint();
  }

  forget(id) {
    this.set.delete(id);
    this.paint();
  }

  rename(oldId, newId) {
    if (this.set.delete(oldId)) this.set.add(newId);
  }

  // Drawflow selected a node (or nothing, or a link).
  follow(selection) {
    if (this.keep) return;
    this.set = selection?.kind === "node" ? new Set([selection.id]) : new Set();
    this.paint();
  }

  paint() {
    const many = this.set.size > 1;
    for (const [id, node] of this.canvas.nodes) node.element.classList.toggle("multi-selected", many && this.set.has(id));
  }

  onMouseDown(event) {
    if (event.button !== 0 || event.target.closest(".input, .output, .tf-group-head, .minimap")) return;
    const nodeElement = event.target.closest(".drawflow-node");
    const id = nodeElement?.dataset.nodeId;
    if (event.shiftKey && id) {
      event.stopPropagation();
      event.preventDefault();
      if (this.set.has(id)) this.set.delete(id);
      else this.set.add(id);
      this.paint();
      this.canvas.onSelect(this.canvas.selection);
      return;
    }
    if (id && this.set.has(id) && this.set.size > 1) {
      this.keep = true;
      this.startDrag(id);
      return;
    }
    if (!id && !event.target.closest(".connection")) {
      if (event.shiftKey) {
        event.stopPropagation();
        event.preventDefault();
        this.boxSelect(event);
      } else {
        this.clear();
      }
    }
  }

  startDrag(dragged) {
    const starts = new Map(this.ids().map((id) => [id, this.canvas.position(id)]));
    this.drag = { dragged, starts };
  }

  // Drawflow moved the dragged node: move the others of the selection by as much.
  followDrag() {
    if (!this.drag || !this.canvas.editor.drag) return;
    const start = this.drag.starts.get(this.drag.dragged);
    const now = this.canvas.position(this.drag.dragged);
    if (!start || !now) return;
    for (const [id, at] of this.drag.starts) {
      if (id !== this.drag.dragged) this.canvas.placeNode(id, at.x + now.x - start.x, at.y + now.y - start.y);
    }
  }

  boxSelect(event) {
    const wrap = this.canvas.container;
    const origin = wrap.getBoundingClientRect();
    const box = el("div", { class: "select-box", "aria-hidden": "true" });
    wrap.append(box);
    const startX = event.clientX;
    const startY = event.clientY;
    const before = event.shiftKey ? new Set(this.set) : new Set();
    const rect = (x, y) => ({ left: Math.min(startX, x), top: Math.min(startY, y), right: Math.max(startX, x), bottom: Math.max(startY, y) });
    const move = (moved) => {
      const r = rect(moved.clientX, moved.clientY);
      Object.assign(box.style, { left: `${r.left - origin.x}px`, top: `${r.top - origin.y}px`, width: `${r.right - r.left}px`, height: `${r.bottom - r.top}px` });
    };
    const up = (ended) => {
      window.removeEventListener("mousemove", move, true);
      window.removeEventListener("mouseup", up, true);
      box.remove();
      const r = rect(ended.clientX, ended.clientY);
      const chosen = new Set(before);
      for (const [id, node] of this.canvas.nodes) {
        const b = node.element.getBoundingClientRect();
        if (b.right >= r.left && b.left <= r.right && b.bottom >= r.top && b.top <= r.bottom) chosen.add(id);
      }
      this.setIds([...chosen]);
    };
    move(event);
    window.addEventListener("mousemove", move, true);
    window.addEventListener("mouseup", up, true);
  }
}
