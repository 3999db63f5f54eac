(function () {
  /* Fixed text (no template variables): the CSP allows it by its SHA-256 (api/security.py).
     Feature properties are shown with textContent, never parsed as HTML. */
  var box = document.getElementById("map");
  if (typeof L === "undefined") { box.textContent = "map library not available"; return; }
  var cfg = document.getElementById("map-data").dataset;
  var map = L.map(box);
  if (cfg.tiles && cfg.tiles !== "none") {
    L.tileLayer(cfg.tiles, {maxZoom: 19, attribution: "&copy; OpenStreetMap"}).addTo(map);
  }
  function label(f) {
    var p = f.properties || {};
    var b = document.createElement("b");
    b.className = "cmm-popup-title";
    b.textContent = String(p.name || p.title || f.id);
    return b;
  }
  function show(fc) {
    var layer = L.geoJSON(fc, {onEachFeature: function (f, l) { l.bindPopup(label(f)); }}).addTo(map);
    var b = layer.getBounds();
    if (b.isValid()) { map.fitBounds(b); } else { map.setView([45.46, 9.19], 9); }
  }
  var inline = JSON.parse(cfg.features || "null");
  if (inline) { show(inline); }
  else if (cfg.url) {
    fetch(cfg.url, {headers: {Accept: "application/geo+json"}})
      .then(function (r) { return r.json(); }).then(show);
  }
})();
