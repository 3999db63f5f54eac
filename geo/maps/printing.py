"""Printable maps (PNG, PDF) of the territory, a zona omogenea and a comune.

Drawn with geopandas + matplotlib in EPSG:32632 (metres, so the scale bar is true),
without pyplot (a standalone :class:`matplotlib.figure.Figure` on the Agg canvas), so it
is safe in a server. Every print has a title, a legend, a scale bar, a north arrow and
the boundaries' attribution.
"""

from __future__ import annotations

import io
import math
import textwrap
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import shapely

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is imported by the functions that draw (a print is rare; the import costs
# ~0.4 s and ~40 MB at every worker's start otherwise).

from geo import BOUNDARIES_ATTRIBUTION
from geo.crs import METRIC_EPSG
from geo.errors import NotFound
from geo.lazy import lazy_module
from geo.maps.style import UNION_COLOUR, _fmt_int, zone_colours
from geo.territory import Territory, get_territory, to_metric

gpd = lazy_module("geopandas")  # imported when a print is drawn (geo.lazy)

#: Size of a PNG print in pixels (width, height) and its resolution.
PNG_SIZE = (1600, 1120)
DPI = 160
FORMATS = {"png": "image/png", "pdf": "application/pdf"}
SELECTED_COLOUR = "#c2185b"
_LOCK = threading.Lock()


def _nice_length(span_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^n m) near a fifth of ``span_m``."""
    target = span_m / 5
    exp = 10 ** math.floor(math.log10(target))
    for f in (5, 2, 1):
        if f * exp <= target:
            return f * exp
    return exp


def _scale_bar(ax, extent: tuple[float, float, float, float]) -> None:
    """Two-segment black/white scale bar at the lower left, labelled in km or m."""
    x0, y0, x1, y1 = extent
    length = _nice_length(x1 - x0)
    h = (y1 - y0) * 0.012
    bx, by = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.05
    for i, colour in enumerate(("black", "white")):
        ax.add_patch(
            _mpl().Rectangle(
                (bx + i * length / 2, by), length / 2, h,
                facecolor=colour, edgecolor="black", linewidth=0.8, zorder=10,
            )
        )  # fmt: skip
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    for x, text in ((bx, "0"), (bx + length, label)):
        ax.text(x, by + h * 1.6, text, ha="center", va="bottom", fontsize=8, zorder=10)


def _north_arrow(ax) -> None:
    ax.annotate(
        "N", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction",
        ha="center", va="center", fontsize=12, fontweight="bold",
        arrowprops={"facecolor": "black", "width": 4, "headwidth": 11, "headlength": 10},
        zorder=10,
    )  # fmt: skip


def _mpl() -> SimpleNamespace:
    """matplotlib's Figure, Line2D, Patch and Rectangle, imported on first use."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    return SimpleNamespace(Figure=Figure, Line2D=Line2D, Patch=Patch, Rectangle=Rectangle)


def _frame(title: str, subtitle: str) -> tuple[Figure, object, object]:
    """Figure with the map axes on the left, a legend panel on the right, title, attribution."""
    fig = _mpl().Figure(figsize=(PNG_SIZE[0] / DPI, PNG_SIZE[1] / DPI), dpi=DPI)
    fig.patch.set_facecolor("white")
    fig.text(0.02, 0.965, title, fontsize=16, fontweight="bold", va="top")
    fig.text(0.02, 0.92, subtitle, fontsize=10, va="top", color="#444444")
    fig.text(
        0.02, 0.015,
        f"{BOUNDARIES_ATTRIBUTION}. Proiezione WGS 84 / UTM 32N (EPSG:{METRIC_EPSG}). "
        "Web GIS della Città metropolitana di Milano.",
        fontsize=7, color="#444444",
    )  # fmt: skip
    ax = fig.add_axes((0.02, 0.05, 0.68, 0.85))
    ax.set_axis_off()
    lax = fig.add_axes((0.72, 0.05, 0.26, 0.85))
    lax.set_axis_off()
    return fig, ax, lax


def _finish(fig: Figure, ax, extent: tuple[float, float, float, float], fmt: str) -> bytes:
    x0, y0, x1, y1 = extent
    # Pad and match the axes' aspect so the map is not distorted.
    bbox = ax.get_position()
    aspect = (bbox.width * PNG_SIZE[0]) / (bbox.height * PNG_SIZE[1])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = (x1 - x0) * 1.08, (y1 - y0) * 1.08
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    ext = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    ax.set_xlim(ext[0], ext[2])
    ax.set_ylim(ext[1], ext[3])
    ax.set_aspect("equal")
    _scale_bar(ax, ext)
    _north_arrow(ax)
    buf = io.BytesIO()
    meta = {"Title": fig.texts[0].get_text()} if fmt == "pdf" else None
    fig.savefig(buf, format=fmt, dpi=DPI, facecolor="white", metadata=meta)
    return buf.getvalue()


def _comuni_frame(t: Territory) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "istat_code": t.codes,
            "name": [c.name for c in t.comuni_list],
            "zona_id": [c.zona_id for c in t.comuni_list],
        },
        geometry=list(t.metric_geometries),
        crs=METRIC_EPSG,
    )


def _groups_frame(groups: Sequence) -> gpd.GeoSeries:
    return gpd.GeoSeries(list(to_metric(np.array([g.geometry for g in groups]))), crs=METRIC_EPSG)


def _legend(lax, handles: list, title: str) -> None:
    for h in handles:
        h.set_label(textwrap.fill(h.get_label(), 34))
    lax.legend(handles=handles, title=title, loc="upper left", frameon=False, fontsize=9,
               title_fontsize=10, alignment="left")  # fmt: skip


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unsupported print format {fmt!r}; use png or pdf")


def print_territory(fmt: str = "png") -> bytes:
    """The 133 comuni coloured by zona omogenea, unions outlined."""
    _check_format(fmt)
    t = get_territory()
    colours = zone_colours(t)
    with _LOCK:
        fig, ax, lax = _frame(
            "Città metropolitana di Milano",
            f"{len(t.comuni_list)} comuni per zona omogenea e unioni di comuni",
        )
        gdf = _comuni_frame(t)
        gdf.plot(ax=ax, color=[colours[z] for z in gdf["zona_id"]], edgecolor="white",
                 linewidth=0.4)  # fmt: skip
        unions = list(t.unions.values())
        _groups_frame(unions).boundary.plot(ax=ax, color=UNION_COLOUR, linewidth=1.4,
                                            linestyle="--")  # fmt: skip
        _groups_frame(list(t.zones.values())).boundary.plot(ax=ax, color="#333333", linewidth=0.8)
        handles: list = [
            _mpl().Patch(
                facecolor=colours[z.id], edgecolor="white", label=f"{z.name} ({len(z.comuni)})"
            )
            for z in sorted(t.zones.values(), key=lambda z: z.id)
        ]
        handles.append(
            _mpl().Line2D([], [], color=UNION_COLOUR, linestyle="--", label="Unione di comuni")
        )
        _legend(lax, handles, "Zone omogenee (n. comuni)")
        return _finish(fig, ax, tuple(gdf.total_bounds), fmt)


def print_zone(zona_id: str, fmt: str = "png") -> bytes:
    """A zona omogenea: its comuni named, the comuni around it in grey, unions outlined."""
    _check_format(fmt)
    t = get_territory()
    if zona_id not in t.zones:
        raise NotFound(
            f"no zona omogenea {zona_id!r}; known: {', '.join(t.zones)}", parameter="zona_id"
        )
    zone = t.zones[zona_id]
    colour = zone_colours(t)[zona_id]
    with _LOCK:
        fig, ax, lax = _frame(
            f"Zona omogenea {zone.name}",
            f"{len(zone.comuni)} comuni · {_fmt_int(zone.population)} abitanti · "
            + f"{zone.area_km2:.1f} km²".replace(".", ","),
        )
        gdf = _comuni_frame(t)
        inside = gdf["zona_id"] == zona_id
        gdf[~inside].plot(ax=ax, color="#dddddd", edgecolor="white", linewidth=0.4)
        gdf[inside].plot(ax=ax, color=colour, edgecolor="white", linewidth=0.6)
        unions = [u for u in t.unions.values() if zona_id in u.zone]
        if unions:
            _groups_frame(unions).boundary.plot(ax=ax, color=UNION_COLOUR, linewidth=1.4,
                                                linestyle="--")  # fmt: skip
        fs = 7 if len(zone.comuni) > 15 else 8
        for row in gdf[inside].itertuples():
            p = row.geometry.representative_point()
            ax.text(p.x, p.y, row.name, fontsize=fs, ha="center", va="center", zorder=5)
        handles: list = [
            _mpl().Patch(facecolor=colour, label=f"{zone.name} ({len(zone.comuni)} comuni)"),
            _mpl().Patch(facecolor="#dddddd", label="Altri comuni"),
        ]
        handles += [_mpl().Line2D([], [], color=UNION_COLOUR, linestyle="--", label=u.name)
                    for u in unions]  # fmt: skip
        _legend(lax, handles, "Legenda")
        return _finish(fig, ax, tuple(gdf[inside].total_bounds), fmt)


def print_comune(code: str, fmt: str = "png") -> bytes:
    """A comune highlighted, its neighbours named, its zone and union outlined."""
    _check_format(fmt)
    t = get_territory()
    if code not in t.comuni:
        raise NotFound(f"no comune with ISTAT code {code}", parameter="istat_code")
    c = t.comuni[code]
    zone = t.zones[c.zona_id]
    union = t.unione_of(c)
    colours = zone_colours(t)
    neighbours = set(t.neighbours[code])
    with _LOCK:
        fig, ax, lax = _frame(
            f"Comune di {c.name}",
            f"ISTAT {c.istat_code} · zona omogenea {zone.name}"
            + (f" · {union.name}" if union else "")
            + f" · {_fmt_int(c.population)} abitanti",
        )
        gdf = _comuni_frame(t)
        is_nb = gdf["istat_code"].isin(neighbours)
        is_c = gdf["istat_code"] == code
        gdf[~is_nb & ~is_c].plot(ax=ax, color="#eeeeee", edgecolor="white", linewidth=0.4)
        nb = gdf[is_nb]
        nb.plot(ax=ax, color=[colours[z] for z in nb["zona_id"]], alpha=0.45, edgecolor="white",
                linewidth=0.6)  # fmt: skip
        gdf[is_c].plot(ax=ax, color=SELECTED_COLOUR, alpha=0.8, edgecolor="#880e4f",
                       linewidth=1.5)  # fmt: skip
        _groups_frame([zone]).boundary.plot(ax=ax, color="#333333", linewidth=1.2)
        if union is not None:
            _groups_frame([union]).boundary.plot(ax=ax, color=UNION_COLOUR, linewidth=1.4,
                                                 linestyle="--")  # fmt: skip
        for row in gdf[is_nb | is_c].itertuples():
            p = row.geometry.representative_point()
            ax.text(p.x, p.y, row.name, fontsize=9 if row.istat_code == code else 7,
                    fontweight="bold" if row.istat_code == code else "normal",
                    ha="center", va="center", zorder=5)  # fmt: skip
        handles: list = [
            _mpl().Patch(facecolor=SELECTED_COLOUR, label=c.name),
            _mpl().Patch(facecolor=colours[zone.id], alpha=0.45,
                  label=f"Comuni confinanti ({len(neighbours)})"),
            _mpl().Line2D([], [], color="#333333", label=f"Zona omogenea {zone.name}"),
        ]  # fmt: skip
        if union is not None:
            handles.append(
                _mpl().Line2D([], [], color=UNION_COLOUR, linestyle="--", label=union.name)
            )
        _legend(lax, handles, "Legenda")
        extent = shapely.total_bounds(np.array(list(gdf[is_nb | is_c].geometry)))
        return _finish(fig, ax, tuple(extent), fmt)
