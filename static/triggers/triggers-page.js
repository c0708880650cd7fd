// A flow's triggers page (/flows/{id}/triggers/): create, pause, resume, delete triggers; their recent events.
import { ApiError, api } from "../api.js";
import { el, formatBytes } from "../format.js";
import { gettext, interpolate, locale } from "../i18n.js";

const REFRESH_MS = 3000;
const page = document.getElementById("triggers-page");
const flowId = page.dataset.flowId;
const list = document.getElementById("trigger-list");
const empty = document.getElementById("no-triggers");
const listError = document.getElementById("triggers-error");
const form = document.getElementById("trigger-form");
const opened = new Set(); // triggers whose events the user has open

const STATUS_LABELS = {
  pending: gettext("waiting"),
  running: gettext("running"),
  succeeded: gettext("succeeded"),
  failed: gettext("failed"),
  skipped: gettext("skipped"),
};
const BADGE = { pending: "status-queued", running: "status-running", succeeded: "status-succeeded", failed: "status-failed", skipped: "status-cancelled" };

// Name a location as the administrator named it: photos:/inbox, or store://bucket/prefix.
function describe(type, location) {
  return type === "folder" ? `${location.root}:/${location.path}` : `${location.connection}://${location.bucket}/${location.prefix}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(locale, { dateStyle: "short", timeStyle: "medium" }) : "—";
}

// -- the form ---------------------------------------------------------------------------------

function showPlaces(type) {
  for (const fieldset of form.querySelectorAll(".trigger-place")) {
    fieldset.querySelector(".place-folder").hidden = type !== "folder";
    fieldset.querySelector(".place-s3").hidden = type !== "s3";
  }
}

function placeOf(type, side) {
  const value = (name) => form.querySelector(`#${side}-${name}`).value.trim();
  return type === "folder" ? { root: value("root"), path: value("path") } : { connection: value("connection"), bucket: value("bucket"), prefix: value("prefix") };
}

async function create(event) {
  event.preventDefault();
  const errors = document.getElementById("trigger-form-errors");
  const button = document.getElementById("create-trigger");
  const type = form.querySelector("#trigger-type").value;
  errors.hidden = true;
  button.disabled = true;
  try {
    await api.createTrigger(flowId, {
      type,
      source: placeOf(type, "source"),
      destination: placeOf(type, "destination"),
      process_existing: form.querySelector("#process-existing").checked,
    });
    form.querySelectorAll("input[type=text]").forEach((input) => (input.value = ""));
    form.querySelector("#process-existing").checked = false;
    await refresh();
  } catch (error) {
    errors.replaceChildren(...(error instanceof ApiError && error.errors.length ? error.errors.map((e) => el("span", { text: e.message })) : [error.message]));
    errors.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// -- the list ---------------------------------------------------------------------------------

function eventRows(events) {
  if (!events.length) return el("p", { class: "muted small empty-line", text: gettext("Nothing seen yet: new images appear here within seconds of their arrival.") });
  return el(
    "table",
    { class: "table compact trigger-events" },
    el("thead", {}, el("tr", {}, [gettext("Object"), gettext("Status"), gettext("Seen"), gettext("Size"), gettext("Result")].map((title) => el("th", { text: title })))),
    el(
      "tbody",
      {},
      events.map((event) =>
        el(
          "tr",
          { dataset: { key: event.key } },
          el("td", { translate: "no", text: event.key }),
          el("td", {}, el("span", { class: `badge ${BADGE[event.status] || ""}`, text: STATUS_LABELS[event.status] || event.status })),
          el("td", {}, el("time", { datetime: event.seen_at, text: when(event.seen_at) })),
          el("td", { text: formatBytes(event.size) }),
          el(
            "td",
            {},
            event.error ? el("span", { class: "event-error", text: event.error }) : null,
            event.outputs.length ? el("span", { class: "muted", translate: "no", text: event.outputs.join(", ") }) : null,
            event.execution ? el("a", { class: "event-execution", href: `/executions/${encodeURIComponent(event.execution)}/`, text: gettext("execution") }) : null,
          ),
        ),
      ),
    ),
  );
}

function counts(trigger) {
  const c = trigger.counts;
  return interpolate(gettext("%(succeeded)s done · %(failed)s failed · %(skipped)s skipped · %(waiting)s waiting"), {
    succeeded: c.succeeded,
    failed: c.failed,
    skipped: c.skipped,
    waiting: c.pending + c.running,
  });
}

async function act(trigger, work) {
  try {
    await work();
    await refresh();
  } catch (error) {
    listError.textContent = error.message;
    listError.hidden = false;
  }
}

function card(trigger, events) {
  const pause = el("button", {
    class: "btn btn-small",
    type: "button",
    dataset: { action: trigger.enabled ? "pause" : "resume" },
    text: trigger.enabled ? gettext("Pause") : gettext("Resume"),
    onclick: () => act(trigger, () => api.updateTrigger(trigger.id, { enabled: !trigger.enabled })),
  });
  const remove = el("button", {
    class: "btn btn-small btn-danger",
    type: "button",
    dataset: { action: "delete" },
    text: gettext("Delete"),
    onclick: () => {
      if (confirm(gettext("Delete this trigger and its history? The executions it started stay."))) act(trigger, () => api.deleteTrigger(trigger.id));
    },
  });
  // Only a bucket sends event notifications; the secret is its owner's to copy into the store's settings.
  const notifications =
    trigger.type === "s3"
      ? el(
          "p",
          { class: "muted small" },
          gettext("Bucket event notifications: POST them to"),
          " ",
          el("code", { translate: "no", text: `${window.location.origin}/api/triggers/${trigger.id}/events` }),
          " ",
          gettext("with the header"),
          " ",
          el("code", { class: "trigger-secret", translate: "no", text: `X-Tileflow-Secret: ${trigger.secret}` }),
        )
      : null;
  const details = el(
    "details",
    { class: "trigger-details", open: opened.has(trigger.id) },
    el("summary", { text: gettext("Recent events") }),
    eventRows(events),
    notifications,
  );
  details.addEventListener("toggle", () => (details.open ? opened.add(trigger.id) : opened.delete(trigger.id)));
  return el(
    "article",
    { class: "card trigger", dataset: { triggerId: trigger.id, enabled: String(trigger.enabled) } },
    el(
      "div",
      { class: "trigger-head" },
      el("span", { class: "badge", text: trigger.type === "folder" ? gettext("folder") : "S3" }),
      el("span", { class: "trigger-route", translate: "no" }, describe(trigger.type, trigger.source), " → ", describe(trigger.type, trigger.destination)),
      el("span", { class: `badge ${trigger.enabled ? "status-succeeded" : "status-cancelled"} trigger-state`, text: trigger.enabled ? gettext("active") : gettext("paused") }),
      el("span", { class: "toolbar-spacer" }),
      pause,
      remove,
    ),
    trigger.last_error ? el("p", { class: "alert alert-error trigger-error", role: "alert", text: trigger.last_error }) : null,
    el("p", { class: "muted small trigger-counts" }, counts(trigger), " · ", interpolate(gettext("last look %(when)s"), { when: when(trigger.last_scan_at) })),
    details,
  );
}

async function refresh() {
  try {
    const triggers = await api.triggers(flowId);
    const events = await Promise.all(triggers.map((trigger) => api.triggerEvents(trigger.id)));
    list.replaceChildren(...triggers.map((trigger, index) => card(trigger, events[index])));
    empty.hidden = triggers.length > 0;
    listError.hidden = true;
  } catch (error) {
    listError.textContent = interpolate(gettext("Could not load the triggers: %(reason)s"), { reason: error.message });
    listError.hidden = false;
  }
}

if (form) {
  const type = form.querySelector("#trigger-type");
  type.addEventListener("change", () => showPlaces(type.value));
  showPlaces(type.value);
  form.addEventListener("submit", create);
}
refresh();
setInterval(() => document.hidden || refresh(), REFRESH_MS);
