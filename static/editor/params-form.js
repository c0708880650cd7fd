// A form generated from a step's params JSON Schema, validated as the user types.
import { el } from "../format.js";

// The non-null variant of a property and whether null is allowed (pydantic writes `x | None` as anyOf).
function resolve(property) {
  if (Array.isArray(property.anyOf)) {
    const variants = property.anyOf.filter((v) => v.type !== "null");
    const nullable = variants.length < property.anyOf.length;
    return { ...property, ...(variants[0] || {}), anyOf: undefined, nullable };
  }
  return { ...property, nullable: false };
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
    return required ? "required" : "";
  }
  if (spec.enum && !spec.enum.includes(value)) return `one of ${spec.enum.join(", ")}`;
  if (spec.type === "number" || spec.type === "integer") {
    if (typeof value !== "number" || Number.isNaN(value)) return "a number";
    if (spec.type === "integer" && !Number.isInteger(value)) return "a whole number";
    if (spec.minimum !== undefined && value < spec.minimum) return `at least ${spec.minimum}`;
    if (spec.maximum !== undefined && value > spec.maximum) return `at most ${spec.maximum}`;
    if (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum) return `more than ${spec.exclusiveMinimum}`;
    if (spec.exclusiveMaximum !== undefined && value >= spec.exclusiveMaximum) return `less than ${spec.exclusiveMaximum}`;
  }
  if (spec.type === "string") {
    if (spec.minLength !== undefined && value.length < spec.minLength) return `at least ${spec.minLength} characters`;
    if (spec.maxLength !== undefined && value.length > spec.maxLength) return `at most ${spec.maxLength} characters`;
    if (spec.pattern && !new RegExp(spec.pattern).test(value)) return spec.format === "color" ? "a colour like #ff8800" : `must match ${spec.pattern}`;
  }
  return "";
}

function hint(spec) {
  const parts = [];
  if (spec.description) parts.push(spec.description);
  const low = spec.minimum ?? spec.exclusiveMinimum;
  if (low !== undefined || spec.maximum !== undefined) {
    const left = spec.exclusiveMinimum !== undefined ? "(" : "[";
    parts.push(`${left}${low ?? "−∞"}, ${spec.maximum ?? "∞"}]`);
  }
  if (spec.default !== undefined && spec.default !== null) parts.push(`default ${spec.default}`);
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
      if (!required.has(name) || current === undefined) input.append(el("option", { value: "", text: spec.default !== undefined && spec.default !== null ? `default (${spec.default})` : "—" }));
      for (const option of spec.enum) input.append(el("option", { value: String(option), text: String(option) }));
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
      const text = el("input", { type: "text", class: "color-text", "aria-label": `${label} hex`, maxlength: 7, spellcheck: "false" });
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
      { class: "field", dataset: { param: name } },
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
        message.textContent = text ? `Must be ${text}` : "";
        field.classList.toggle("invalid", Boolean(text));
        for (const control of field.querySelectorAll("input, select")) {
          if (text) control.setAttribute("aria-invalid", "true");
          else control.removeAttribute("aria-invalid");
        }
      },
    });
  }
  if (!fields.length) form.append(el("p", { class: "muted", text: "This step has no parameters." }));

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
