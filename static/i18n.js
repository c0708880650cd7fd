// Translations for the pages' scripts, from Django's JavaScript catalog (/jsi18n/, djangojs.po).
// `gettext("…")` is what `makemessages -d djangojs` looks for: call it with literal strings only.

const catalog = window.django || {};

export function gettext(text) {
  return catalog.gettext ? catalog.gettext(text) : text;
}

export function ngettext(singular, plural, count) {
  return catalog.ngettext ? catalog.ngettext(singular, plural, count) : count === 1 ? singular : plural;
}

// Fill %(name)s placeholders from an object: interpolate(gettext("%(n)s tiles"), {n: 3}).
export function interpolate(format, values) {
  return format.replace(/%\((\w+)\)s/g, (match, name) => (name in values ? String(values[name]) : match));
}

// The page's language (the <html lang> Django set), for Intl formatting of numbers and dates.
export const locale = document.documentElement.lang || "en";
