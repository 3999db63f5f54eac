"""A print (PNG/PDF) of the application's current view: its bbox and visible layers.

Drawn with the furniture of :mod:`geo.maps.printing` (frame, title, legend, scale bar,
north arrow, attribution) in EPSG:32632, so it looks like the other prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import shapely

from geo.crs import CRS84, METRIC_EPSG, epsg_uri, transformer_xy
from geo.errors import InvalidParameter
from geo.lazy import lazy_module
from geo.maps import printing
from geo.maps.style import UNION_COLOUR, zone_colours
from geo.territory import get_territory
from geo.webapp.export import geometry

gpd = lazy_module("geopandas")  # imported when a print is drawn (geo.lazy)

#: Palette of uploaded layers, in the order the application gives it.
LAYER_PALETTE = ("#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf",
                 "#666666")  # fmt: skip
INTERVENTION_COLOUR = "#e41a1c"
TERRITORY = ("comuni", "zone-omogenee", "unioni")
MAX_TITLE = 120


def clean_title(title: str) -> str:
    """A title as text: no control characters, no mathtext (``$`` is literal), bounded."""
    text = "".join(c for c in (title or "") if c.isprintable())[:MAX_TITLE].strip()
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _metric_box(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    tx = transformer_xy(CRS84, epsg_uri(METRIC_EPSG))
    xs, ys = tx.transform(
        [bbox[0], bbox[2], bbox[0], bbox[2]], [bbox[1], bbox[1], bbox[3], bbox[3]]
    )
    return min(xs), min(ys), max(xs), max(ys)


def _frame_of(features: Sequence[Mapping[str, Any]]) -> gpd.GeoDataFrame:
    geoms = [g for f in features if (g := geometry(f.get("geometry"))) is not None]
    return gpd.GeoDataFrame(geometry=geoms, crs="OGC:CRS84").to_crs(METRIC_EPSG)


def _draw(ax, gdf: gpd.GeoDataFrame, colour: str) -> str:
    """Draw features in their family's style; the family (polygon, line, point)."""
    kinds = set(gdf.geom_type)
    if kinds & {"Polygon", "MultiPolygon"}:
        gdf.plot(ax=ax, color=colour, alpha=0.45, edgecolor=colour, linewidth=0.8, zorder=4)
        return "polygon"
    if kinds & {"LineString", "MultiLineString"}:
        gdf.plot(ax=ax, color=colour, linewidth=1.6, zorder=5)
        return "line"
    gdf.plot(ax=ax, color=colour, markersize=18, edgecolor="#7a0019", linewidth=0.5, zorder=6)
    return "point"


def print_view(
    bbox: Sequence[float],
    layers: Sequence[str],
    overlays: Mapping[str, tuple[str, str, Sequence[Mapping[str, Any]]]],
    title: str,
    subtitle: str,
    fmt: str = "png",
) -> bytes:
    """The view ``bbox`` (CRS84) with the territory ``layers`` shown and ``overlays``
    (id → (title, colour, GeoJSON features)) drawn over it, as PNG or PDF bytes."""
    if fmt not in printing.FORMATS:
        raise InvalidParameter("fmt", "use png or pdf")
    x0, y0, x1, y1 = bbox
    if not (x0 < x1 and y0 < y1):
        raise InvalidParameter("bbox", "minx,miny,maxx,maxy with min < max")
    t = get_territory()
    colours = zone_colours(t)
    extent = _metric_box(bbox)
    view = shapely.box(*extent)
    with printing._LOCK:
        fig, ax, lax = printing._frame(clean_title(title), clean_title(subtitle))
        gdf = printing._comuni_frame(t)
        handles: list = []
        inside = gdf[gdf.intersects(view)]
        if "comuni" in layers:
            gdf.plot(ax=ax, color=[colours[z] for z in gdf["zona_id"]], alpha=0.55,
                     edgecolor="white", linewidth=0.4)  # fmt: skip
            handles += [
                printing._mpl().Patch(facecolor=colours[z], alpha=0.55, label=t.zones[z].name)
                for z in sorted(set(inside["zona_id"]))
            ]
            if len(inside) <= 40:  # names only when they can be read
                for row in inside.itertuples():
                    p = row.geometry.representative_point()
                    ax.text(p.x, p.y, row.name, fontsize=6, ha="center", va="center", zorder=7)
        else:
            gdf.boundary.plot(ax=ax, color="#999999", linewidth=0.4)
        if "zone-omogenee" in layers:
            printing._groups_frame(list(t.zones.values())).boundary.plot(
                ax=ax, color="#333333", linewidth=1.2
            )
            handles.append(printing._mpl().Line2D([], [], color="#333333", label="Zona omogenea"))
        if "unioni" in layers:
            printing._groups_frame(list(t.unions.values())).boundary.plot(
                ax=ax, color=UNION_COLOUR, linewidth=1.4, linestyle="--"
            )
            handles.append(printing._mpl().Line2D([], [], color=UNION_COLOUR, linestyle="--",
                                  label="Unione di comuni"))  # fmt: skip
        for name, colour, features in overlays.values():
            frame = _frame_of(features)
            if frame.empty:
                continue
            family = _draw(ax, frame, colour)
            label = f"{clean_title(name)} ({len(frame)})"
            if family == "polygon":
                handles.append(printing._mpl().Patch(facecolor=colour, alpha=0.45, label=label))
            elif family == "line":
                handles.append(
                    printing._mpl().Line2D([], [], color=colour, linewidth=1.6, label=label)
                )
            else:
                marker = printing._mpl().Line2D(
                    [], [], color=colour, marker="o", linestyle="", label=label
                )
                handles.append(marker)
        printing._legend(lax, handles, "Legenda")
        return printing._finish(fig, ax, extent, fmt)
