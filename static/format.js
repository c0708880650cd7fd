// Small formatting helpers shared by the editor and the monitor, in the page's language.
import { gettext, interpolate, locale } from "./i18n.js";

const numbers = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
const dates = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "medium" });

export function formatNumber(value, digits = 2) {
  return digits === 2 ? numbers.format(value) : new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

export function formatDateTime(iso) {
  return iso ? dates.format(new Date(iso)) : "—";
}

const clock = new Intl.DateTimeFormat(locale, { timeStyle: "medium" });

// A recent moment (a heartbeat): the local time of day, with the date too when it was not today.
export function formatClock(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  return moment.toDateString() === new Date().toDateString() ? clock.format(moment) : dates.format(moment);
}

export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return interpolate(gettext("%(n)s ms"), { n: formatNumber(Math.round(ms)) });
  if (ms < 60000) return interpolate(gettext("%(n)s s"), { n: formatNumber(ms / 1000, 2) });
  const minutes = Math.floor(ms / 60000);
  return interpolate(gettext("%(m)s min %(s)s s"), { m: minutes, s: Math.round((ms % 60000) / 1000) });
}

export function formatBytes(bytes) {
  if (!bytes && bytes !== 0) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${formatNumber(value, unit ? 1 : 0)} ${units[unit]}`;
}

// Milliseconds between two ISO timestamps, or null when either is missing.
export function between(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return new Date(endIso).getTime() - new Date(startIso).getTime();
}

// Create an element with attributes and children (strings become text nodes: never parsed as HTML).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A run's or a node's status as people read it (the value itself stays in data-status).
export function statusLabel(status) {
  const labels = {
    queued: gettext("queued"),
    running: gettext("running"),
    succeeded: gettext("succeeded"),
    failed: gettext("failed"),
    cancelled: gettext("cancelled"),
    pending: gettext("pending"),
    done: gettext("done"),
  };
  return labels[status] || status;
}
