// Staff read side: filter the interventions (the OGC items API and /stats/interventions
// do the filtering and the counting in the store), exact counts and sums, facet counts,
// a map layer of the largest matches, a sortable table paged by the server, downloads,
// totals as bar charts. Nothing here loads every intervention: at a million rows the
// panel costs what it shows.
import { el, fill, t, tn, getJSON, fmtInt, fmtEur, debounce, safeUrl, statusLabel } from "./dom.js";
import { setLayerData, setVisible, layers, comuniData } from "./layers.js";
import { showHighlight, fitTo } from "./mapview.js";

/* global L */
const FILTERS = ["programme", "mission", "driver", "zona", "unione", "comune", "status", "source", "amount_min", "amount_max", "text"];
const SELECTS = ["programme", "mission", "driver", "zona", "unione", "comune", "status", "source"];
const COLUMNS = ["title", "programme", "comuni_names", "status", "amount_eur", "source"];
/** Columns the server sorts by (a list, such as the comuni, has no order of its own). */
const SORTABLE = ["title", "programme", "status", "amount_eur", "source"];
const PAGE = 15;
/** Most interventions drawn on the map at once (the largest amounts first). */
export const MAP_LIMIT = 2000;
const state = { stats: null, rows: [], n: 0, total: 0, mapData: null, sort: { col: "amount_eur", asc: false }, page: 0, labels: {}, session: null };
const hooks = { change: () => {} };
export const onInterventions = (h) => Object.assign(hooks, h);
const form = () => document.getElementById("iv-filters");

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

/** Query parameters of the OGC items API, of /stats and of the downloads for the current
 * filters: each filter is one of the collection's parameters (`text` searches the title,
 * CUP and implementing body in any case). */
export function apiParams(filters = currentFilters()) {
  const p = {};
  for (const [k, v] of Object.entries(filters)) p[k] = k === "text" ? v.slice(0, 100) : v;
  return p;
}

const query = (params) => new URLSearchParams(params).toString();

/** Totals and groups of the matching interventions, counted by the store (`by`: one
 * grouping, or several comma-separated: `groupings`). */
const fetchStats = (by, params) => getJSON(`/stats/interventions?${query({ by, ...params })}`);

/** One page of features of the items API. */
const fetchItems = (params) => getJSON(`/collections/interventions/items?${query(params)}`);

function option(value, label, count) {
  return el("option", { value }, count === undefined ? label : `${label} (${count})`);
}

/** The choices of each list with how many of the matching interventions have them. */
function fillSelects(counts) {
  const f = form();
  for (const name of SELECTS) {
    const sel = f.elements[name];
    const keep = sel.value;
    const values = state.labels[name];
    fill(sel, option("", t("iv.any")),
      values.map(([v, label]) => option(v, label, counts ? fmtInt(counts[name].get(v) || 0) : undefined)));
    sel.value = keep;
  }
}

/** `sortby` of the items API for the table's order. */
const sortby = () => `${state.sort.asc ? "+" : "-"}${state.sort.col}`;

/** Read the table's page from the server (sorted and paged there), then draw it. */
async function loadPage(params = apiParams()) {
  const mine = ++pageSeq;
  let got = { features: [] };
  try {
    if (state.n) got = await fetchItems({ ...params, limit: String(PAGE), offset: String(state.page * PAGE), sortby: sortby() });
  } catch (err) {
    if (mine === pageSeq) fill(document.getElementById("iv-count"), el("span", { class: "error" }, t("place.error", { error: err.message })));
    return;
  }
  if (mine !== pageSeq) return;
  state.rows = got.features;
  renderTable();
}
let pageSeq = 0;

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
    fill(sel, SORTABLE.flatMap((c) => ["desc", "asc"].map((dir) =>
      el("option", { value: `${c}:${dir}` }, t(`iv.sort_${dir}`, { column: t(`iv.col.${c}`) })))));
    sel.addEventListener("change", () => {
      const [col, dir] = sel.value.split(":");
      state.sort = { col, asc: dir === "asc" };
      state.page = 0;
      loadPage();
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
    const label = [t(`iv.col.${c}`), sorted ? (state.sort.asc ? " ▲" : " ▼") : ""];
    return el("th", { scope: "col", class: `col-${c}`, "aria-sort": sorted ? (state.sort.asc ? "ascending" : "descending") : "none" },
      SORTABLE.includes(c)
        ? el("button", { type: "button", class: "sort", dataset: { col: c }, title: t("iv.sort", { column: t(`iv.col.${c}`) }),
          onclick: () => { state.sort = { col: c, asc: sorted ? !state.sort.asc : c !== "amount_eur" }; state.page = 0; loadPage(); },
        }, label)
        : label);
  }));
  const rows = state.rows;
  const pages = Math.max(1, Math.ceil(state.n / PAGE));
  const body = table.querySelector("tbody");
  if (!rows.length) {
    fill(body, el("tr", {}, el("td", { colspan: String(COLUMNS.length) }, t("iv.none"))));
  } else {
    fill(body, rows.map((f) => {
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
  const go = (d) => { state.page = Math.min(Math.max(0, state.page + d), pages - 1); loadPage(); };
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
        el("span", { class: "value" }, `${fmtEur(r.value)} · ${fmtInt(r.count)}`)))))));
}

/** Amounts per zone and the ten comuni with the most, from the store's groups. */
function renderCharts(byZona, byComune) {
  const rows = (groups, labels) => groups.filter((g) => g.count)
    .map((g) => ({ label: labels[g.id] || g.name || g.id, value: g.amount_eur, count: g.count }))
    .sort((a, b) => b.value - a.value || b.count - a.count);
  const zoneLabel = Object.fromEntries(state.labels.zona);
  const comuneLabel = Object.fromEntries(state.labels.comune);
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

/** The groupings by place (the comuni's links), asked for apart from the others; each
 * list of the filters is counted by the /stats grouping of the same name. */
const PLACES = ["zona", "unione", "comune"];


/** The map's features: the matches with the largest amounts, at most MAP_LIMIT. */
const fetchMap = (params) => fetchItems({ ...params, limit: String(MAP_LIMIT), sortby: "-amount_eur" });

let seq = 0;
async function apply() {
  const filters = currentFilters();
  const params = apiParams(filters);
  const mine = ++seq;
  let groups;
  let mapData;
  let first;
  try {
    // The counts, the map and the table's first page together, so they show at once.
    // Two requests for the eight groupings, so a store with several cores counts them
    // side by side (each reads the selection once).
    let places;
    let themes;
    [places, themes, mapData, first] = await Promise.all([
      fetchStats(PLACES.join(","), params),
      fetchStats(SELECTS.filter((name) => !PLACES.includes(name)).join(","), params),
      fetchMap(params),
      fetchItems({ ...params, limit: String(PAGE), sortby: sortby() }),
    ]);
    groups = { ...themes, groupings: { ...themes.groupings, ...places.groupings } };
  } catch (err) {
    if (mine === seq) fill(document.getElementById("iv-count"), el("span", { class: "error" }, t("place.error", { error: err.message })));
    return;
  }
  if (mine !== seq) return;
  const counts = {};
  for (const name of SELECTS) counts[name] = new Map(groups.groupings[name].map((g) => [String(g.id), g.count]));
  state.stats = groups;
  state.n = groups.n_interventions;
  state.page = 0;
  state.rows = first.features;
  pageSeq += 1; // a page asked for under the previous filters is not drawn
  state.mapData = mapData;
  const shown = mapData.features.length;
  const partial = shown < state.n;
  fill(document.getElementById("iv-count"),
    el("strong", { id: "iv-n", dataset: { count: String(state.n) } },
      Object.keys(filters).length
        ? tn("iv.count_of", state.n, { count: fmtInt(state.n), total: fmtInt(state.total) })
        : tn("iv.count", state.n, { count: fmtInt(state.n) })),
    " · ", el("span", { id: "iv-amount", dataset: { amount: String(groups.amount_eur) } },
      t("iv.amount_total", { amount: fmtEur(groups.amount_eur) })),
    partial ? [el("br"), el("span", { id: "iv-partial", class: "muted small" }, t("iv.partial", { shown: fmtInt(shown) }))] : null);
  fillSelects(counts);
  renderCharts(groups.groupings.zona, groups.groupings.comune);
  updateDownloads(params);
  renderTable();
  setLayerData("interventions", mapData);
  hooks.change(filters);
}

/** Set the filters (e.g. from the URL or the place panel) and apply them. */
export async function setFilters(filters) {
  await ready;
  const f = form();
  for (const name of FILTERS) f.elements[name].value = filters[name] || "";
  await apply();
}

/** Fit the map to every match (the extent the store computed, not only those drawn). */
export function zoomToResult() {
  const b = state.stats && state.stats.bbox;
  if (!b) return;
  fitTo(L.latLngBounds([b[1], b[0]], [b[3], b[2]]));
}

export const setSession = (s) => { state.session = s; if (state.stats) renderTable(); };

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
  const entry = layers.get("interventions");
  if (!entry) {
    fill(document.getElementById("iv-count"), t("iv.unavailable"));
    return;
  }
  const [all, qs, missions, drivers, unioni, comuni] = await Promise.all([
    fetchStats("status,source", {}), getJSON("/collections/interventions/queryables"),
    getJSON("/plan/missions").catch(() => ({ missions: [] })), getJSON("/plan/drivers").catch(() => ({ drivers: [] })),
    getJSON("/unioni"), comuniData(),
  ]);
  state.total = all.n_interventions;
  const present = (groups) => groups.filter((g) => g.count).map((g) => String(g.id)).sort();
  const zoneNames = {};
  comuni.features.forEach((f) => { zoneNames[f.properties.zona_omogenea_id] = f.properties.zona_omogenea_name; });
  const props = qs.properties || {};
  state.labels = {
    programme: (props.programme?.enum || []).map((p) => [p, p]),
    mission: missions.missions.map((m) => [m.code, `${m.code} – ${m.title}`]),
    driver: drivers.drivers.map((d) => [String(d.number), `${d.number} – ${d.title}`]),
    zona: Object.entries(zoneNames).sort((a, b) => a[1].localeCompare(b[1])),
    unione: unioni.unioni.map((u) => [u.id, u.name]),
    comune: comuni.features.map((f) => [f.properties.istat_code, f.properties.name]).sort((a, b) => a[1].localeCompare(b[1])),
    status: present(all.groupings.status).map((s) => [s, statusLabel(s)]),
    source: present(all.groupings.source).map((s) => [s, sourceLabel(s)]),
  };
  // The choices exist before any filter is set (from the URL too); their counts come
  // with the first apply().
  fillSelects(null);
  entry.dataSource = async () => state.mapData || (state.mapData = await fetchMap(apiParams()));
  const f = form();
  const later = debounce(apply, 300);
  f.addEventListener("change", (e) => { if (SELECTS.includes(e.target.name)) apply(); else later(); });
  f.addEventListener("input", (e) => { if (!SELECTS.includes(e.target.name)) later(); });
  f.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  f.addEventListener("reset", () => setTimeout(apply, 0));
  document.getElementById("iv-zoom").addEventListener("click", zoomToResult);
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
