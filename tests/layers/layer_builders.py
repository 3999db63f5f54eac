"""Build test layers around real comuni and write them as real files (SHP zip, GPKG, GeoJSON).

Geometries are built in EPSG:32632 from the committed comuni, then written with pyogrio
(via geopandas) in any CRS; tests compare what the service measures with shapely on these
original metric geometries.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from geo.territory import get_territory

MILANO, RHO, PERO, LEGNANO = "015146", "015182", "015170", "015118"

#: CRSs Lombardy data comes in, as pyproj inputs, with a short label.
CRSS = {"32632": "EPSG:32632", "3003": "EPSG:3003", "7791": "EPSG:7791", "crs84": "OGC:CRS84"}
FORMATS = ("shpzip", "gpkg", "geojson")


def metric(code: str):
    """A comune's EPSG:32632 geometry."""
    t = get_territory()
    return t.metric_geometries[list(t.codes).index(code)]


def polygons() -> list:
    """Three polygons: two overlapping squares across the Rho/Pero border, one in Milano."""
    border = shapely.intersection(metric(RHO).boundary, metric(PERO).boundary)
    p = shapely.get_parts(border)[0].interpolate(0.5, normalized=True)
    a = shapely.box(p.x - 1500, p.y - 1500, p.x + 1500, p.y + 1500)
    b = shapely.box(p.x - 500, p.y - 2500, p.x + 2500, p.y + 500)
    c = metric(MILANO).centroid.buffer(2000)
    return [a, b, c]


def lines() -> list:
    """Two lines crossing comuni: Legnano → Rho → Milano, and a line inside Milano."""
    pts = [metric(c).point_on_surface() for c in (LEGNANO, RHO, MILANO)]
    m = metric(MILANO).centroid
    return [
        shapely.LineString([(q.x, q.y) for q in pts]),
        shapely.LineString([(m.x - 3000, m.y), (m.x + 3000, m.y + 1000)]),
    ]


def points() -> list:
    """Two points in Rho, one in Milano, a MultiPoint of two in Legnano."""
    r = metric(RHO).point_on_surface()
    m = metric(MILANO).point_on_surface()
    lg = metric(LEGNANO).point_on_surface()
    return [
        r,
        shapely.Point(r.x + 1, r.y + 1),
        m,
        shapely.MultiPoint([lg, shapely.Point(lg.x + 1, lg.y)]),
    ]


def frame(geoms: list, crs: str = "EPSG:32632") -> gpd.GeoDataFrame:
    """Geometries (EPSG:32632) with typed attributes, reprojected to ``crs``."""
    n = len(geoms)
    gdf = gpd.GeoDataFrame(
        {
            "nome": [f"feature {i}" for i in range(n)],
            "codice": np.arange(1, n + 1, dtype="int64"),
            "valore": np.linspace(0.5, 2.5, n),
            "attivo": [i % 2 == 0 for i in range(n)],
        },
        geometry=list(geoms),
        crs="EPSG:32632",
    )
    return gdf.to_crs(crs)


def to_bytes(
    gdf: gpd.GeoDataFrame,
    fmt: str,
    tmp: Path,
    name: str = "layer",
    *,
    drop_prj: bool = False,
    folder: str = "",
) -> tuple[bytes, str]:
    """The layer written as ``fmt`` (shpzip | gpkg | geojson): (bytes, file name)."""
    tmp.mkdir(parents=True, exist_ok=True)
    if fmt == "gpkg":
        path = tmp / f"{name}.gpkg"
        gdf.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
        return path.read_bytes(), path.name
    if fmt == "geojson":
        path = tmp / f"{name}.geojson"
        gdf.to_file(path, driver="GeoJSON", engine="pyogrio")
        return path.read_bytes(), path.name
    shp_dir = tmp / f"{name}_shp"
    shp_dir.mkdir()
    gdf.to_file(shp_dir / f"{name}.shp", engine="pyogrio", promote_to_multi=True)
    return zip_files(
        {
            f"{folder}{f.name}": f.read_bytes()
            for f in sorted(shp_dir.iterdir())
            if not (drop_prj and f.suffix == ".prj")
        }
    ), f"{name}.zip"


def zip_files(entries: dict[str, bytes]) -> bytes:
    """A zip of name → bytes (names written as given, even unsafe ones)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def geojson_bytes(features: list[dict], crs_name: str | None = None) -> bytes:
    """A FeatureCollection from raw feature dicts (for malformed or special inputs)."""
    import orjson

    doc: dict = {"type": "FeatureCollection", "features": features}
    if crs_name:
        doc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    return orjson.dumps(doc)


def feature(geometry: dict | None, **props) -> dict:
    """A GeoJSON feature dict."""
    return {"type": "Feature", "properties": props, "geometry": geometry}
