"""A collection's features as a downloadable file: GeoJSON, CSV or GeoPackage.

What the user downloads is exactly what the API's query answered (same filters), in
CRS84 / EPSG:4326. List values (comuni, missions…) become ``; ``-joined text in CSV and
GeoPackage; CSV carries the geometry as WKT. Text cells that a spreadsheet would run as a
formula (``=``, ``+``, ``-``, ``@`` first) are prefixed with ``'`` in CSV.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

FORMATS = {
    "geojson": ("application/geo+json", "geojson"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
}
#: Column names a GeoPackage keeps for itself.
_RESERVED = {"fid", "geometry", "geom", "wkt"}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_name(text: str) -> str:
    """A file name stem from a collection id (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:80] or "download"


def geometry(value: Any) -> BaseGeometry | None:
    """A feature's geometry as shapely (providers hold shapely, GeoJSON holds dicts)."""
    if value is None:
        return None
    return value if isinstance(value, BaseGeometry) else shape(value)


def _geojson(value: Any) -> dict[str, Any] | None:
    g = geometry(value)
    if g is None:
        return None
    return mapping(shapely.transform(g, lambda xy: np.round(xy, 6)))


def _flat(value: Any) -> Any:
    """A cell: lists joined with ``; ``, objects as JSON text, scalars as they are."""
    if isinstance(value, list | tuple):
        return "; ".join("" if v is None else str(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return value


def _columns(features: Sequence[dict[str, Any]]) -> list[str]:
    """Property names in order of first appearance."""
    seen: dict[str, None] = {}
    for f in features:
        for k in f.get("properties") or {}:
            seen.setdefault(k, None)
    return list(seen)


def _renamed(columns: list[str]) -> dict[str, str]:
    """Column → output name: reserved names and case-insensitive repeats get a suffix."""
    out: dict[str, str] = {}
    taken: set[str] = {"id", *_RESERVED}
    for c in columns:
        name = c if c.lower() not in taken and c != "id" else f"{c}_"
        while name.lower() in taken:
            name += "_"
        if c == "id":
            continue
        taken.add(name.lower())
        out[c] = name
    return out


def _cell_csv(value: Any) -> Any:
    value = _flat(value)
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_geojson(features: Sequence[dict[str, Any]], name: str) -> bytes:
    """A FeatureCollection, properties as served."""
    doc = {
        "type": "FeatureCollection",
        "name": name,
        "features": [
            {"type": "Feature", "id": f.get("id"), "properties": f.get("properties") or {},
             "geometry": _geojson(f.get("geometry"))}
            for f in features
        ],
    }  # fmt: skip
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def to_csv(features: Sequence[dict[str, Any]]) -> bytes:
    """One row per feature: id, the properties, the geometry as WKT."""
    cols = _columns(features)
    names = _renamed(cols)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", *names.values(), "wkt"])
    for f in features:
        p = f.get("properties") or {}
        g = geometry(f.get("geometry"))
        wkt = shapely.to_wkt(g, rounding_precision=6) if g is not None else ""
        w.writerow([_cell_csv(f.get("id")), *(_cell_csv(p.get(c)) for c in names), wkt])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: spreadsheets read UTF-8


def to_gpkg(features: Sequence[dict[str, Any]], name: str) -> bytes:
    """A GeoPackage of one layer ``name`` in EPSG:4326, written by pyogrio."""
    import geopandas as gpd
    import pandas as pd

    cols = _columns(features)
    names = _renamed(cols)
    data: dict[str, list[Any]] = {"id": [str(f.get("id")) for f in features]}
    for c, out in names.items():
        data[out] = [_flat((f.get("properties") or {}).get(c)) for f in features]
    frame = pd.DataFrame(data)
    for col in frame.columns:  # mixed cells (numbers and text) are written as text
        kinds = {type(v) for v in frame[col] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[col] = [None if v is None else str(v) for v in frame[col]]
    geoms = [geometry(f.get("geometry")) for f in features]
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")
    with tempfile.TemporaryDirectory(prefix="cmm-geo-export-") as tmp:
        path = Path(tmp) / "export.gpkg"
        gdf.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
        return path.read_bytes()


def encode(features: Sequence[dict[str, Any]], fmt: str, name: str) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of the features in ``fmt`` (geojson, csv, gpkg)."""
    media, ext = FORMATS[fmt]
    stem = safe_name(name)
    if fmt == "geojson":
        body = to_geojson(features, stem)
    elif fmt == "csv":
        body = to_csv(features)
    else:
        body = to_gpkg(features, stem)
    return body, media, f"{stem}.{ext}"
