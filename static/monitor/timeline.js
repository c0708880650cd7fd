// A small Gantt chart of when each node processed its tiles, from the execution's `timeline` (ms from run start).
import { el, formatMs } from "../format.js";
import { gettext } from "../i18n.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

// Render into `root`; nodeIds gives the row order. Missing timings leave an explanatory note instead.
export function renderTimeline(root, execution, nodeIds) {
  const timeline = execution.timeline && typeof execution.timeline === "object" ? execution.timeline : {};
  const nodes = execution.nodes || {};
  const rows = nodeIds.filter((id) => (timeline[id] || []).length || nodes[id]?.started_ms !== undefined);
  root.replaceChildren();
  if (!rows.length) {
    root.append(el("p", { class: "muted small", text: gettext("No per-tile timings were recorded for this execution.") }));
    return;
  }
  let end = 1;
  for (const id of rows) {
    for (const [, stop] of timeline[id] || []) end = Math.max(end, stop);
    if (nodes[id]?.finished_ms !== undefined) end = Math.max(end, nodes[id].finished_ms);
  }
  const labelWidth = 130;
  const width = 760;
  const rowHeight = 24;
  const axis = 22;
  const plot = width - labelWidth - 10;
  const height = rows.length * rowHeight + axis;
  const x = (ms) => labelWidth + (plot * ms) / end;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "gantt", role: "img", "aria-label": gettext("Per-node tile timeline") });
  for (let tick = 0; tick <= 4; tick += 1) {
    const ms = (end * tick) / 4;
    chart.append(svg("line", { x1: x(ms), x2: x(ms), y1: 0, y2: height - axis + 4, class: "gantt-grid" }));
    chart.append(svg("text", { x: x(ms), y: height - 6, class: "gantt-tick", "text-anchor": tick === 0 ? "start" : tick === 4 ? "end" : "middle" }, formatMs(ms)));
  }
  rows.forEach((id, index) => {
    const y = index * rowHeight;
    const row = svg("g", { class: "gantt-row", "data-node": id });
    row.append(svg("text", { x: 0, y: y + 16, class: "gantt-label" }, id));
    const info = nodes[id] || {};
    if (info.started_ms !== undefined && info.finished_ms !== undefined) {
      row.append(svg("rect", { x: x(info.started_ms), y: y + 10, width: Math.max(1, x(info.finished_ms) - x(info.started_ms)), height: 4, class: "gantt-span" }));
    }
    for (const [start, stop] of timeline[id] || []) {
      const bar = svg("rect", { x: x(start), y: y + 4, width: Math.max(1.5, x(stop) - x(start)), height: 16, rx: 2, class: "gantt-tile" });
      bar.append(svg("title", {}, `${id}: ${formatMs(start)} → ${formatMs(stop)}`));
      row.append(bar);
    }
    chart.append(row);
  });
  root.append(chart);
}
