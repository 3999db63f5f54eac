// Map of the intervention form: draw, move or remove one point, line or polygon with
// Leaflet-Geoman; the shape is written as GeoJSON into the hidden "geometry" field.
// Loaded as a file (no inline script: the page keeps the strict Content-Security-Policy).
(function () {
  "use strict";
  var el = document.getElementById("edit-map");
  var input = document.getElementById("f-geometry");
  var state = document.getElementById("geometry-state");
  if (!el || !input || !window.L) return;

  var map = L.map(el, { center: [45.46, 9.19], zoom: 10 });
  window.cmmEditMap = map; // for the browser tests
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { attribution: escapeHtml(el.dataset.tilesAttribution || ""), maxZoom: 19 }).addTo(map);
  }
  map.attributionControl.addAttribution(escapeHtml(el.dataset.attribution || ""));
  if (map.pm && document.documentElement.lang === "it") map.pm.setLang("it");

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  var drawn = null;
  var placementMap = document.querySelector('input[name="placement"][value="map"]');

  function sync() {
    if (!drawn) {
      input.value = "";
      state.textContent = el.dataset.msgNone || "";
      return;
    }
    var gj = drawn.toGeoJSON();
    var geom = gj.type === "FeatureCollection"
      ? { type: "MultiPoint", coordinates: gj.features.map(function (f) { return f.geometry.coordinates; }) }
      : gj.geometry;
    input.value = JSON.stringify(geom);
    state.textContent = (el.dataset.msgSet || "{type}").replace("{type}", geom.type);
    if (placementMap) placementMap.checked = true;
  }

  function watch(layer) {
    layer.on("pm:edit pm:update pm:dragend pm:markerdragend pm:vertexadded pm:vertexremoved", sync);
  }

  function setLayer(layer) {
    if (drawn && drawn !== layer) map.removeLayer(drawn);
    drawn = layer;
    watch(layer);
    sync();
  }

  // The stored shape, if any.
  if (input.value) {
    try {
      var geom = JSON.parse(input.value);
      var layer = L.GeoJSON.geometryToLayer({ type: "Feature", properties: {}, geometry: geom });
      layer.addTo(map);
      drawn = layer;
      watch(layer);
      var b = layer.getBounds ? layer.getBounds() : L.latLngBounds([layer.getLatLng()]);
      if (b.isValid()) map.fitBounds(b, { maxZoom: 15, padding: [20, 20] });
    } catch (e) {
      drawn = null;
    }
  }
  sync();

  // Comuni outlines, for orientation even without a base map; an editor's own comuni first.
  var mine = (el.dataset.comuni || "").split(",").filter(Boolean);
  fetch("/collections/comuni/items?limit=200&simplify=50", { headers: { Accept: "application/geo+json" } })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (fc) {
      if (!fc) return;
      var outlines = L.geoJSON(fc, {
        interactive: false,
        pmIgnore: true,
        style: function (f) {
          var own = mine.indexOf(String(f.id)) >= 0 || mine.indexOf(f.properties.istat_code) >= 0;
          return { color: own ? "#0b4f6c" : "#777", weight: own ? 2 : 1, fill: own, fillOpacity: 0.06 };
        },
      }).addTo(map);
      outlines.bringToBack();
      if (!drawn && mine.length) {
        var own = L.featureGroup();
        outlines.eachLayer(function (l) {
          var f = l.feature;
          if (mine.indexOf(String(f.id)) >= 0 || mine.indexOf(f.properties.istat_code) >= 0) own.addLayer(L.geoJSON(f));
        });
        if (own.getLayers().length) map.fitBounds(own.getBounds(), { padding: [10, 10] });
      }
    })
    .catch(function () { /* outlines are an aid only */ });

  if (!map.pm) return;
  map.pm.addControls({
    position: "topleft",
    drawMarker: true,
    drawPolyline: true,
    drawPolygon: true,
    drawCircle: false,
    drawCircleMarker: false,
    drawRectangle: false,
    drawText: false,
    cutPolygon: false,
    rotateMode: false,
    editMode: true,
    dragMode: true,
    removalMode: true,
  });
  // Geoman's buttons are icon links: give each its tooltip as accessible name.
  el.querySelectorAll(".leaflet-pm-toolbar .button-container").forEach(function (c) {
    var a = c.querySelector(".leaflet-buttons-control-button");
    if (a && c.title) a.setAttribute("aria-label", c.title);
  });
  map.on("pm:create", function (e) { setLayer(e.layer); });
  map.on("pm:remove", function (e) {
    if (e.layer === drawn) {
      drawn = null;
      sync();
    }
  });
})();
