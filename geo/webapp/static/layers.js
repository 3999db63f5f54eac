// The layer tree: every collection of /collections, with legend swatch, on/off and opacity;
// identify on every visible layer; metrics of uploaded layers as choropleth + table + CSV.
import { el, fill, t, getJSON, fmtNum, fmtInt } from "./dom.js";
import { map, baseLayer, ZONE_PALETTE, LAYER_PALETTE, CHOROPLETH, clickBox, fitTo } from "./mapview.js";

/* global L */
const TERRITORY = ["comuni", "zone-omogenee", "unioni"];
export const layers = new Map(); // id -> entry
const listeners = [];
export const onLayersChange = (fn) => listeners.push(fn);
const changed = () => listeners.forEach((fn) => fn());
export const zoneColour = {};

function title(c) {
  const key = `collection.${c.id}`;
  const local = t(key);
  return local !== key ? local : c.title || c.id;
}

function baseStyle(entry) {
  const o = entry.opacity;
  switch (entry.id) {
    case "comuni":
      return (f) => ({
        color: "#ffffff", weight: 0.8, opacity: o,
        fillColor: zoneColour[f.properties.zona_omogenea_id] || "#999", fillOpacity: 0.45 * o,
      });
    case "zone-omogenee":
      return () => ({ color: "#333333", weight: 2.2, opacity: o, fill: false });
    case "unioni":
      return () => ({ color: "#111111", weight: 2, dashArray: "6 4", opacity: o, fill: false });
    case "interventions":
      return () => ({ color: "#7a0019", weight: 1, fillColor: entry.colour, opacity: o, fillOpacity: 0.85 * o });
    default:
      return () => ({ color: entry.colour, weight: 2, opacity: o, fillColor: entry.colour, fillOpacity: 0.35 * o });
  }
}

function buildLeaflet(entry, data) {
  const pane = TERRITORY.includes(entry.id) ? "territory" : entry.id === "interventions" ? "points" : "overlays";
  return L.geoJSON(data, {
    pane, interactive: false, style: baseStyle(entry),
    pointToLayer: (f, ll) => L.circleMarker(ll, { radius: entry.id === "interventions" ? 6 : 5, pane }),
  });
}

/** Layers with more features than this are drawn from vector tiles (OGC API – Tiles), not
 * downloaded whole as GeoJSON: 20,000 polygons would freeze the page. */
export const TILE_THRESHOLD = 2000;

/** True when the collection is big enough to be drawn from vector tiles. */
async function isBig(entry) {
  if (entry.big === undefined) {
    const fc = await getJSON(`/collections/${encodeURIComponent(entry.id)}/items?limit=1&skipGeometry=true`);
    entry.big = (fc.numberMatched ?? 0) > TILE_THRESHOLD;
  }
  return entry.big;
}

/** A vector-tile layer (Leaflet.VectorGrid over the service's own MVT tiles). */
function buildTiled(entry) {
  const url = `/collections/${encodeURIComponent(entry.id)}/tiles/WebMercatorQuad/{z}/{y}/{x}`;
  const style = { weight: 1, color: entry.colour, opacity: 1, fill: true, fillColor: entry.colour, fillOpacity: 0.35, radius: 4 };
  const layer = L.vectorGrid.protobuf(url, {
    pane: "overlays", interactive: false, rendererFactory: L.canvas.tile,
    vectorTileLayerStyles: { [entry.id]: style, truncated: { fill: false, weight: 0, opacity: 0 } },
    maxNativeZoom: 22, className: `tiled-${entry.id}`,
  });
  layer.setOpacity(entry.opacity);
  entry.tiled = true;
  return layer;
}

/** Load a collection's features (all of them, simplified polygons for the territory). */
async function loadData(entry) {
  if (entry.data) return entry.data;
  const params = new URLSearchParams({ limit: "10000" });
  if (TERRITORY.includes(entry.id)) params.set("simplify", "25");
  entry.data = await getJSON(`/collections/${encodeURIComponent(entry.id)}/items?${params}`);
  return entry.data;
}

/** Show `data` (a FeatureCollection) as the layer's features (used by the interventions filter). */
export function setLayerData(id, data) {
  const entry = layers.get(id);
  if (!entry) return;
  entry.data = data;
  if (entry.leaflet) map.removeLayer(entry.leaflet);
  entry.leaflet = buildLeaflet(entry, data);
  if (entry.visible) entry.leaflet.addTo(map);
}

export async function setVisible(id, visible) {
  const entry = layers.get(id);
  if (!entry) return;
  entry.visible = visible;
  if (entry.checkbox) entry.checkbox.checked = visible;
  if (visible) {
    if (!entry.leaflet) {
      if (entry.kind === "uploaded" && await isBig(entry)) {
        entry.leaflet = buildTiled(entry);
      } else {
        const data = entry.id === "interventions" && entry.dataSource ? await entry.dataSource() : await loadData(entry);
        if (!entry.leaflet) entry.leaflet = buildLeaflet(entry, data);
      }
    }
    if (entry.visible) entry.leaflet.addTo(map);
  } else if (entry.leaflet) {
    map.removeLayer(entry.leaflet);
  }
  changed();
}

function setOpacity(id, value) {
  const entry = layers.get(id);
  entry.opacity = value;
  if (entry.leaflet) {
    if (entry.tiled) entry.leaflet.setOpacity(value);
    else entry.leaflet.setStyle(baseStyle(entry));
  }
  if (id === "comuni" || id === "zone-omogenee") changed();
}

export const visibleLayers = () => [...layers.values()].filter((e) => e.visible);
export const comuniData = () => loadData(layers.get("comuni"));
export const collectionData = (id) => loadData(layers.get(id));

function swatch(entry) {
  const style = entry.id === "unioni"
    ? "border:2px dashed #111;background:transparent"
    : entry.id === "zone-omogenee"
      ? "border:2px solid #333;background:transparent"
      : entry.id === "comuni"
        ? `background:linear-gradient(90deg,${ZONE_PALETTE.join(",")})`
        : `background:${entry.colour}`;
  return el("span", { class: "swatch", style, "aria-hidden": "true" });
}

function row(entry) {
  const cb = el("input", { type: "checkbox", id: `layer-${entry.id}`, checked: entry.visible });
  cb.addEventListener("change", () => setVisible(entry.id, cb.checked));
  entry.checkbox = cb;
  const range = el("input", {
    type: "range", min: "0", max: "1", step: "0.1", value: String(entry.opacity),
    class: "opacity", "aria-label": t("layers.opacity", { name: entry.title }),
    dataset: { layer: entry.id },
  });
  range.addEventListener("input", () => setOpacity(entry.id, Number(range.value)));
  const extra = [];
  if (entry.kind === "uploaded") {
    extra.push(el("button", { type: "button", class: "link", dataset: { metrics: entry.id },
      onclick: () => showMetrics(entry.id) }, t("layers.metrics", { unit: t("layers.by.comune") })));
    extra.push(el("a", { href: `/downloads/${encodeURIComponent(entry.id)}?f=gpkg`, download: "" }, t("layers.download")));
  }
  let legend = null;
  if (entry.id === "comuni") {
    legend = el("ul", { class: "legend" }, Object.entries(entry.zoneNames || {}).map(([id, name]) =>
      el("li", {}, el("span", { class: "swatch small", style: `background:${zoneColour[id]}`, "aria-hidden": "true" }), name)));
  }
  return el("li", { class: "layer-row", dataset: { layer: entry.id } },
    el("div", { class: "layer-head" }, cb, el("label", { for: cb.id }, swatch(entry), entry.title)),
    range, extra.length ? el("div", { class: "layer-extra" }, extra) : null, legend);
}

export async function initLayers() {
  const doc = await getJSON("/collections");
  const comuni = await getJSON("/collections/comuni/items?limit=10000&simplify=25");
  const zoneIds = [...new Set(comuni.features.map((f) => f.properties.zona_omogenea_id))].sort();
  const zoneNames = {};
  comuni.features.forEach((f) => { zoneNames[f.properties.zona_omogenea_id] = f.properties.zona_omogenea_name; });
  zoneIds.forEach((z, i) => { zoneColour[z] = ZONE_PALETTE[i % ZONE_PALETTE.length]; });
  let n = 0;
  const order = (c) => (TERRITORY.includes(c.id) ? TERRITORY.indexOf(c.id) : c.id === "interventions" ? 3 : 4);
  const cols = [...doc.collections].sort((a, b) => order(a) - order(b));
  for (const c of cols) {
    const kind = TERRITORY.includes(c.id) ? "territory" : c.id === "interventions" ? "interventions" : "uploaded";
    layers.set(c.id, {
      id: c.id, title: title(c), kind, visible: false, opacity: 1, data: null, leaflet: null,
      colour: kind === "uploaded" ? LAYER_PALETTE[n++ % LAYER_PALETTE.length] : "#e41a1c",
      extent: c.extent && c.extent.spatial && c.extent.spatial.bbox[0],
    });
  }
  const ce = layers.get("comuni");
  if (ce) { ce.data = comuni; ce.zoneNames = zoneNames; }
  renderTree();
  if (ce) await setVisible("comuni", true);
}

function renderTree() {
  const tree = document.getElementById("layer-tree");
  const groups = [
    [t("layers.territory"), [...layers.values()].filter((e) => e.kind !== "uploaded")],
    [t("layers.uploaded"), [...layers.values()].filter((e) => e.kind === "uploaded")],
  ];
  const base = baseLayer
    ? el("p", {}, el("label", {}, (() => {
      const cb = el("input", { type: "checkbox", id: "layer-base", checked: true });
      cb.addEventListener("change", () => (cb.checked ? baseLayer.addTo(map) : map.removeLayer(baseLayer)));
      return cb;
    })(), " ", t("layers.base")))
    : el("p", { class: "muted", id: "no-base-map" }, t("layers.base_none"));
  fill(tree, base, groups.filter(([, list]) => list.length).map(([name, list]) =>
    el("section", { class: "layer-group" }, el("h3", {}, name), el("ul", { class: "layers" }, list.map(row)))));
}

/** Zoom to a layer's extent (CRS84 bbox from /collections). */
export function zoomToLayer(id) {
  const e = layers.get(id);
  if (e && e.extent) fitTo(L.latLngBounds([e.extent[1], e.extent[0]], [e.extent[3], e.extent[2]]));
}

// ----- identify ---------------------------------------------------------------------------

/** Features of every visible layer at a clicked point: [{entry, features}] in tree order. */
export async function identify(latlng, extraParams = {}) {
  const box = clickBox(latlng);
  const out = [];
  await Promise.all(visibleLayers().map(async (entry) => {
    const params = new URLSearchParams({ bbox: box, limit: "20", skipGeometry: "true", ...(extraParams[entry.id] || {}) });
    try {
      const fc = await getJSON(`/collections/${encodeURIComponent(entry.id)}/items?${params}`);
      if (fc.features.length) out.push({ entry, features: fc.features });
    } catch { /* a layer that cannot answer is left out */ }
  }));
  const ids = [...layers.keys()];
  return out.sort((a, b) => ids.indexOf(a.entry.id) - ids.indexOf(b.entry.id));
}

// ----- metrics of uploaded layers ---------------------------------------------------------

let choropleth = null;
const METRIC = { polygon: "share", line: "length_km", point: "count" };

export function clearMetrics() {
  if (choropleth) map.removeLayer(choropleth);
  choropleth = null;
  fill(document.getElementById("layer-metrics"));
}

function breaks(values) {
  const v = values.filter((x) => x > 0).sort((a, b) => a - b);
  if (!v.length) return [];
  return [0.2, 0.4, 0.6, 0.8].map((q) => v[Math.min(v.length - 1, Math.floor(q * v.length))]);
}

function classOf(value, br) {
  if (!(value > 0)) return null;
  let i = 0;
  while (i < br.length && value > br[i]) i++;
  return CHOROPLETH[Math.min(i, CHOROPLETH.length - 1)];
}

export async function showMetrics(id, by = "comune") {
  const entry = layers.get(id);
  const box = document.getElementById("layer-metrics");
  fill(box, el("p", { class: "muted" }, t("place.loading")));
  const unitCollection = { comune: "comuni", zona: "zone-omogenee", unione: "unioni" }[by];
  let result; let units;
  try {
    [result, units] = await Promise.all([
      getJSON(`/layers/${encodeURIComponent(id)}/metrics?by=${by}`),
      collectionData(unitCollection),
    ]);
  } catch (err) {
    fill(box, el("p", { class: "error" }, t("place.error", { error: err.message })));
    return;
  }
  const key = METRIC[result.geometry_type] || "count";
  const scale = key === "share" ? 100 : 1;
  const values = new Map(result.units.map((u) => [u.id, (u[key] || 0) * scale]));
  const br = breaks([...values.values()]);
  if (choropleth) map.removeLayer(choropleth);
  const unitId = (f) => (by === "comune" ? f.properties.istat_code : f.id);
  choropleth = L.geoJSON(units, {
    pane: "overlays", interactive: false,
    style: (f) => {
      const c = classOf(values.get(unitId(f)), br);
      return { color: "#555", weight: 0.6, fillColor: c || "#d9d9d9", fillOpacity: c ? 0.8 : 0.7 };
    },
  }).addTo(map);
  if (!entry.visible) await setVisible(id, true);
  entry.leaflet && entry.leaflet.bringToFront();
  const select = el("select", { id: "metrics-by" },
    ["comune", "zona", "unione"].map((b) => el("option", { value: b, selected: b === by }, t(`layers.by.${b}`))));
  select.addEventListener("change", () => showMetrics(id, select.value));
  const label = t(`metric.${key}`);
  const rows = [...result.units].sort((a, b) => (b[key] || 0) - (a[key] || 0));
  const extraCol = key === "share";
  const legend = el("ul", { class: "legend" }, [null, ...br].map((lo, i) =>
    el("li", {}, el("span", { class: "swatch small", style: `background:${CHOROPLETH[i]}`, "aria-hidden": "true" }),
      i === 0 ? `≤ ${fmtNum(br[0] ?? 0)}` : `> ${fmtNum(lo)}`)));
  fill(box,
    el("h3", {}, t("layers.metrics_title", { name: entry.title })),
    el("label", { for: "metrics-by" }, t("layers.metric_by"), " "), select, " ",
    el("a", { id: "metrics-csv", href: `/layers/${encodeURIComponent(id)}/metrics?by=${by}&f=csv`, download: "" }, t("layers.download_csv")),
    el("p", { class: "muted" }, label), legend,
    el("div", { class: "table-wrap" }, el("table", { class: "data", id: "metrics-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("metric.unit")), el("th", { scope: "col" }, label),
        extraCol ? el("th", { scope: "col" }, t("metric.covered_km2")) : null, el("th", { scope: "col" }, t("metric.interventions")))),
      el("tbody", {}, rows.map((u) => el("tr", {}, el("td", {}, u.name),
        el("td", { class: "num" }, fmtNum((u[key] || 0) * scale, key === "count" ? 0 : 2)),
        extraCol ? el("td", { class: "num" }, fmtNum(u.covered_km2, 3)) : null,
        el("td", { class: "num" }, fmtInt(u.interventions))))))));
}
