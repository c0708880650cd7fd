// A form generated from a step's params JSON Schema, validated as the user types.
import { el } from "../format.js";
import { gettext, interpolate } from "../i18n.js";

// The non-null variant of a property and whether null is allowed (pydantic writes `x | None` as anyOf).
function resolve(property) {
  if (Array.isArray(property.anyOf)) {
    const variants = property.anyOf.filter((v) => v.type !== "null");
    const nullable = variants.length < property.anyOf.length;
    return { ...property, ...(variants[0] || {}), anyOf: undefined, nullable };
  }
  return { ...property, nullable: false };
}

// How a choice is shown: the catalog's label for it in the page's language, else the value itself.
function choiceLabel(spec, value) {
  return spec["x-choice-labels"]?.[String(value)] ?? String(value);
}

// Params a new node starts with: the schema's non-null defaults.
export function defaultParams(schema) {
  const params = {};
  for (const [name, property] of Object.entries(schema?.properties || {})) {
    if (property.default !== undefined && property.default !== null) params[name] = property.default;
  }
  return params;
}

// Check one value against its resolved property; return an error message or "".
export function checkValue(spec, value, required) {
  if (value === undefined || value === null || value === "") {
    return required ? gettext("is required") : "";
  }
  if (spec.enum && !spec.enum.includes(value)) return interpolate(gettext("must be one of %(choices)s"), { choices: spec.enum.join(", ") });
  if (spec.type === "number" || spec.type === "integer") {
    if (typeof value !== "number" || Number.isNaN(value)) return gettext("must be a number");
    if (spec.type === "integer" && !Number.isInteger(value)) return gettext("must be a whole number");
    if (spec.minimum !== undefined && value < spec.minimum) return interpolate(gettext("must be at least %(n)s"), { n: spec.minimum });
    if (spec.maximum !== undefined && value > spec.maximum) return interpolate(gettext("must be at most %(n)s"), { n: spec.maximum });
    if (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum) return interpolate(gettext("must be more than %(n)s"), { n: spec.exclusiveMinimum });
    if (spec.exclusiveMaximum !== undefined && value >= spec.exclusiveMaximum) return interpolate(gettext("must be less than %(n)s"), { n: spec.exclusiveMaximum });
  }
  if (spec.type === "string") {
    if (spec.minLength !== undefined && value.length < spec.minLength) return interpolate(gettext("must be at least %(n)s characters"), { n: spec.minLength });
    if (spec.maxLength !== undefined && value.length > spec.maxLength) return interpolate(gettext("must be at most %(n)s characters"), { n: spec.maxLength });
    if (spec.pattern && !new RegExp(spec.pattern).test(value)) return spec.format === "color" ? gettext("must be a colour like #ff8800") : interpolate(gettext("must match %(pattern)s"), { pattern: spec.pattern });
  }
  return "";
}

// The range is left out when the description already states it ("factor in (0, 1]").
function hint(spec) {
  const parts = [];
  if (spec.description) parts.push(spec.description);
  const low = spec.minimum ?? spec.exclusiveMinimum;
  if (low !== undefined || spec.maximum !== undefined) {
    const left = spec.exclusiveMinimum !== undefined ? "(" : "[";
    const range = `${left}${low ?? "−∞"}, ${spec.maximum ?? "∞"}]`;
    const stated = (spec.description || "").replace(/\s+/g, "").includes(range.replace(/\s+/g, ""));
    if (!stated) parts.push(range);
  }
  if (spec.default !== undefined && spec.default !== null) parts.push(interpolate(gettext("default %(value)s"), { value: choiceLabel(spec, spec.default) }));
  return parts.join(" · ");
}

// Build the form. onChange(params, errors) is called on every edit; `errors` maps field -> message.
export function buildParamsForm(schema, initial, onChange, { idPrefix = "param" } = {}) {
  const required = new Set(schema?.required || []);
  const fields = [];
  const form = el("div", { class: "params-form" });
  const params = { ...initial };

  const collect = () => {
    const errors = {};
    for (const field of fields) {
      const { value, error } = field.read();
      const message = error || checkValue(field.spec, value, required.has(field.name));
      field.showError(message);
      if (message) errors[field.name] = message;
      else if (value === undefined || value === null || value === "") delete params[field.name];
      else params[field.name] = value;
    }
    return errors;
  };

  for (const [name, property] of Object.entries(schema?.properties || {})) {
    const spec = resolve(property);
    const id = `${idPrefix}-${name}`;
    const label = (spec.title || name) + (required.has(name) ? " *" : "");
    const current = params[name];
    let input;
    let read;
    if (spec.enum) {
      input = el("select", { id, name });
      if (!required.has(name) || current === undefined) input.append(el("option", { value: "", text: spec.default !== undefined && spec.default !== null ? interpolate(gettext("default (%(value)s)"), { value: choiceLabel(spec, spec.default) }) : "—" }));
      for (const option of spec.enum) input.append(el("option", { value: String(option), text: choiceLabel(spec, option) }));
      input.value = current === undefined || current === null ? "" : String(current);
      read = () => {
        if (input.value === "") return { value: undefined };
        const match = spec.enum.find((option) => String(option) === input.value);
        return { value: match };
      };
    } else if (spec.type === "number" || spec.type === "integer") {
      input = el("input", {
        id,
        name,
        type: "number",
        inputmode: "decimal",
        step: spec.type === "integer" ? "1" : "any",
        min: spec.minimum ?? spec.exclusiveMinimum,
        max: spec.maximum,
        placeholder: spec.default !== undefined && spec.default !== null ? String(spec.default) : spec.nullable ? "auto" : "",
      });
      input.value = current === undefined || current === null ? "" : String(current);
      read = () => {
        if (input.value.trim() === "") return { value: input.validity.badInput ? NaN : undefined, error: input.validity.badInput ? "a number" : "" };
        return { value: Number(input.value) };
      };
    } else if (spec.type === "boolean") {
      input = el("input", { id, name, type: "checkbox" });
      input.checked = Boolean(current ?? spec.default);
      read = () => ({ value: input.checked });
    } else if (spec.format === "color") {
      const picker = el("input", { id, name, type: "color", class: "color-picker" });
      const text = el("input", { type: "text", class: "color-text", "aria-label": interpolate(gettext("%(label)s, as hex"), { label }), maxlength: 7, spellcheck: "false" });
      const value = typeof current === "string" ? current : spec.default || "#000000";
      picker.value = /^#[0-9a-fA-F]{6}$/.test(value) ? value : "#000000";
      text.value = value;
      picker.addEventListener("input", () => (text.value = picker.value));
      text.addEventListener("input", () => {
        if (/^#[0-9a-fA-F]{6}$/.test(text.value)) picker.value = text.value;
      });
      input = el("div", { class: "color-field" }, picker, text);
      read = () => ({ value: text.value.trim() });
    } else {
      input = el("input", { id, name, type: "text", maxlength: spec.maxLength, spellcheck: "false" });
      input.value = current === undefined || current === null ? "" : String(current);
      read = () => ({ value: input.value });
    }
    const message = el("span", { class: "field-error", id: `${id}-error`, role: "status" });
    const field = el(
      "div",
      { class: spec.type === "boolean" ? "field field-check" : "field", dataset: { param: name } },
      el("label", { for: id, text: label }),
      input,
      hint(spec) ? el("span", { class: "field-hint", text: hint(spec) }) : null,
      message,
    );
    form.append(field);
    fields.push({
      name,
      spec,
      read,
      showError(text) {
        message.textContent = text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
        field.classList.toggle("invalid", Boolean(text));
        for (const control of field.querySelectorAll("input, select")) {
          if (text) control.setAttribute("aria-invalid", "true");
          else control.removeAttribute("aria-invalid");
        }
      },
    });
  }
  if (!fields.length) form.append(el("p", { class: "muted", text: gettext("This step has no parameters.") }));

  // Collect first: it is what brings `params` up to date with the fields.
  const emit = (event) => {
    const errors = collect();
    onChange({ ...params }, errors, event.type === "change");
  };
  form.addEventListener("input", emit);
  form.addEventListener("change", emit);
  collect();
  return { element: form, errors: collect };
}
