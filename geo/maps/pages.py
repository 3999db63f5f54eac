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

import numpy as np
import shapely

from geo import BOUNDARIES_ATTRIBUTION
from geo.errors import NotFound
from geo.lazy import lazy_module
from geo.maps.data import LAYER_METRIC, _family, _layer_geometries
from geo.maps.style import (
    CHOROPLETH_PALETTE,
    MAX_ZOOM,
    MIN_ZOOM,
    NO_DATA_COLOUR,
    OSM_ATTRIBUTION,
    UNION_COLOUR,
    _amount,
    _bounds,
    _class_of,
    _first,
    _fmt_int,
    category_colours,
    category_label,
    choropleth_breaks,
    light_geometry,
    safe_url,
    text,
    zone_colours,
)
from geo.settings import get_settings
from geo.territory import Comune, Territory, get_territory

folium = lazy_module("folium")  # it imports pandas: on the first map drawn (geo.lazy)
elements = lazy_module("geo.maps.elements")  # branca: on the first map drawn too


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
        attr = OSM_ATTRIBUTION if "openstreetmap" in url else "Mappa di base: " + html.escape(url)
        folium.TileLayer(tiles=url, attr=attr, name="Mappa di base", overlay=False).add_to(m)
    elements.Attribution(BOUNDARIES_ATTRIBUTION).add_to(m)
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
        name=text(name),  # the layer control shows names as HTML
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
        name=text(name),
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
    elements.Legend("Zone omogenee", items).add_to(m)
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
    elements.Legend(c.name, items).add_to(m)
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
    elements.Legend(zone.name, items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def _category(props: Mapping[str, Any], colour_by: str) -> str:
    """The programme or mission of an intervention, as a label."""
    if colour_by == "mission":
        v = _first(props, "mission", "missions", "mission_code", "missions_codes")
    else:
        v = _first(props, "programme", "programme_name", "program")
    if isinstance(v, list | tuple):
        v = v[0] if v else None
    return str(v) if v not in (None, "") else "—"


def intervention_popup(props: Mapping[str, Any]) -> str:
    """HTML of an intervention's popup: title, amount, status, source link."""
    title = text(_first(props, "title", "name", "titolo") or "Intervento")
    status = text(_first(props, "status", "stato") or "—")
    src = _first(props, "source_url", "source", "url", "link")
    src_html = "—"
    if src:
        url = safe_url(src)  # only http(s) becomes a link: never javascript: or data:
        src_html = (
            f'<a href="{text(url)}" target="_blank" rel="noopener noreferrer">fonte</a>'
            if url
            else text(src)
        )
    return f"<b>{title}</b><br>Importo: {_amount(props)}<br>Stato: {status}<br>Fonte: {src_html}"


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
    cluster = MarkerCluster(name=text(name), options={"maxClusterRadius": 40})
    cluster.add_to(m)
    if pts:
        layer = folium.GeoJson(
            {"type": "FeatureCollection", "features": pts},
            name=text(name),
            marker=folium.CircleMarker(radius=7, fill=True, fill_opacity=0.9, weight=1),
            style_function=lambda f: {
                "fillColor": colours[f["properties"]["category"]],
                "color": "#222222",
                "className": "cmm-intervention",
            },
            control=False,
        ).add_to(cluster)
        elements.BindFeaturePopups(layer).add_to(m)
    if legend:
        title = "Missione" if colour_by == "mission" else "Programma"
        items = [(c, category_label(lab, colour_by), "dot") for lab, c in colours.items()]
        elements.Legend(f"Interventi per {title.lower()}", items).add_to(m)
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
            aliases=["Comune", "Zona omogenea", text(metric_label)],
            sticky=True,
        ),
    ).add_to(m)
    if overlay is not None and overlay.get("features"):
        folium.GeoJson(
            overlay,
            name=text(overlay_name),
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
    elements.Legend(metric_label, items).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def layer_map(layer_id: str, *, tiles: str | None = None) -> tuple[folium.Map, str]:
    """A green layer over the comuni shaded by its per-comune metric; (map, title).

    Polygons: share of the comune covered (%); lines: km inside it; points: count.
    Stored layers use :func:`geo.layers.metrics`; other collections are measured here
    with :func:`geo.layers.overlay.layer_metrics` (both in EPSG:32632).
    """
    from geo.layers.overlay import layer_metrics
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
