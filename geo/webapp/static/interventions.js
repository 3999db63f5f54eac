// Staff read side: filter the interventions (the OGC items API does the filtering), live
// counts, map layer + sortable paginated table in sync, downloads, totals as bar charts.
import { el, fill, t, tn, getJSON, fmtInt, fmtEur, debounce, safeUrl, statusLabel } from "./dom.js";
import { setLayerData, setVisible, layers, comuniData } from "./layers.js";
import { showHighlight, fitTo } from "./mapview.js";

/* global L */
const FILTERS = ["programme", "mission", "driver", "zona", "unione", "comune", "status", "source", "amount_min", "amount_max", "text"];
const SELECTS = ["programme", "mission", "driver", "zona", "unione", "comune", "status", "source"];
const COLUMNS = ["title", "programme", "comuni_names", "status", "amount_eur", "source"];
const PAGE = 15;
const state = { result: null, total: { n: 0, exact: true }, sort: { col: "amount_eur", asc: false }, page: 0, labels: {}, session: null };
const hooks = { change: () => {} };
export const onInterventions = (h) => Object.assign(hooks, h);
const form = () => document.getElementById("iv-filters");

/** Property of a feature that a filter looks at (list or scalar). */
const FACET = { programme: "programme", mission: "missions", driver: "drivers", zona: "zone", unione: "unioni", comune: "comuni", status: "status", source: "source" };

/** CQL2 text filter for the free-text box: title, CUP or implementing body contain it. */
function textFilter(text) {
  const s = text.trim().slice(0, 100).replace(/[%_\\]/g, "_").replace(/'/g, "''");
  if (!s) return null;
  return ["title", "cup", "implementing_body"].map((p) => `CASEI(${p}) LIKE CASEI('%${s}%')`).join(" OR ");
}

/** The current filters as {name: value} (empty ones left out). */
export function currentFilters() {
  const out = {};
  const f = form();
  for (const name of FILTERS) {
    const v = f.elements[name].value.trim();
    if (v) out[name] = v;
  }
  return out;
}

/** Query parameters of the OGC items API (and of the downloads) for the current filters. */
export function apiParams(filters = currentFilters()) {
  const p = {};
  for (const [k, v] of Object.entries(filters)) {
    if (k === "text") { const cql = textFilter(v); if (cql) p.filter = cql; } else p[k] = v;
  }
  return p;
}

async function fetchResult(params) {
  const q = new URLSearchParams({ limit: "10000", ...params });
  return getJSON(`/collections/interventions/items?${q}`);
}

/** How many interventions an items answer matches: `{ n, exact }`. The service counts a
 * filtered page only up to CMM_GEO_COUNT_LIMIT and leaves `numberMatched` out beyond it
 * (README, "bounded numberMatched"). Without it, the features loaded are the count when
 * no page follows; when one does, a one-row probe past them tells "exactly n" from
 * "more than n" (a full page may be followed by an empty one). */
async function matched(result, params) {
  if (typeof result.numberMatched === "number") return { n: result.numberMatched, exact: true };
  const n = result.features.length;
  if (!(result.links || []).some((l) => l.rel === "next")) return { n, exact: true };
  const probe = await fetchResult({ ...params, offset: String(n), limit: "1", skipGeometry: "true" });
  return { n, exact: probe.features.length === 0 };
}

/** A count as the UI says it: "1.234", or "oltre 10.000" / "more than 10,000". */
const countText = ({ n, exact }) => (exact ? fmtInt(n) : t("iv.more_than", { count: fmtInt(n) }));

function option(value, label, count) {
  return el("option", { value }, count === undefined ? label : `${label} (${count})`);
}

/** The choices of each list with their counts among the loaded features; when fewer are
 * loaded than match (`partial`), a count is only a lower bound: "12+". */
function fillSelects(result, partial = false) {
  const counts = {};
  for (const name of SELECTS) counts[name] = new Map();
  for (const f of result.features) {
    for (const name of SELECTS) {
      let v = f.properties[FACET[name]];
      for (const x of Array.isArray(v) ? v : [v]) {
        if (x === null || x === undefined || x === "") continue;
        counts[name].set(String(x), (counts[name].get(String(x)) || 0) + 1);
      }
    }
  }
  const f = form();
  for (const name of SELECTS) {
    const sel = f.elements[name];
    const keep = sel.value;
    const values = state.labels[name];
    fill(sel, option("", t("iv.any")),
      values.map(([v, label]) => option(v, label, fmtInt(counts[name].get(v) || 0) + (partial ? "+" : ""))));
    sel.value = keep;
  }
}

function sortedFeatures() {
  const { col, asc } = state.sort;
  const key = (f) => {
    const v = f.properties[col];
    return Array.isArray(v) ? v.join(", ") : v;
  };
  return [...state.result.features].sort((a, b) => {
    const x = key(a); const y = key(b);
    if (x === y) return 0;
    if (x === null || x === undefined || x === "") return 1; // empty last, either way
    if (y === null || y === undefined || y === "") return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return asc ? c : -c;
  });
}

function canEdit(p) {
  const u = state.session && state.session.user;
  if (!u) return false;
  return u.admin || (p.comuni || []).some((c) => (u.comuni || []).includes(c));
}

/** Text with a line-break opportunity after each "/" ("adeguamento/miglioramento"), which
 * browsers otherwise keep on one line, widening the column. */
function breakable(text) {
  return String(text).split(/(?<=\/)/).flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
}

/** The source of an intervention: a link to its page when it has a safe URL. */
function sourceNode(p) {
  const url = safeUrl(p.source_url);
  const label = p.source ? sourceLabel(p.source) : "";
  return url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, label || t("iv.col.source")) : (label || "—");
}

/** Where a record came from, as the catalogue names it (an unknown source: as stored). */
function sourceLabel(source) {
  const name = t("source." + source);
  return name.startsWith("source.") ? source : name;
}

/** The "sort by" list (shown where the table is too narrow for every column's header). */
function renderSortSelect() {
  const sel = document.getElementById("iv-sort");
  if (!sel) return;
  if (!sel.options.length) {
    fill(sel, COLUMNS.flatMap((c) => ["desc", "asc"].map((dir) =>
      el("option", { value: `${c}:${dir}` }, t(`iv.sort_${dir}`, { column: t(`iv.col.${c}`) })))));
    sel.addEventListener("change", () => {
      const [col, dir] = sel.value.split(":");
      state.sort = { col, asc: dir === "asc" };
      state.page = 0;
      renderTable();
    });
  }
  sel.value = `${state.sort.col}:${state.sort.asc ? "asc" : "desc"}`;
}

function renderTable() {
  const table = document.getElementById("iv-table");
  const head = table.querySelector("thead tr");
  renderSortSelect();
  fill(head, COLUMNS.map((c) => {
    const sorted = state.sort.col === c;
    return el("th", { scope: "col", class: `col-${c}`, "aria-sort": sorted ? (state.sort.asc ? "ascending" : "descending") : "none" },
      el("button", { type: "button", class: "sort", dataset: { col: c }, title: t("iv.sort", { column: t(`iv.col.${c}`) }),
        onclick: () => { state.sort = { col: c, asc: sorted ? !state.sort.asc : c !== "amount_eur" }; state.page = 0; renderTable(); },
      }, t(`iv.col.${c}`), sorted ? (state.sort.asc ? " ▲" : " ▼") : ""));
  }));
  const rows = sortedFeatures();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const body = table.querySelector("tbody");
  if (!rows.length) {
    fill(body, el("tr", {}, el("td", { colspan: String(COLUMNS.length) }, t("iv.none"))));
  } else {
    fill(body, rows.slice(state.page * PAGE, (state.page + 1) * PAGE).map((f) => {
      const p = f.properties;
      const edit = canEdit(p)
        ? [" ", el("a", { href: `/app/interventions/${encodeURIComponent(f.id)}/edit`, class: "edit" }, t("iv.edit")),
          " ", el("a", { href: `/app/interventions/${encodeURIComponent(f.id)}/history` }, t("iv.history"))]
        : null;
      // Where the programme, status and source columns do not fit, they show under the title.
      const meta = el("span", { class: "iv-meta" },
        [p.programme, p.status && statusLabel(p.status)].filter((x) => x).map((x) => [x, " · "]), sourceNode(p));
      return el("tr", { dataset: { id: f.id } },
        el("td", { class: "col-title" }, el("button", { type: "button", class: "link", title: t("iv.show_on_map"),
          onclick: () => showHighlight(f.geometry ? f : null) }, breakable(p.title || f.id)), edit, meta),
        el("td", { class: "col-programme" }, p.programme || "—"),
        el("td", { class: "col-comuni_names" }, breakable((p.comuni_names || []).join(", "))),
        el("td", { class: "col-status" }, p.status ? statusLabel(p.status) : "—"),
        el("td", { class: "col-amount_eur num" }, p.amount_eur == null ? "—" : fmtInt(p.amount_eur)),
        el("td", { class: "col-source" }, sourceNode(p)));
    }));
  }
  const pager = document.getElementById("iv-pager");
  const go = (d) => { state.page += d; renderTable(); };
  fill(pager,
    el("button", { type: "button", id: "iv-prev", disabled: state.page === 0, onclick: () => go(-1) }, t("iv.prev")),
    el("span", { id: "iv-page" }, t("iv.page", { page: state.page + 1, pages })),
    el("button", { type: "button", id: "iv-next", disabled: state.page >= pages - 1, onclick: () => go(1) }, t("iv.next")));
}

function bars(title, id, rows) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return el("figure", { class: "chart", id },
    el("figcaption", {}, title),
    el("table", { class: "bars" }, el("tbody", {}, rows.map((r) => el("tr", {},
      el("th", { scope: "row" }, r.label),
      el("td", {}, el("span", { class: "bar", style: `width:${Math.max(1, (100 * r.value) / max).toFixed(1)}%` }),
        el("span", { class: "value" }, `${fmtEur(r.value)} · ${r.count}`)))))));
}

async function renderCharts() {
  const byZona = new Map(); const byComune = new Map();
  const add = (m, k, amount) => {
    const g = m.get(k) || { value: 0, count: 0 };
    g.count += 1; g.value += amount || 0; m.set(k, g);
  };
  for (const f of state.result.features) {
    const p = f.properties;
    (p.zone || []).forEach((z) => add(byZona, z, p.amount_eur));
    (p.comuni || []).forEach((c) => add(byComune, c, p.amount_eur));
  }
  const zoneLabel = Object.fromEntries(state.labels.zona);
  const comuneLabel = Object.fromEntries(state.labels.comune);
  const rows = (m, labels) => [...m.entries()].map(([k, g]) => ({ label: labels[k] || k, ...g })).sort((a, b) => b.value - a.value || b.count - a.count);
  fill(document.getElementById("iv-charts"),
    bars(t("iv.chart_zona"), "chart-zona", rows(byZona, zoneLabel)),
    bars(t("iv.chart_comune"), "chart-comune", rows(byComune, comuneLabel).slice(0, 10)));
}

function updateDownloads(params) {
  for (const fmt of ["geojson", "csv", "gpkg"]) {
    const q = new URLSearchParams({ f: fmt, ...params });
    document.getElementById(`iv-dl-${fmt}`).href = `/downloads/interventions?${q}`;
  }
}

let seq = 0;
async function apply() {
  const filters = currentFilters();
  const params = apiParams(filters);
  const mine = ++seq;
  let result;
  try { result = await fetchResult(params); } catch (err) {
    fill(document.getElementById("iv-count"), el("span", { class: "error" }, t("place.error", { error: err.message })));
    return;
  }
  let count;
  try { count = await matched(result, params); } catch (err) {
    fill(document.getElementById("iv-count"), el("span", { class: "error" }, t("place.error", { error: err.message })));
    return;
  }
  if (mine !== seq) return;
  state.result = result;
  state.page = 0;
  const amount = result.features.reduce((s, f) => s + (f.properties.amount_eur || 0), 0);
  const shown = result.features.length;
  // Fewer loaded than matched: the sum, table, charts and map cover those loaded only.
  const partial = !count.exact || shown < count.n;
  fill(document.getElementById("iv-count"),
    el("strong", { id: "iv-n", dataset: { count: String(count.n), exact: String(count.exact) } },
      Object.keys(filters).length
        ? tn("iv.count_of", count.exact ? count.n : 0, { count: countText(count), total: countText(state.total) })
        : tn("iv.count", count.exact ? count.n : 0, { count: countText(count) })),
    " · ", partial
      ? t("iv.amount_partial", { amount: fmtEur(amount), shown: fmtInt(shown) })
      : t("iv.amount_total", { amount: fmtEur(amount) }),
    partial ? [el("br"), el("span", { id: "iv-partial", class: "muted small" }, t("iv.partial", { shown: fmtInt(shown) }))] : null);
  fillSelects(result, partial);
  renderTable();
  renderCharts();
  updateDownloads(params);
  setLayerData("interventions", result);
  hooks.change(filters);
}

/** Set the filters (e.g. from the URL or the place panel) and apply them. */
export async function setFilters(filters) {
  await ready;
  const f = form();
  for (const name of FILTERS) f.elements[name].value = filters[name] || "";
  await apply();
}

export function zoomToResult() {
  if (!state.result || !state.result.features.length) return;
  fitTo(L.geoJSON(state.result).getBounds());
}

export const setSession = (s) => { state.session = s; if (state.result) renderTable(); };

let ready = null;
export function initInterventions() {
  ready = (async () => {
    try { await load(); } catch (err) {
      fill(document.getElementById("iv-count"), el("span", { class: "error" }, t("iv.unavailable"), " ", err.message));
    }
  })();
  return ready;
}

async function load() {
  {
    const entry = layers.get("interventions");
    if (!entry) {
      fill(document.getElementById("iv-count"), t("iv.unavailable"));
      return;
    }
    const [all, qs, missions, drivers, unioni, comuni] = await Promise.all([
      fetchResult({}), getJSON("/collections/interventions/queryables"),
      getJSON("/plan/missions").catch(() => ({ missions: [] })), getJSON("/plan/drivers").catch(() => ({ drivers: [] })),
      getJSON("/unioni"), comuniData(),
    ]);
    state.total = await matched(all, {});
    const distinct = (prop) => [...new Set(all.features.map((f) => f.properties[prop]).filter((v) => v))].sort();
    const zoneNames = {};
    comuni.features.forEach((f) => { zoneNames[f.properties.zona_omogenea_id] = f.properties.zona_omogenea_name; });
    const props = qs.properties || {};
    state.labels = {
      programme: (props.programme?.enum || distinct("programme")).map((p) => [p, p]),
      mission: missions.missions.map((m) => [m.code, `${m.code} – ${m.title}`]),
      driver: drivers.drivers.map((d) => [String(d.number), `${d.number} – ${d.title}`]),
      zona: Object.entries(zoneNames).sort((a, b) => a[1].localeCompare(b[1])),
      unione: unioni.unioni.map((u) => [u.id, u.name]),
      comune: comuni.features.map((f) => [f.properties.istat_code, f.properties.name]).sort((a, b) => a[1].localeCompare(b[1])),
      status: distinct("status").map((s) => [s, statusLabel(s)]),
      source: distinct("source").map((s) => [s, sourceLabel(s)]),
    };
    // The choices exist before any filter is set (from the URL too).
    fillSelects(all, !state.total.exact || all.features.length < state.total.n);
    entry.dataSource = async () => state.result || all;
    const f = form();
    const later = debounce(apply, 300);
    f.addEventListener("change", (e) => { if (SELECTS.includes(e.target.name)) apply(); else later(); });
    f.addEventListener("input", (e) => { if (!SELECTS.includes(e.target.name)) later(); });
    f.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
    f.addEventListener("reset", () => setTimeout(apply, 0));
    document.getElementById("iv-zoom").addEventListener("click", zoomToResult);
    state.result = all;
  }
}

/** Show the interventions layer and tab content (first time: load everything). */
export async function showInterventions(filters) {
  await ready;
  if (!layers.get("interventions")) return;
  if (filters) await setFilters(filters);
  else if (!state.shown) await apply();
  state.shown = true;
  await setVisible("interventions", true);
}
