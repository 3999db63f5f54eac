"""Folium (Leaflet) maps of the territory, a comune, a zone, the interventions and layers.

Plain functions returning a :class:`folium.Map`, used alike by the notebooks and by the
API (which serves them as HTML pages). Geometries are CRS84, coordinates rounded to
:data:`COORD_DECIMALS` decimals to keep pages light. Every comune polygon carries the
CSS classes ``cmm-comune cmm-c-<istat_code>`` so a browser can count and click them.

By default a map loads Leaflet from the CDNs Folium names (fine in a notebook); the API
calls :func:`use_local_assets` so that pages load everything from the app itself.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import folium
import numpy as np
import shapely
from branca.element import MacroElement
from jinja2 import Template
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo import BOUNDARIES_ATTRIBUTION
from geo.errors import NotFound
from geo.settings import get_settings
from geo.territory import Comune, Territory, get_territory

#: Decimals kept in served coordinates (5 ≈ 1 m).
COORD_DECIMALS = 5
OSM_ATTRIBUTION = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
#: Zoom range of the maps (the metropolitan city to a street).
MIN_ZOOM, MAX_ZOOM = 8, 18
#: Categorical palette of the zone omogenee (ColorBrewer Dark2 + one), in zone-id order.
ZONE_PALETTE = (
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#1f78b4",
)  # fmt: skip
#: Palette of categories (programmes, missions) of the interventions.
CATEGORY_PALETTE = (
    "#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf",
    "#17becf", "#bcbd22", "#666666", "#1a1a80", "#80cdc1",
)  # fmt: skip
UNION_COLOUR = "#111111"
#: Sequential palette of choropleths (ColorBrewer Greens, 5 classes).
CHOROPLETH_PALETTE = ("#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c")
NO_DATA_COLOUR = "#d9d9d9"

#: Local paths (below the vendor base URL) of the Folium assets the maps use.
LOCAL_ASSETS: dict[str, str] = {
    "leaflet": "leaflet/leaflet.js",
    "leaflet_css": "leaflet/leaflet.css",
    "markerclusterjs": "leaflet.markercluster/leaflet.markercluster.js",
    "markerclustercss": "leaflet.markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "leaflet.markercluster/MarkerCluster.Default.css",
}
#: Folium defaults these maps never need (jQuery, Bootstrap, awesome-markers, icon fonts).
UNUSED_ASSETS = frozenset(
    {
        "jquery",
        "bootstrap",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "awesome_rotate_css",
    }
)


# ----- geometry helpers ---------------------------------------------------------------------


def light_geometry(geom: BaseGeometry, decimals: int = COORD_DECIMALS) -> dict[str, Any]:
    """GeoJSON geometry with coordinates rounded to ``decimals``."""
    rounded = shapely.transform(geom, lambda xy: np.round(xy, decimals))
    return mapping(rounded)


def _bounds(geoms: Iterable[BaseGeometry]) -> list[list[float]]:
    """Leaflet bounds [[south, west], [north, east]] of geometries."""
    minx, miny, maxx, maxy = shapely.total_bounds(np.array(list(geoms), dtype=object))
    return [[float(miny), float(minx)], [float(maxy), float(maxx)]]


def _fmt_int(n: int | float) -> str:
    """Italian thousands separator: 1.371.498."""
    return f"{round(n):,}".replace(",", ".")


def zone_colours(t: Territory | None = None) -> dict[str, str]:
    """Colour of each zona omogenea, by zone id (stable: zone ids in sorted order)."""
    t = t or get_territory()
    return {zid: ZONE_PALETTE[i % len(ZONE_PALETTE)] for i, zid in enumerate(sorted(t.zones))}


def comune_properties(t: Territory, c: Comune) -> dict[str, Any]:
    """Properties shown in a comune's tooltip and popup."""
    u = t.unione_of(c)
    return {
        "istat_code": c.istat_code,
        "name": c.name,
        "zona_id": c.zona_id,
        "zona": t.zones[c.zona_id].name,
        "unione": u.name if u else "—",
        "population": c.population,
        "population_fmt": _fmt_int(c.population),
        "area_km2": round(c.area_km2, 2),
        "page": f'<a href="/maps/comuni/{c.istat_code}">scheda del comune</a>',
    }


def comuni_collection(
    codes: Iterable[str] | None = None, t: Territory | None = None
) -> dict[str, Any]:
    """FeatureCollection of comuni (all, or ``codes``) with light geometry and properties."""
    t = t or get_territory()
    chosen = t.comuni_list if codes is None else [t.comuni[c] for c in codes]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": c.istat_code,
                "properties": comune_properties(t, c),
                "geometry": light_geometry(c.geometry),
            }
            for c in chosen
        ],
    }


def _group_feature(g: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": g.id,
        "properties": {
            "id": g.id,
            "name": g.name,
            "n_comuni": len(g.comuni),
            "population_fmt": _fmt_int(g.population),
        },
        "geometry": light_geometry(g.geometry),
    }


# ----- map furniture ------------------------------------------------------------------------


class Legend(MacroElement):
    """A legend as a Leaflet control: a title and rows of (colour, label, kind)."""

    _template = Template(
        """
{% macro header(this, kwargs) %}
<style>
.cmm-legend { background: rgba(255,255,255,.92); padding: 6px 10px; font: 12px/1.4 sans-serif;
  max-height: 45vh; overflow-y: auto; border-radius: 4px; }
.cmm-legend h4 { margin: 0 0 4px; font-size: 13px; }
.cmm-legend i { display: inline-block; width: 14px; height: 14px; margin-right: 6px;
  vertical-align: -2px; }
.cmm-legend i.line { height: 0; border-top: 3px dashed; background: none !important;
  vertical-align: 3px; }
.cmm-legend i.dot { border-radius: 50%; }
path.leaflet-interactive:focus { outline: none; }
</style>
{% endmacro %}
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
{{ this.get_name() }}.onAdd = function () {
    var div = L.DomUtil.create("div", "cmm-legend leaflet-bar");
    div.innerHTML = {{ this.html|tojson }};
    L.DomEvent.disableClickPropagation(div);
    return div;
};
{{ this.get_name() }}.addTo({{ this._parent.get_name() }});
{% endmacro %}
"""
    )

    def __init__(
        self,
        title: str,
        items: Sequence[tuple[str, str, str]],
        position: str = "bottomright",
    ) -> None:
        super().__init__()
        self._name = "Legend"
        self.position = position
        rows = "".join(
            f'<div><i class="{html.escape(kind)}" style="background:{html.escape(colour)};'
            f'border-color:{html.escape(colour)}"></i>{html.escape(label)}</div>'
            for colour, label, kind in items
        )
        self.html = f"<h4>{html.escape(title)}</h4>{rows}"


class Attribution(MacroElement):
    """Adds a text to the map's attribution control (boundaries' licence)."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});
{% endmacro %}
"""
    )

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "Attribution"
        self.text = text


class BindFeaturePopups(MacroElement):
    """Binds each feature's ``popup`` (HTML) and ``category`` (tooltip) to its own marker.

    Needed for GeoJson points inside a MarkerCluster: the cluster adds the markers, not
    the GeoJson group, so a popup bound to the group would never open.
    """

    _template = Template(
        """
{% macro script(this, kwargs) %}
{{ this.layer.get_name() }}.eachLayer(function (l) {
    l.bindPopup(l.feature.properties.popup, {maxWidth: 320});
    l.bindTooltip(l.feature.properties.category);
});
{% endmacro %}
"""
    )

    def __init__(self, layer: folium.GeoJson) -> None:
        super().__init__()
        self._name = "BindFeaturePopups"
        self.layer = layer


def base_map(
    bounds: list[list[float]],
    *,
    tiles: str | None = None,
    height: str = "100%",
) -> folium.Map:
    """An empty map fitted to ``bounds`` with the configured base map and attribution.

    ``tiles``: a tile URL template, ``"none"`` for no base map, or None for the setting
    ``CMM_GEO_TILES_URL`` (OpenStreetMap by default).
    """
    url = tiles if tiles is not None else get_settings().tiles_url
    m = folium.Map(
        tiles=None,
        control_scale=True,
        height=height,
        prefer_canvas=False,
        maxZoom=MAX_ZOOM,  # a map option (Leaflet.markercluster needs it without tiles)
        minZoom=MIN_ZOOM,
        zoomSnap=0.25,
    )
    if url and url.strip().lower() != "none":
        attr = OSM_ATTRIBUTION if "openstreetmap" in url else "Base map: " + html.escape(url)
        folium.TileLayer(tiles=url, attr=attr, name="Base map", overlay=False).add_to(m)
    Attribution(BOUNDARIES_ATTRIBUTION).add_to(m)
    m.fit_bounds(bounds)
    return m


def _comuni_layer(
    fc: dict[str, Any],
    name: str,
    style: Callable[[dict[str, Any]], dict[str, Any]],
    extra_class: str = "",
    *,
    show: bool = True,
    tooltip: folium.GeoJsonTooltip | None = None,
) -> folium.GeoJson:
    """GeoJson layer of comuni with classed paths, tooltip and popup."""

    def styled(feature: dict[str, Any]) -> dict[str, Any]:
        code = feature["properties"]["istat_code"]
        cls = f"cmm-comune cmm-c-{code} {extra_class}".strip()
        return {**style(feature), "className": cls}

    return folium.GeoJson(
        fc,
        name=name,
        show=show,
        style_function=styled,
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.85},
        tooltip=tooltip
        or folium.GeoJsonTooltip(
            fields=["name", "zona", "unione", "population_fmt"],
            aliases=["Comune", "Zona omogenea", "Unione", "Popolazione"],
            sticky=True,
        ),
        popup=folium.GeoJsonPopup(
            fields=["name", "istat_code", "zona", "unione", "population_fmt", "page"],
            aliases=["Comune", "ISTAT", "Zona omogenea", "Unione", "Popolazione", ""],
        ),
        smooth_factor=0.5,
    )


def _groups_layer(groups: Sequence[Any], name: str, colour: str, css: str) -> folium.GeoJson:
    """Outlines (no fill) of zones or unions, with a tooltip."""
    fc = {"type": "FeatureCollection", "features": [_group_feature(g) for g in groups]}
    return folium.GeoJson(
        fc,
        name=name,
        style_function=lambda f: {
            "color": colour,
            "weight": 3,
            "dashArray": "6 4",
            "fill": False,
            "className": css,
            "interactive": False,
        },
        tooltip=None,
    )


def _zone_style(colours: Mapping[str, str], opacity: float = 0.55) -> Callable[..., dict]:
    return lambda f: {
        "fillColor": colours[f["properties"]["zona_id"]],
        "color": "#ffffff",
        "weight": 1,
        "fillOpacity": opacity,
    }


# ----- the maps -----------------------------------------------------------------------------


def territory_map(*, tiles: str | None = None) -> folium.Map:
    """The 133 comuni coloured by zona omogenea, unions outlined, with legend and tooltips."""
    t = get_territory()
    colours = zone_colours(t)
    m = base_map(_bounds(t.geometries), tiles=tiles)
    _comuni_layer(comuni_collection(t=t), "Comuni per zona omogenea", _zone_style(colours)).add_to(
        m
    )
    _groups_layer(list(t.unions.values()), "Unioni di comuni", UNION_COLOUR, "cmm-unione").add_to(m)
    items = [(colours[z.id], z.name, "") for z in sorted(t.zones.values(), key=lambda z: z.id)]
    items.append((UNION_COLOUR, "Unione di comuni", "line"))
    Legend("Zone omogenee", items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def comune_map(
    code: str,
    *,
    interventions: Sequence[Mapping[str, Any]] | None = None,
    tiles: str | None = None,
) -> folium.Map:
    """A comune highlighted, with its neighbours, its zone and union outlined, interventions."""
    t = get_territory()
    if code not in t.comuni:
        raise NotFound(f"no comune with ISTAT code {code}", parameter="istat_code")
    c = t.comuni[code]
    colours = zone_colours(t)
    neighbours = list(t.neighbours[code])
    zone = t.zones[c.zona_id]
    union = t.unione_of(c)
    geoms = [c.geometry, *(t.comuni[n].geometry for n in neighbours)]
    m = base_map(_bounds(geoms), tiles=tiles, height="70vh")
    _groups_layer([zone], f"Zona omogenea: {zone.name}", colours[zone.id], "cmm-zona").add_to(m)
    if union is not None:
        _groups_layer([union], f"Unione: {union.name}", UNION_COLOUR, "cmm-unione").add_to(m)
    _comuni_layer(
        comuni_collection(neighbours, t),
        "Comuni confinanti",
        _zone_style(colours, 0.25),
        "cmm-neighbour",
    ).add_to(m)
    _comuni_layer(
        comuni_collection([code], t),
        c.name,
        lambda f: {"fillColor": "#c2185b", "color": "#880e4f", "weight": 3, "fillOpacity": 0.5},
        "cmm-selected",
    ).add_to(m)
    items = [
        ("#c2185b", c.name, ""),
        (colours[zone.id], "Comuni confinanti (colore della loro zona)", ""),
        (colours[zone.id], f"Zona omogenea {zone.name}", "line"),
    ]
    if union is not None:
        items.append((UNION_COLOUR, union.name, "line"))
    if interventions:
        cats = add_interventions(m, interventions, legend=False)
        items += [(col, f"Interventi: {lab}", "dot") for lab, col in cats.items()]
    Legend(c.name, items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def zone_map(
    zona_id: str,
    *,
    interventions: Sequence[Mapping[str, Any]] | None = None,
    tiles: str | None = None,
) -> folium.Map:
    """A zona omogenea: its comuni, the other comuni faint around it, unions and interventions."""
    t = get_territory()
    if zona_id not in t.zones:
        raise NotFound(
            f"no zona omogenea {zona_id!r}; known: {', '.join(t.zones)}", parameter="zona_id"
        )
    zone = t.zones[zona_id]
    colours = zone_colours(t)
    m = base_map(_bounds([zone.geometry]), tiles=tiles, height="75vh")
    others = [c.istat_code for c in t.comuni_list if c.zona_id != zona_id]
    _comuni_layer(
        comuni_collection(others, t),
        "Altri comuni",
        lambda f: {"fillColor": "#bbbbbb", "color": "#ffffff", "weight": 1, "fillOpacity": 0.3},
        "cmm-context",
    ).add_to(m)
    _comuni_layer(
        comuni_collection(zone.comuni, t), f"Comuni di {zone.name}", _zone_style(colours, 0.6)
    ).add_to(m)
    unions = [u for u in t.unions.values() if zona_id in u.zone]
    if unions:
        _groups_layer(unions, "Unioni di comuni", UNION_COLOUR, "cmm-unione").add_to(m)
    items = [(colours[zona_id], f"{zone.name} ({len(zone.comuni)} comuni)", "")]
    items.append(("#bbbbbb", "Altri comuni", ""))
    items += [(UNION_COLOUR, u.name, "line") for u in unions]
    if interventions:
        cats = add_interventions(m, interventions, legend=False)
        items += [(col, f"Interventi: {lab}", "dot") for lab, col in cats.items()]
    Legend(zone.name, items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


# ----- interventions --------------------------------------------------------------------------


def _first(props: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = props.get(n)
        if v not in (None, "", []):
            return v
    return None


def _category(props: Mapping[str, Any], colour_by: str) -> str:
    """The programme or mission of an intervention, as a label."""
    if colour_by == "mission":
        v = _first(props, "mission", "missions", "mission_code", "missions_codes")
    else:
        v = _first(props, "programme", "programme_name", "program")
    if isinstance(v, list | tuple):
        v = v[0] if v else None
    return str(v) if v not in (None, "") else "—"


def _amount(props: Mapping[str, Any]) -> str:
    v = _first(props, "amount_eur", "amount", "importo", "cost_eur", "funding_eur")
    if v is None:
        return "—"
    try:
        return "€ " + _fmt_int(float(v))
    except (TypeError, ValueError):
        return html.escape(str(v))


def intervention_popup(props: Mapping[str, Any]) -> str:
    """HTML of an intervention's popup: title, amount, status, source link."""
    title = html.escape(str(_first(props, "title", "name", "titolo") or "Intervento"))
    status = html.escape(str(_first(props, "status", "stato") or "—"))
    src = _first(props, "source_url", "source", "url", "link")
    src_html = "—"
    if src:
        s = html.escape(str(src))
        src_html = f'<a href="{s}" target="_blank" rel="noopener">fonte</a>' if "://" in s else s
    return f"<b>{title}</b><br>Importo: {_amount(props)}<br>Stato: {status}<br>Fonte: {src_html}"


def known_categories(colour_by: str = "programme") -> list[str]:
    """Every programme name (or mission code) of the plan catalogue, in a stable order."""
    try:
        from geo.plan import PlanCatalogue

        cat = PlanCatalogue.load()
    except Exception:  # no catalogue: colours follow the labels present
        return []
    if colour_by == "mission":
        return [m.code for m in cat.missions]
    return sorted(p.name for p in cat.programmes)


def category_colours(labels: Iterable[str], colour_by: str = "programme") -> dict[str, str]:
    """Colours of the categories present in ``labels``; stable across maps (the catalogue's
    order, then unknown labels sorted)."""
    present = set(labels)
    known = known_categories(colour_by)
    order = known + sorted(present - set(known))
    return {
        lab: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)]
        for i, lab in enumerate(order)
        if lab in present
    }


def category_label(label: str, colour_by: str = "programme") -> str:
    """Legend text of a category: a mission code gets its title."""
    if colour_by != "mission":
        return label
    try:
        from geo.plan import PlanCatalogue

        title = PlanCatalogue.load().mission(label).title
    except Exception:
        return label
    return f"{label} – {title[:48] + '…' if len(title) > 48 else title}"


def add_interventions(
    m: folium.Map,
    features: Sequence[Mapping[str, Any]],
    *,
    colour_by: str = "programme",
    legend: bool = True,
    name: str = "Interventi",
) -> dict[str, str]:
    """Add intervention points (GeoJSON features, CRS84) clustered, coloured and with popups.

    Features without geometry are skipped; non-point geometries are shown at a
    representative point. Returns the colour of each category drawn.
    """
    from folium.plugins import MarkerCluster

    pts: list[dict[str, Any]] = []
    for f in features:
        g = f.get("geometry")
        if not g:
            continue
        geom = shapely.geometry.shape(g)
        if geom.is_empty:
            continue
        p = geom if geom.geom_type == "Point" else geom.representative_point()
        props = dict(f.get("properties") or {})
        pts.append(
            {
                "type": "Feature",
                "id": f.get("id"),
                "properties": {
                    "category": _category(props, colour_by),
                    "popup": intervention_popup(props),
                },
                "geometry": light_geometry(p),
            }
        )
    colours = category_colours((p["properties"]["category"] for p in pts), colour_by)
    cluster = MarkerCluster(name=name, options={"maxClusterRadius": 40})
    cluster.add_to(m)
    if pts:
        layer = folium.GeoJson(
            {"type": "FeatureCollection", "features": pts},
            name=name,
            marker=folium.CircleMarker(radius=7, fill=True, fill_opacity=0.9, weight=1),
            style_function=lambda f: {
                "fillColor": colours[f["properties"]["category"]],
                "color": "#222222",
                "className": "cmm-intervention",
            },
            control=False,
        ).add_to(cluster)
        BindFeaturePopups(layer).add_to(m)
    if legend:
        title = "Missione" if colour_by == "mission" else "Programma"
        items = [(c, category_label(lab, colour_by), "dot") for lab, c in colours.items()]
        Legend(f"Interventi per {title.lower()}", items).add_to(m)
    return colours


def interventions_map(
    features: Sequence[Mapping[str, Any]],
    *,
    colour_by: str = "programme",
    title: str = "Interventi",
    tiles: str | None = None,
    height: str = "85vh",
) -> folium.Map:
    """Interventions (GeoJSON features, CRS84) over the comuni outlines, clustered."""
    t = get_territory()
    m = base_map(_bounds(t.geometries), tiles=tiles, height=height)
    _comuni_layer(
        comuni_collection(t=t),
        "Comuni",
        lambda f: {"fillColor": "#ffffff", "color": "#777777", "weight": 1, "fillOpacity": 0.05},
    ).add_to(m)
    add_interventions(m, features, colour_by=colour_by, name=title)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


# ----- layers (choropleth of per-comune metrics) ---------------------------------------------


def choropleth_breaks(values: Sequence[float], k: int = len(CHOROPLETH_PALETTE)) -> list[float]:
    """Quantile class breaks (k+1 ascending, distinct) of ``values``."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return [0.0, 1.0]
    qs = np.unique(np.quantile(arr, np.linspace(0, 1, k + 1)))
    if qs.size == 1:  # one value: one class [v, v]
        qs = np.array([qs[0], qs[0]])
    return [float(q) for q in qs]


def _class_of(v: float | None, breaks: Sequence[float]) -> int | None:
    if v is None or not np.isfinite(v):
        return None
    i = int(np.searchsorted(breaks, v, side="right")) - 1
    return max(0, min(i, len(breaks) - 2))


def choropleth_map(
    metrics: Mapping[str, float | None],
    *,
    metric_label: str,
    overlay: Mapping[str, Any] | None = None,
    overlay_name: str = "Layer",
    tiles: str | None = None,
    height: str = "85vh",
) -> folium.Map:
    """Comuni shaded by a per-comune metric (by ISTAT code), with an optional overlay layer.

    ``overlay`` is a GeoJSON FeatureCollection (CRS84) drawn above the comuni.
    """
    t = get_territory()
    # Zero gets the lightest class; positive values are split in quantile classes, the
    # highest always the darkest (so one covered comune stands out).
    positive = [v for v in metrics.values() if v is not None and v > 0]
    breaks = choropleth_breaks(positive, k=len(CHOROPLETH_PALETTE) - 1)
    n = len(breaks) - 1
    first = len(CHOROPLETH_PALETTE) - n

    def colour_of(v: float | None) -> str:
        if v is None or not np.isfinite(v):
            return NO_DATA_COLOUR
        if v <= 0 or not positive:
            return CHOROPLETH_PALETTE[0]
        return CHOROPLETH_PALETTE[first + (_class_of(v, breaks) or 0)]

    fc = comuni_collection(t=t)
    for f in fc["features"]:
        v = metrics.get(f["properties"]["istat_code"])
        f["properties"]["metric"] = "—" if v is None else f"{v:,.2f}".replace(",", " ")
        f["properties"]["fill"] = colour_of(v)

    m = base_map(_bounds(t.geometries), tiles=tiles, height=height)
    _comuni_layer(
        fc,
        metric_label,
        lambda f: {
            "fillColor": f["properties"]["fill"],
            "color": "#777777",
            "weight": 1,
            "fillOpacity": 0.8,
        },
        tooltip=folium.GeoJsonTooltip(
            fields=["name", "zona", "metric"],
            aliases=["Comune", "Zona omogenea", metric_label],
            sticky=True,
        ),
    ).add_to(m)
    if overlay is not None and overlay.get("features"):
        folium.GeoJson(
            overlay,
            name=overlay_name,
            style_function=lambda f: {
                "color": "#00441b",
                "weight": 2,
                "fillColor": "#238b45",
                "fillOpacity": 0.6,
                "className": "cmm-overlay",
                "interactive": False,  # the comuni below keep their tooltips
            },
            marker=folium.CircleMarker(radius=4, fill=True),
        ).add_to(m)
    items = [(CHOROPLETH_PALETTE[0], "0", "")]
    if positive:
        items += [
            (
                CHOROPLETH_PALETTE[first + i],
                f"{breaks[i]:,.2f}"
                if breaks[i] == breaks[i + 1]
                else f"{breaks[i]:,.2f} – {breaks[i + 1]:,.2f}",
                "",
            )
            for i in range(n)
        ]
    if any(v is None for v in metrics.values()) or len(metrics) < len(t.comuni):
        items.append((NO_DATA_COLOUR, "nessun dato", ""))
    Legend(metric_label, items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


# ----- data from the collections (interventions, layers) ------------------------------------

#: Collections that are not green-network layers.
NON_LAYER_COLLECTIONS = frozenset({"comuni", "zone-omogenee", "unioni", "interventions", "layers"})
_MAX_FEATURES = 1_000_000


def _registry():
    from geo.collections import registry

    return registry


def _interventions_provider():
    """The ``interventions`` collection, registering it when its module is installed."""
    reg = _registry()
    if "interventions" not in reg:
        try:
            from geo import interventions_collection
        except ImportError:
            return None
        interventions_collection.register(reg)
    return reg.get("interventions")


def interventions_available() -> bool:
    """Whether this service has the interventions collection."""
    try:
        return _interventions_provider() is not None
    except Exception:  # a store that cannot be opened: maps without interventions
        return False


def fetch_interventions(filters: Mapping[str, str] | None = None) -> list[dict[str, Any]] | None:
    """Interventions matching the API's property filters (programme, mission, driver,
    status, comune, zona, unione, …) as GeoJSON features, or None when unavailable."""
    from geo.collections import FeatureQuery

    if not interventions_available():
        return None
    provider = _interventions_provider()
    q = FeatureQuery(properties_eq=dict(filters or {}), limit=_MAX_FEATURES)
    return list(provider.query(q).features)


def _stored_layers() -> dict[str, str]:
    """Layers of the store (geo.layers), id → name; {} when that module is absent."""
    try:
        from geo import layers
    except ImportError:
        return {}
    try:
        layers.sync_registry()
        return {r["id"]: r["name"] for r in layers.list_layers()}
    except Exception:  # a store that cannot be opened: no layers on the maps
        return {}


def available_layers() -> list[tuple[str, str]]:
    """(id, title) of the green-network layers: stored ones and other registered layers."""
    found = _stored_layers()
    reg = _registry()
    for cid in reg.ids():
        if cid in NON_LAYER_COLLECTIONS or cid in found:
            continue
        try:
            p = reg.get(cid)
        except Exception:
            continue
        if p is not None:
            found[cid] = p.title
    return list(found.items())


def _family(geoms: np.ndarray) -> str:
    from geo.layers_io import LINE, POINT, POLYGON

    kinds = set(shapely.get_type_id(geoms).tolist())
    if kinds & {3, 6}:
        return POLYGON
    if kinds & {1, 2, 5}:
        return LINE
    return POINT


#: Metric shown per geometry family: (key in the metrics rows, legend label).
LAYER_METRIC = {
    "polygon": ("share", "Quota coperta (%)"),
    "line": ("length_km", "Lunghezza (km)"),
    "point": ("count", "Numero di elementi"),
}


def _layer_geometries(layer_id: str) -> tuple[np.ndarray, str, dict[str, Any] | None]:
    """CRS84 geometries, title and (for stored layers) per-comune metrics of a layer."""
    stored = _stored_layers()
    if layer_id in stored:
        from geo import layers

        return layers.load_layer(layer_id).geometries, stored[layer_id], layers.metrics(layer_id)
    from geo.collections import FeatureQuery

    provider = _registry().get(layer_id)
    if provider is None or layer_id in NON_LAYER_COLLECTIONS:
        raise NotFound(f"no layer {layer_id!r}", parameter="layer_id")
    feats = provider.query(FeatureQuery(limit=_MAX_FEATURES)).features
    geoms = [shapely.geometry.shape(f["geometry"]) for f in feats if f.get("geometry")]
    return np.array(geoms, dtype=object), provider.title, None


def layer_map(layer_id: str, *, tiles: str | None = None) -> tuple[folium.Map, str]:
    """A green layer over the comuni shaded by its per-comune metric; (map, title).

    Polygons: share of the comune covered (%); lines: km inside it; points: count.
    Stored layers use :func:`geo.layers.metrics`; other collections are measured here
    with :func:`geo.overlay.layer_metrics` (both in EPSG:32632).
    """
    from geo.overlay import layer_metrics
    from geo.territory import to_metric

    geoms, title, metrics = _layer_geometries(layer_id)
    if geoms.size == 0:
        return choropleth_map({}, metric_label="nessun dato", tiles=tiles), title
    if metrics is None:
        metrics = layer_metrics(_family(geoms), to_metric(geoms), "comune")
    key, label = LAYER_METRIC[metrics["geometry_type"]]
    values = {r["id"]: (r[key] * 100 if key == "share" else r[key]) for r in metrics["units"]}
    overlay = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": light_geometry(g)} for g in geoms
        ],
    }
    m = choropleth_map(values, metric_label=label, overlay=overlay, overlay_name=title, tiles=tiles)
    return m, title


def data_version(layer_id: str | None = None) -> str:
    """Token of everything a map depends on: territory, interventions, layer, tiles, assets."""
    parts = [get_territory().version, get_settings().tiles_url, folium.__version__]
    try:
        p = _interventions_provider()
        parts.append(p.version() if p is not None else "-")
    except Exception:
        parts.append("?")
    if layer_id is not None:
        p = _registry().get(layer_id)
        parts.append(p.version() if p is not None else "-")
    parts.extend(f"{i}:{t}" for i, t in available_layers())
    return "|".join(parts)


# ----- assets and pages ----------------------------------------------------------------------


def _elements(root: Any) -> Iterable[Any]:
    yield root
    for child in list(getattr(root, "_children", {}).values()):
        yield from _elements(child)


def use_local_assets(m: folium.Map, base_url: str = "/static/vendor") -> folium.Map:
    """Make ``m`` load Leaflet and its plugins from ``base_url`` instead of CDNs.

    Rewrites the ``default_js``/``default_css`` of the map and of every plugin in it
    (on the instances, so other maps are untouched). Assets the maps never use
    (jQuery, Bootstrap, awesome-markers, icon fonts) are dropped. Raises ValueError for
    an asset with no local copy, so a new plugin cannot slip a CDN link into a page.
    """
    base = base_url.rstrip("/")
    for el in _elements(m):
        for attr in ("default_js", "default_css"):
            assets = getattr(el, attr, None)
            if not assets:
                continue
            local: list[tuple[str, str]] = []
            for name, _url in assets:
                if name in UNUSED_ASSETS:
                    continue
                if name not in LOCAL_ASSETS:
                    raise ValueError(f"no local copy of map asset {name!r} ({_url})")
                local.append((name, f"{base}/{LOCAL_ASSETS[name]}"))
            setattr(el, attr, local)
    return m


def render_page(
    m: folium.Map,
    *,
    title: str,
    before: str = "",
    after: str = "",
    local_assets: str | None = "/static/vendor",
) -> str:
    """The map as a complete HTML page with a title and HTML before/after the map."""
    if local_assets is not None:
        use_local_assets(m, local_assets)
    page = m.get_root().render()
    head = (
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        "<style>body{font-family:sans-serif} .cmm-page{padding:6px 14px}"
        ".cmm-page h1{font-size:20px;margin:6px 0} .cmm-page table{border-collapse:collapse}"
        ".cmm-page td,.cmm-page th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "</style>"
    )
    page = page.replace("<head>", "<head>\n" + head, 1)
    if before:
        page = page.replace("<body>", f'<body>\n<div class="cmm-page">{before}</div>', 1)
    if after:
        page = page.replace("</body>", f'<div class="cmm-page">{after}</div>\n</body>', 1)
    return page
