"""How the maps look: palettes, colours per zone and category, number formats, legend.

Shared by the Folium pages (:mod:`.pages`) and the prints (:mod:`.printing`), so a zone
has one colour everywhere.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo.lazy import lazy_module
from geo.territory import Territory, get_territory

folium = lazy_module("folium")  # it imports pandas: on the first map drawn (geo.lazy)

#: Map furniture (branca elements, :mod:`.elements`): imported on the first map drawn.
_ELEMENTS = ("Attribution", "BindFeaturePopups", "Legend")


def __getattr__(name: str) -> Any:
    """``Legend``, ``Attribution``, ``BindFeaturePopups``: from :mod:`.elements`, loaded
    (with branca) when first asked for, not when the service starts."""
    if name in _ELEMENTS:
        from geo.maps import elements

        return getattr(elements, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def light_geometry(geom: BaseGeometry, decimals: int = COORD_DECIMALS) -> dict[str, Any]:
    """GeoJSON geometry with coordinates rounded to ``decimals``."""
    rounded = shapely.transform(geom, lambda xy: np.round(xy, decimals))
    return mapping(rounded)


def _bounds(geoms: Iterable[BaseGeometry]) -> list[list[float]]:
    """Leaflet bounds [[south, west], [north, east]] of geometries."""
    minx, miny, maxx, maxy = shapely.total_bounds(np.array(list(geoms), dtype=object))
    return [[float(miny), float(minx)], [float(maxy), float(maxx)]]


def text(value: Any) -> str:
    """``value`` as HTML text: Leaflet shows layer names, tooltips and popups as HTML."""
    return html.escape(str(value))


def safe_url(value: Any) -> str | None:
    """``value`` when it is an absolute http(s) URL, else None (no ``javascript:`` links)."""
    s = str(value or "").strip()
    scheme, sep, rest = s.partition("://")
    if sep and scheme.lower() in ("http", "https") and rest and not any(c in s for c in "\n\r\t"):
        return s
    return None


def _fmt_int(n: int | float) -> str:
    """Italian thousands separator: 1.371.498."""
    return f"{round(n):,}".replace(",", ".")


def _amount(props: Mapping[str, Any]) -> str:
    v = _first(props, "amount_eur", "amount", "importo", "cost_eur", "funding_eur")
    if v is None:
        return "—"
    try:
        return "€ " + _fmt_int(float(v))
    except (TypeError, ValueError):
        return html.escape(str(v))


def zone_colours(t: Territory | None = None) -> dict[str, str]:
    """Colour of each zona omogenea, by zone id (stable: zone ids in sorted order)."""
    t = t or get_territory()
    return {zid: ZONE_PALETTE[i % len(ZONE_PALETTE)] for i, zid in enumerate(sorted(t.zones))}


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


def _first(props: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = props.get(n)
        if v not in (None, "", []):
            return v
    return None
