// The place panel: a comune, a zona omogenea, a union or a clicked point, with its zone,
// union, neighbours, population, area and the plan's money there; identify results below.
import { el, fill, t, tn, getJSON, fmtInt, fmtNum, fmtEur, factsTable } from "./dom.js";
import { showHighlight, map } from "./mapview.js";
import { comuniData, collectionData, identify } from "./layers.js";

const hooks = { select: () => {}, showInterventions: () => {}, activate: () => {} };
export const onPlace = (h) => Object.assign(hooks, h);
const statsCache = new Map();

/** Totals per group from /stats/interventions (cached); null when unavailable. */
async function stats(by, pnrr) {
  const key = `${by}|${pnrr}`;
  if (!statsCache.has(key)) {
    const q = new URLSearchParams({ by });
    if (pnrr) { q.set("source", "pnrr"); q.set("amount", "pnrr"); }
    statsCache.set(key, getJSON(`/stats/interventions?${q}`).then(
      (d) => new Map(d.groups.map((g) => [g.id, g])), () => null));
  }
  return statsCache.get(key);
}
export const clearStats = () => statsCache.clear();

function moneyRow(g, valueKey) {
  if (!g || !g.count) return t("place.no_interventions");
  return tn(valueKey, g.count, {
    count: fmtInt(g.count), amount: fmtEur(g.amount_eur),
    per_inhabitant: g.amount_per_inhabitant == null ? "—" : fmtEur(g.amount_per_inhabitant, 2),
  });
}

async function moneyRows(by, id, filter) {
  const [all, pnrr] = await Promise.all([stats(by, false), stats(by, true)]);
  if (!all) return [[t("place.interventions"), t("iv.unavailable")]];
  const showBtn = el("button", { type: "button", class: "link", id: "place-show-iv",
    onclick: () => hooks.showInterventions(filter) }, t("place.show_interventions"));
  const g = all.get(id);
  return [
    [t("place.interventions"), el("span", { class: "money", id: "place-money" }, moneyRow(g, "place.interventions_value"), g && g.count ? [" ", showBtn] : null)],
    [t("place.pnrr"), el("span", { class: "money", id: "place-pnrr" }, moneyRow(pnrr && pnrr.get(id), "place.pnrr_value"))],
  ];
}

const linkButton = (text, onclick, attrs = {}) => el("button", { type: "button", class: "link", onclick, ...attrs }, text);

function shareLink() {
  return el("p", { class: "links" },
    el("a", { href: location.href, id: "place-share" }, t("place.share")));
}

function setPlace(...children) {
  const box = document.getElementById("place");
  fill(box, children);
  hooks.activate();
  const h = box.querySelector("h2");
  if (h) { h.tabIndex = -1; }
}

async function comuneGeometry(code) {
  const fc = await comuniData();
  return fc.features.find((f) => f.properties.istat_code === code) || null;
}

/** Render a comune record (from /comuni/{code} or /lookup). */
async function renderComune(rec) {
  const z = rec.zona_omogenea;
  const u = rec.unione;
  const level = t(`confidence.${z.confidence}`);
  const rows = [
    [t("place.istat"), rec.istat_code],
    [t("place.cadastral"), rec.cadastral_code],
    [t("place.zona"), el("span", { id: "place-zona" },
      linkButton(z.name, () => selectZona(z.id)), " ",
      el("span", { class: "muted" }, `(${t("place.confidence", { level: level.startsWith("confidence.") ? z.confidence : level })})`))],
    [t("place.unione"), el("span", { id: "place-unione" },
      u ? linkButton(u.name, () => selectUnione(u.id)) : t("place.no_unione"))],
    [t("place.population"), fmtInt(rec.population)],
    [t("place.area"), `${fmtNum(rec.area_km2, 2)} km²`],
    ...(await moneyRows("comune", rec.istat_code, { comune: rec.istat_code })),
  ];
  const nb = (rec.neighbours || []).map((n) =>
    el("li", {}, linkButton(n.name, () => selectComune(n.istat_code), { dataset: { code: n.istat_code } })));
  return [
    el("h2", { id: "place-title" }, rec.name),
    factsTable(rows),
    el("p", { class: "muted small" }, t("place.amount_note")),
    el("h3", {}, t("place.neighbours"), ` (${nb.length})`),
    el("ul", { class: "chips", id: "place-neighbours" }, nb),
    el("p", { class: "links" },
      el("a", { href: `/maps/comuni/${rec.istat_code}` }, t("place.map_page")), " · ",
      el("a", { href: location.href, id: "place-share" }, t("place.share"))),
  ];
}

function loading() {
  setPlace(el("p", { class: "muted" }, t("place.loading")));
  fill(document.getElementById("identify"));
}

function failed(err) {
  // A 404 already says what is missing ("nessun comune con codice ISTAT …"): said as it is.
  const m = String(err.message);
  const text = err.status === 404 ? m.charAt(0).toUpperCase() + m.slice(1)
    : t("place.error", { error: m });
  setPlace(el("p", { class: "error", role: "alert" }, text));
}

export async function selectComune(code, { zoom = true } = {}) {
  loading();
  hooks.select({ comune: code });
  try {
    const rec = await getJSON(`/comuni/${encodeURIComponent(code)}`);
    setPlace(await renderComune(rec));
    showHighlight(await comuneGeometry(code), { zoom });
  } catch (err) { failed(err); }
}

async function renderGroup(kind, id) {
  const path = kind === "zona" ? "zone-omogenee" : "unioni";
  const rec = await getJSON(`/${path}/${encodeURIComponent(id)}`);
  const rows = [
    [t("place.comuni"), fmtInt(rec.n_comuni)],
    [t("place.population"), fmtInt(rec.population)],
    [t("place.area"), `${fmtNum(rec.area_km2, 2)} km²`],
    ...(await moneyRows(kind, id, { [kind]: id })),
  ];
  const members = rec.comuni.map((c) =>
    el("li", {}, linkButton(c.name, () => selectComune(c.istat_code), { dataset: { code: c.istat_code } })));
  setPlace(
    el("p", { class: "kind" }, t(`search.kind.${kind}`)),
    el("h2", { id: "place-title" }, rec.name),
    factsTable(rows),
    el("p", { class: "muted small" }, t("place.amount_note")),
    el("h3", {}, t("place.members"), ` (${members.length})`),
    el("ul", { class: "chips" }, members),
    kind === "zona" ? el("p", { class: "links" }, el("a", { href: `/maps/zone-omogenee/${id}` }, t("place.map_page"))) : null,
    shareLink(),
  );
  const fc = await collectionData(path);
  showHighlight(fc.features.find((f) => f.id === id) || null);
}

export async function selectZona(id) {
  loading();
  hooks.select({ zona: id });
  try { await renderGroup("zona", id); } catch (err) { failed(err); }
}

export async function selectUnione(id) {
  loading();
  hooks.select({ unione: id });
  try { await renderGroup("unione", id); } catch (err) { failed(err); }
}

/** A click on the map: the comune there (same panel) and what the visible layers hold. */
export async function selectPoint(latlng, extraParams) {
  loading();
  const lon = latlng.lng.toFixed(6);
  const lat = latlng.lat.toFixed(6);
  hooks.select({ lon, lat });
  const identified = identify(latlng, extraParams);
  try {
    const ans = await getJSON(`/lookup?lon=${lon}&lat=${lat}`);
    setPlace(await renderComune(ans.comune));
    showHighlight(await comuneGeometry(ans.comune.istat_code), { zoom: false });
  } catch (err) {
    if (err.status === 404 && err.body && err.body.nearest) {
      const n = err.body.nearest;
      setPlace(el("p", { role: "alert" }, t("place.outside", { name: n.name, distance: fmtInt(n.distance_m) })),
        el("p", {}, linkButton(n.name, () => selectComune(n.istat_code))));
      showHighlight(null);
    } else failed(err);
  }
  renderIdentify(await identified);
}

function propsTable(props) {
  const entries = Object.entries(props || {});
  if (!entries.length) return el("p", { class: "muted" }, t("identify.no_props"));
  return factsTable(entries.map(([k, v]) => [k, v === null || v === undefined ? "—"
    : typeof v === "object" ? JSON.stringify(v) : String(v)]), "facts props");
}

function renderIdentify(found) {
  const box = document.getElementById("identify");
  if (!found.length) {
    fill(box, el("h3", {}, t("place.identify")), el("p", { class: "muted" }, t("place.identify_none")));
    return;
  }
  fill(box, el("h3", {}, t("place.identify")), found.map(({ entry, features }) =>
    features.map((f, i) => el("details", { class: "identify", open: i === 0 && found.length < 4, dataset: { layer: entry.id } },
      el("summary", {}, t("identify.title", { layer: entry.title }), ": ",
        String((f.properties && (f.properties.name || f.properties.title || f.properties.nome)) ?? f.id ?? "")),
      propsTable(f.properties)))));
}

map.on("click", (e) => hooks.mapClick && hooks.mapClick(e.latlng));
