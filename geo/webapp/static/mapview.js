// The Leaflet map: optional base map, one overlay per OGC collection, highlight, zoom.
import { CONFIG, t } from "./dom.js";

/* global L */
export const ZONE_PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4"];
export const LAYER_PALETTE = ["#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf", "#666666"];
export const CHOROPLETH = ["#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c"];
export const BOUNDS = [[45.17, 8.70], [45.65, 9.56]];

export const map = L.map("map", {
  zoomControl: true, minZoom: 8, maxZoom: 18, zoomSnap: 0.25, keyboard: true,
}).fitBounds(BOUNDS);
map.attributionControl.setPrefix(false);
map.attributionControl.addAttribution(t("map.attribution"));
L.control.scale({ imperial: false }).addTo(map);

export let baseLayer = null;
if (CONFIG.tiles) {
  baseLayer = L.tileLayer(CONFIG.tiles, { maxZoom: 19, attribution: CONFIG.tilesAttribution });
  baseLayer.addTo(map);
}

// Panes keep the order: territory below, uploaded layers, choropleth, interventions, highlight.
for (const [name, z] of [["territory", 410], ["overlays", 420], ["points", 440], ["highlight", 450]]) {
  map.createPane(name).style.zIndex = String(z);
}

let highlight = null;
/** Outline `geojson` (a geometry or feature) in the highlight colour; zoom to it. */
export function showHighlight(geojson, { zoom = true } = {}) {
  if (highlight) map.removeLayer(highlight);
  highlight = null;
  if (!geojson) return;
  highlight = L.geoJSON(geojson, {
    pane: "highlight", interactive: false,
    style: { color: "#c2185b", weight: 3, fill: true, fillOpacity: 0.08 },
    pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 10, color: "#c2185b", weight: 3, fill: false, pane: "highlight" }),
  }).addTo(map);
  if (zoom) fitTo(highlight.getBounds());
}

export function fitTo(bounds) {
  if (!bounds || !bounds.isValid()) return;
  map.flyToBounds(bounds, { padding: [30, 30], maxZoom: 14, duration: 0.5 });
}

/** A small bbox (CRS84) around a clicked point, `px` pixels each way. */
export function clickBox(latlng, px = 5) {
  const p = map.latLngToContainerPoint(latlng);
  const a = map.containerPointToLatLng([p.x - px, p.y + px]);
  const b = map.containerPointToLatLng([p.x + px, p.y - px]);
  return [a.lng, a.lat, b.lng, b.lat].map((v) => v.toFixed(6)).join(",");
}

/** Current view as CRS84 bbox text. */
export function viewBox() {
  const b = map.getBounds();
  return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
}
