"""Checks of an uploaded layer's geometries and CRS: one family, repairs, reprojection.

Each step takes the geometries (with their 1-based feature numbers), records what it did
in the upload's ``report`` and refuses what cannot be fixed with a 4xx naming the file and
the features:

1. :func:`drop_empty` — missing/empty geometries are dropped and counted;
2. :func:`single_family` — polygons, lines or points, never mixed (MultiX counts as X);
3. :func:`repair_invalid` — ``shapely.make_valid`` keeping the layer's family;
4. :func:`source_crs` — the override, else the file's, else refused with a suggestion
   read off the coordinate ranges (Gauss-Boaga, UTM 32N, degrees…);
5. :func:`reproject` — to CRS84 and to EPSG:32632, refusing data outside northern Italy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from geo.crs import METRIC_EPSG, parse_crs, to_pyproj
from geo.errors import InvalidParameter, ValidationFailed

#: Geometry families: a layer holds one of them.
POLYGON, LINE, POINT = "polygon", "line", "point"
_FAMILY = {
    "Polygon": POLYGON,
    "MultiPolygon": POLYGON,
    "LineString": LINE,
    "MultiLineString": LINE,
    "LinearRing": LINE,
    "Point": POINT,
    "MultiPoint": POINT,
}
_MULTI = {POLYGON: shapely.MultiPolygon, LINE: shapely.MultiLineString, POINT: shapely.MultiPoint}

#: Where reprojected data must fall (lon/lat): northern Italy and its surroundings.
PLAUSIBLE_BOUNDS = (5.0, 42.0, 16.0, 48.5)

#: Semi-major axes of the Earth's ellipsoids and spheres (metres): anything else is not Earth.
EARTH_AXIS_M = (6.35e6, 6.40e6)

#: Feature numbers listed in messages and reports, at most.
MAX_LISTED = 20


# ----- geometry steps -----------------------------------------------------------------------


def drop_empty(
    geoms: np.ndarray, props: list[dict[str, Any]], report: dict[str, Any], filename: str
) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray]:
    """Drop missing/empty geometries (counted); 2D geometries, properties, feature numbers."""
    missing = np.array([g is None for g in geoms], dtype=bool)
    empty = missing.copy()
    empty[~missing] = shapely.is_empty(geoms[~missing].astype(object))
    report["empty_dropped"] = int(empty.sum())
    report["empty_features"] = _listed(np.flatnonzero(empty) + 1)
    keep = np.flatnonzero(~empty)
    if keep.size == 0:
        raise ValidationFailed(
            f"{filename}: all {len(geoms)} features have missing or empty geometries",
            parameter="file",
        )
    return shapely.force_2d(geoms[keep].astype(object)), [props[i] for i in keep], keep + 1


def repair_invalid(
    geoms: np.ndarray,
    numbers: np.ndarray,
    props: list[dict[str, Any]],
    family: str,
    report: dict[str, Any],
    filename: str,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Repair invalid geometries (counted, with reasons); drop those that collapse."""
    invalid = ~shapely.is_valid(geoms)
    report["repaired"] = int(invalid.sum())
    if not invalid.any():
        return geoms, numbers, props
    reasons = shapely.is_valid_reason(geoms[invalid])
    report["repaired_features"] = [
        {"feature": int(f), "reason": str(r)}
        for f, r in zip(numbers[invalid][:MAX_LISTED], reasons[:MAX_LISTED], strict=False)
    ]
    geoms[invalid] = _repair(geoms[invalid], family)
    collapsed = shapely.is_empty(geoms)
    if collapsed.any():
        report["collapsed_dropped"] = int(collapsed.sum())
        report["collapsed_features"] = _listed(numbers[collapsed])
        geoms, numbers = geoms[~collapsed], numbers[~collapsed]
        props = [p for p, c in zip(props, collapsed, strict=True) if not c]
        if len(geoms) == 0:
            raise ValidationFailed(
                f"{filename}: every geometry collapses when repaired", parameter="file"
            )
    return geoms, numbers, props


def single_family(geoms: np.ndarray, numbers: np.ndarray, filename: str) -> tuple[str, np.ndarray]:
    """The layer's one geometry family; ValidationFailed listing features when mixed."""
    types = shapely.get_type_id(geoms)
    fam = np.empty(len(geoms), dtype=object)
    names = {0: POINT, 1: LINE, 2: LINE, 3: POLYGON, 4: POINT, 5: LINE, 6: POLYGON}
    for i, t in enumerate(types):
        if t == 7:  # GeometryCollection: one family inside is fine
            fams = {_FAMILY.get(p.geom_type) for p in shapely.get_parts(geoms[i])}
            fam[i] = fams.pop() if len(fams) == 1 else "mixed collection"
        else:
            fam[i] = names.get(int(t), f"unsupported type {geoms[i].geom_type}")
    kinds = sorted(set(fam))
    if len(kinds) > 1 or kinds[0] not in (POLYGON, LINE, POINT):
        details = []
        for k in kinds:
            where = numbers[fam == k]
            details.append(
                {"geometry_type": k, "count": int(where.size), "features": _listed(where)}
            )
        summary = "; ".join(
            f"{d['count']} {d['geometry_type']}"
            + ("s" if d["geometry_type"] in (POLYGON, LINE, POINT) else "")
            + f" (features {', '.join(map(str, d['features']))}"
            + (", …" if d["count"] > MAX_LISTED else "")
            + ")"
            for d in details
        )
        raise ValidationFailed(
            f"{filename}: mixed geometry types: {summary}. A layer holds one type "
            "(polygons, lines or points; MultiX counts as X): split the file by type and "
            "upload each part as its own layer",
            details=details,
            parameter="file",
        )
    family = kinds[0]
    collections = np.flatnonzero(types == 7)
    for i in collections:
        geoms[i] = _multi(list(shapely.get_parts(geoms[i])), family)
    return family, geoms


def _repair(geoms: np.ndarray, family: str) -> np.ndarray:
    """make_valid, keeping only the parts of the layer's family."""
    if family == POLYGON:
        fixed = shapely.make_valid(geoms, method="structure", keep_collapsed=False)
    else:
        fixed = shapely.make_valid(geoms)
    out = np.empty(len(fixed), dtype=object)
    for i, g in enumerate(fixed):
        fam = _FAMILY.get(g.geom_type)
        if fam == family:
            out[i] = g
        else:
            parts = [p for p in shapely.get_parts(g) if _FAMILY.get(p.geom_type) == family]
            out[i] = _multi(parts, family)
    return out


def _multi(parts: list[Any], family: str) -> Any:
    flat = []
    for p in parts:
        flat.extend(shapely.get_parts(p) if p.geom_type.startswith("Multi") else [p])
    return _MULTI[family](flat) if flat else shapely.from_wkt("GEOMETRYCOLLECTION EMPTY")


def _listed(numbers: Iterable[int]) -> list[int]:
    return [int(n) for n in list(numbers)[:MAX_LISTED]]


# ----- CRS steps ----------------------------------------------------------------------------


def source_crs(
    file_crs_text: str | None,
    override: CRS | None,
    geoms: np.ndarray,
    fmt: str,
    report: dict[str, Any],
    filename: str,
) -> CRS:
    """The CRS to read the coordinates in: override, else the file's, else refuse."""
    file_crs = _file_crs(file_crs_text)
    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    if override is not None:
        src, crs_from = override, "override"
    elif file_crs is not None:
        src, crs_from = file_crs, "file"
    else:
        raise ValidationFailed(
            f"{filename}: the file has no CRS"
            + (" (no .prj in the zip)" if fmt == "shapefile" else "")
            + f"; its coordinates span {_describe(bounds)}: "
            + _suggestion_text(suggest_crs(bounds)),
            parameter="crs",
            suggested_crs=suggest_crs(bounds),
        )
    _on_earth(src, crs_from, filename)
    report["source_crs"] = _crs_label(src)
    if fmt == "geojson" and report["source_crs"] == "EPSG:4326":
        report["source_crs"] = "CRS84"  # GeoJSON coordinates are lon/lat (RFC 7946)
    report["crs_from"] = crs_from
    if file_crs is not None:
        report["file_crs"] = _crs_label(file_crs)
    return src


def _on_earth(src: CRS, crs_from: str, filename: str) -> None:
    """Refuse a CRS of another body (a Mars .prj): PROJ cannot bring it to the Earth."""
    ellipsoid = src.ellipsoid
    axis = ellipsoid.semi_major_metre if ellipsoid is not None else None
    if axis is None or not EARTH_AXIS_M[0] <= axis <= EARTH_AXIS_M[1]:
        size = f"semi-major axis {axis:,.0f} m" if axis else "no ellipsoid"
        raise ValidationFailed(
            f"{filename}: the CRS of the {crs_from} ({src.name}) is not an Earth CRS ({size}); "
            "give the layer's real CRS with crs=EPSG:…",
            parameter="crs",
        )


def reproject(
    geoms: np.ndarray, src: CRS, family: str, report: dict[str, Any], filename: str
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """CRS84 and EPSG:32632 geometries and the CRS84 bbox; refuses data far from Italy."""
    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    try:
        lonlat = _transform(geoms, src, CRS.from_user_input("OGC:CRS84"))
    except ProjError as exc:
        raise ValidationFailed(
            f"{filename}: cannot reproject from {report['source_crs']} (from the "
            f"{report['crs_from']}): {exc}",
            parameter="crs",
        ) from None
    ll_bounds = tuple(float(v) for v in shapely.total_bounds(lonlat))
    if not all(math.isfinite(v) for v in ll_bounds) or not _plausible(ll_bounds):
        suggested = [c for c in suggest_crs(bounds) if c != report["source_crs"]]
        raise ValidationFailed(
            f"{filename}: in {report['source_crs']} (from the {report['crs_from']}) the "
            f"coordinates ({_describe(bounds)}) do not fall in northern Italy: "
            + _suggestion_text(suggested),
            parameter="crs",
            suggested_crs=suggested,
        )
    metric = _transform(geoms, src, CRS.from_epsg(METRIC_EPSG))
    # Reprojection can nudge a valid ring into a self-touch: fix silently in both.
    for arr in (lonlat, metric):
        bad = ~shapely.is_valid(arr)
        if bad.any():
            arr[bad] = _repair(arr[bad], family)
    return lonlat, metric, ll_bounds  # type: ignore[return-value]


def parse_override(crs: str | None) -> CRS | None:
    """The ``crs`` override as a pyproj CRS (any EPSG code pyproj knows), or None."""
    if crs is None or not crs.strip():
        return None
    try:
        return to_pyproj(parse_crs(crs))
    except InvalidParameter:
        pass
    text = crs.strip()
    m = re.fullmatch(r"(?i)(?:EPSG:{1,2})?(\d{4,6})", text)
    try:
        return CRS.from_epsg(int(m.group(1))) if m else CRS.from_user_input(text)
    except (CRSError, ValueError):
        raise InvalidParameter(
            "crs", f"unknown CRS {crs!r}; give an EPSG code such as EPSG:32632 or EPSG:3003"
        ) from None


def _crs_label(crs: CRS) -> str:
    """``CRS84``, ``EPSG:n`` or the CRS's name."""
    if crs.equals(CRS.from_user_input("OGC:CRS84")):
        return "CRS84"
    code = crs.to_epsg(min_confidence=70)
    if code == 4326 and crs.axis_info and crs.axis_info[0].direction.lower() == "east":
        return "CRS84"
    return f"EPSG:{code}" if code else crs.name


def suggest_crs(bounds: tuple[float, float, float, float]) -> list[str]:
    """Likely CRS of coordinates from their ranges (Lombardy), best first; [] when unsure."""
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        return []

    def inside(lo: float, hi: float, a: float, b: float) -> bool:
        return lo <= a and b <= hi

    if inside(-180, 180, minx, maxx) and inside(-90, 90, miny, maxy):
        if inside(35, 48, minx, maxx) and inside(5, 20, miny, maxy):
            return ["EPSG:4326"]  # latitude first
        return ["CRS84"]
    if inside(4.6e6, 5.4e6, miny, maxy):
        if inside(1.2e6, 1.9e6, minx, maxx):
            return ["EPSG:3003"]
        if inside(2.2e6, 2.9e6, minx, maxx):
            return ["EPSG:3004"]
        if inside(1.5e5, 9.0e5, minx, maxx):
            return ["EPSG:32632", "EPSG:7791"]
    if inside(5.2e6, 6.2e6, miny, maxy) and inside(5.0e5, 1.8e6, minx, maxx):
        return ["EPSG:3857"]
    return []


def _describe(bounds: tuple[float, float, float, float]) -> str:
    minx, miny, maxx, maxy = bounds
    return f"x {minx:,.6g} to {maxx:,.6g}, y {miny:,.6g} to {maxy:,.6g}"


_SUGGESTION_NAMES = {
    "CRS84": "longitude/latitude in degrees (CRS84)",
    "EPSG:4326": "latitude/longitude in degrees (EPSG:4326, latitude first)",
    "EPSG:3003": "Gauss-Boaga, Monte Mario / Italy zone 1 (EPSG:3003)",
    "EPSG:3004": "Gauss-Boaga, Monte Mario / Italy zone 2 (EPSG:3004)",
    "EPSG:32632": "UTM zone 32N (EPSG:32632 WGS 84, or EPSG:7791 RDN2008)",
    "EPSG:3857": "Web Mercator (EPSG:3857)",
}


def _suggestion_text(suggested: list[str]) -> str:
    if not suggested:
        return "the coordinate ranges match no CRS used in Lombardy; give it with crs=EPSG:…"
    return f"they look like {_SUGGESTION_NAMES[suggested[0]]}; upload again with crs={suggested[0]}"


def _plausible(b: tuple[float, ...]) -> bool:
    minx, miny, maxx, maxy = PLAUSIBLE_BOUNDS
    return b[0] >= minx and b[2] <= maxx and b[1] >= miny and b[3] <= maxy


def _file_crs(value: str | None) -> CRS | None:
    if not value:
        return None
    try:
        return CRS.from_user_input(value)
    except CRSError:
        return None


def _transform(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Reproject an array of 2D geometries (x = east, y = north in and out)."""
    if src.equals(dst):
        return geoms.copy()
    tx = Transformer.from_crs(src, dst, always_xy=True)

    def _f(xy: np.ndarray) -> np.ndarray:
        x, y = tx.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _f)
