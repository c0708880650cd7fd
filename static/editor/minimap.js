// The minimap: every node as a small block and the visible part as a frame; click or drag on it to go there.
import { gettext } from "../i18n.js";

const WIDTH = 168;
const HEIGHT = 108;

export class Minimap {
  constructor(wrap, canvas) {
    this.canvas = canvas;
    this.element = document.createElement("canvas");
    this.element.className = "minimap";
    this.element.width = WIDTH * devicePixelRatio;
    this.element.height = HEIGHT * devicePixelRatio;
    this.element.style.width = `${WIDTH}px`;
    this.element.style.height = `${HEIGHT}px`;
    this.element.setAttribute("role", "img");
    this.element.setAttribute("aria-label", gettext("Minimap: click to move the view"));
    wrap.append(this.element);
    this.pending = false;
    this.frame = null;
    const go = (event) => {
      if (!this.frame) return;
      const box = this.element.getBoundingClientRect();
      const { scale, left, top } = this.frame;
      canvas.centreOn(left + (event.clientX - box.x) / scale, top + (event.clientY - box.y) / scale);
    };
    this.element.addEventListener("mousedown", (event) => {
      event.preventDefault();
      event.stopPropagation();
      go(event);
      const move = (e) => go(e);
      const up = () => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    });
  }

  // Redraw at the next frame, once however many changes come in between.
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const context = this.element.getContext("2d");
    context.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    context.clearRect(0, 0, WIDTH, HEIGHT);
    const view = this.canvas.viewport();
    const boxes = [...this.canvas.nodes.keys()].map((id) => ({ id, ...this.canvas.box(id) }));
    const all = [...boxes, view];
    const left = Math.min(...all.map((b) => b.x));
    const top = Math.min(...all.map((b) => b.y));
    const right = Math.max(...all.map((b) => b.x + b.width));
    const bottom = Math.max(...all.map((b) => b.y + b.height));
    const scale = Math.min(WIDTH / (right - left || 1), HEIGHT / (bottom - top || 1));
    this.frame = { scale, left, top };
    const selected = new Set(this.canvas.selected.ids());
    for (const box of boxes) {
      context.fillStyle = selected.has(box.id) ? "#4f46e5" : "#98a2b3";
      context.fillRect((box.x - left) * scale, (box.y - top) * scale, Math.max(2, box.width * scale), Math.max(2, box.height * scale));
    }
    context.strokeStyle = "#4f46e5";
    context.lineWidth = 1.5;
    context.strokeRect((view.x - left) * scale + 0.5, (view.y - top) * scale + 0.5, view.width * scale - 1, view.height * scale - 1);
  }
}
