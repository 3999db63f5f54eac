// The map application: wires search, place panel, layer tree, interventions, print, session
// and the shareable URL state (?comune=, ?zona=, ?unione=, ?lon=&lat=, ?layer=, ?tab=, ?iv_*).
/* global L */
import { t, LANG } from "./dom.js";
import { map, viewBox } from "./mapview.js";
import { initSearch } from "./search.js";
import { initLayers, layers, visibleLayers, onLayersChange, setVisible, showMetrics, zoomToLayer } from "./layers.js";
import { onPlace, selectComune, selectZona, selectUnione, selectPoint } from "./place.js";
import { initInterventions, showInterventions, onInterventions, apiParams, setSession } from "./interventions.js";
import { initSession } from "./session.js";

const TABS = ["place", "layers", "interventions", "print"];
const PLACE_KEYS = ["comune", "zona", "unione", "lon", "lat"];
const url = new URL(location.href);
const initial = new URLSearchParams(location.search); // the shared state, read once at start

function writeUrl(changes) {
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  url.searchParams.delete("lang");
  history.replaceState(null, "", url.pathname + (url.search || ""));
  const sw = document.getElementById("lang-switch");
  const other = new URL(url.href);
  other.searchParams.set("lang", LANG === "it" ? "en" : "it");
  sw.href = other.pathname + other.search;
  const share = document.getElementById("place-share");
  if (share) share.href = location.href;
}

// ----- tabs -------------------------------------------------------------------------------

function activateTab(name, { focus = false } = {}) {
  for (const tab of TABS) {
    const btn = document.getElementById(`tab-${tab}`);
    const panel = document.getElementById(`panel-${tab}`);
    const on = tab === name;
    btn.setAttribute("aria-selected", on ? "true" : "false");
    btn.tabIndex = on ? 0 : -1;
    panel.hidden = !on;
    if (on && focus) btn.focus();
  }
  writeUrl({ tab: name === "place" ? null : name });
  if (name === "interventions") showInterventions();
}

for (const tab of TABS) {
  const btn = document.getElementById(`tab-${tab}`);
  btn.addEventListener("click", () => activateTab(tab));
  btn.addEventListener("keydown", (e) => {
    const i = TABS.indexOf(tab);
    if (e.key === "ArrowRight") activateTab(TABS[(i + 1) % TABS.length], { focus: true });
    else if (e.key === "ArrowLeft") activateTab(TABS[(i - 1 + TABS.length) % TABS.length], { focus: true });
  });
}

// ----- place ------------------------------------------------------------------------------

onPlace({
  select: (place) => writeUrl({ ...Object.fromEntries(PLACE_KEYS.map((k) => [k, null])), ...place }),
  activate: () => activateTab("place"),
  showInterventions: async (filters) => {
    activateTab("interventions");
    await showInterventions(filters);
  },
  mapClick: (latlng) => selectPoint(latlng, { interventions: apiParams() }),
});

initSearch((s) => {
  if (s.kind === "comune") selectComune(s.id);
  else if (s.kind === "zona") selectZona(s.id);
  else selectUnione(s.id);
});

// ----- print ------------------------------------------------------------------------------

function updatePrint() {
  const shown = visibleLayers().map((e) => e.id).join(",");
  const title = document.getElementById("print-title").value.trim() || t("print.default_title");
  for (const fmt of ["png", "pdf"]) {
    const q = new URLSearchParams({ bbox: viewBox(), layers: shown, title, lang: LANG });
    if (layers.get("interventions")?.visible) {
      for (const [k, v] of Object.entries(apiParams())) q.set(k, v);
    }
    document.getElementById(`print-${fmt}`).href = `/app/print.${fmt}?${q}`;
  }
}
map.on("moveend", updatePrint);
onLayersChange(() => {
  updatePrint();
  const uploaded = visibleLayers().filter((e) => e.kind === "uploaded").map((e) => e.id);
  writeUrl({ layer: uploaded.join(",") || null });
});
document.getElementById("print-title").addEventListener("input", updatePrint);

onInterventions({
  change: (filters) => {
    const changes = {};
    for (const k of [...url.searchParams.keys()]) if (k.startsWith("iv_")) changes[k] = null;
    for (const [k, v] of Object.entries(filters)) changes[`iv_${k}`] = v;
    writeUrl(changes);
    updatePrint();
  },
});

// ----- start: layers, then the state of the URL ------------------------------------------

async function start() {
  const sessionReady = initSession();
  await initLayers();
  await initInterventions();
  setSession(await sessionReady);
  const p = initial;
  const ivFilters = {};
  for (const [k, v] of p.entries()) if (k.startsWith("iv_")) ivFilters[k.slice(3)] = v;
  const wanted = (p.get("layer") || "").split(",").filter((id) => layers.has(id));
  for (const id of wanted) await setVisible(id, true);
  const tab = p.get("tab");
  if (Object.keys(ivFilters).length || tab === "interventions") {
    activateTab("interventions");
    await showInterventions(Object.keys(ivFilters).length ? ivFilters : undefined);
  }
  if (p.get("comune")) await selectComune(p.get("comune"));
  else if (p.get("zona")) await selectZona(p.get("zona"));
  else if (p.get("unione")) await selectUnione(p.get("unione"));
  else if (p.get("lon") && p.get("lat")) {
    const ll = L.latLng(Number(p.get("lat")), Number(p.get("lon")));
    map.setView(ll, 12);
    await selectPoint(ll, { interventions: apiParams() });
  }
  if (wanted.length && !p.get("comune") && !p.get("zona") && !p.get("unione")) {
    activateTab("layers");
    zoomToLayer(wanted[0]);
    await showMetrics(wanted[0]);
  } else if (tab && TABS.includes(tab) && tab !== "interventions") activateTab(tab);
  updatePrint();
  writeUrl({});
  document.body.dataset.ready = "true";
}

start().catch((err) => {
  document.body.dataset.ready = "error";
  console.error(err);
});
