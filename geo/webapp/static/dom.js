// Small helpers shared by the modules: DOM building (text only, never HTML from data),
// strings of the page's language, number formats, JSON fetching.

const config = JSON.parse(document.body.dataset.config || "{}");
export const LANG = config.lang || "it";
export const CONFIG = config;
const LOCALE = LANG === "en" ? "en-GB" : "it-IT";

/** The UI string `key`, with {name} placeholders filled from `kw`. */
export function t(key, kw = {}) {
  const text = (config.messages && config.messages[key]) || key;
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in kw ? String(kw[k]) : m));
}

/** `t(key)`, in its singular form (`key_one`) when `n` is exactly 1 and that form exists. */
export function tn(key, n, kw = {}) {
  const one = n === 1 && config.messages && config.messages[key + "_one"];
  return t(one ? key + "_one" : key, kw);
}

/** An intervention's status in the page's language (geo.webapp.i18n.status_label): the
 * value, else its first words, translated when the catalogue has them; else as written. */
export function statusLabel(value) {
  const m = config.messages || {};
  if (m["status." + value]) return m["status." + value];
  const i = value.indexOf(" (");
  const base = i > 0 ? m["status." + value.slice(0, i)] : undefined;
  return base ? base + value.slice(i) : value;
}

/** An element with attributes and children; strings become text nodes (never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const fmtInt = (n) =>
  n === null || n === undefined ? "—" : new Intl.NumberFormat(LOCALE).format(Math.round(n));
export const fmtNum = (n, digits = 2) =>
  n === null || n === undefined
    ? "—"
    : new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits }).format(n);
export const fmtEur = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n)
    ? "—"
    : new Intl.NumberFormat(LOCALE, {
        style: "currency", currency: "EUR", maximumFractionDigits: digits,
      }).format(n);

/** An http(s) URL as given, or null (no javascript: links from data). */
export function safeUrl(value) {
  try {
    const u = new URL(String(value));
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** GET JSON; rejects with the service's message, in the page's language, on an error status. */
export async function getJSON(url, { allow404 = false } = {}) {
  const r = await fetch(url, { headers: { Accept: "application/json", "Accept-Language": LANG } });
  if (allow404 && r.status === 404) return null;
  if (!r.ok) {
    let msg = `${r.status}`;
    let body = null;
    try {
      body = await r.json();
      msg = body.description || body.detail || body.message || msg;
      if (typeof msg !== "string") msg = JSON.stringify(msg);
    } catch { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    err.body = body;
    throw err;
  }
  return r.json();
}

/** A small debouncer for typing. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A two-column table of facts: [[label, value node or text], ...]. */
export function factsTable(rows, cls = "facts") {
  return el("table", { class: cls },
    el("tbody", {}, rows.filter(Boolean).map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))));
}
