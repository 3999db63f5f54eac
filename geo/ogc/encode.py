"""Geometry for the web: reprojection, axis order, rounding, simplification, GeoJSON bytes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo.crs import CRS84, METRIC_EPSG, epsg_uri, is_lat_lon, to_pyproj, transformer
from geo.ogc.geometry import round_valid

#: Decimals kept in output coordinates: ~0.1 m in degrees, 1 cm in metres.
DECIMALS_DEGREES = 6
DECIMALS_METRES = 2


def decimals_for(crs: str) -> int:
    """Rounding of a CRS's coordinates."""
    return DECIMALS_DEGREES if crs == CRS84 or to_pyproj(crs).is_geographic else DECIMALS_METRES


def _reproject(geoms: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Reproject from ``src`` (x/y as stored) to ``dst`` in ``dst``'s own axis order."""
    if src == dst:
        return geoms
    tx = transformer(src, dst)
    swap_in = is_lat_lon(src)

    def _f(xy: np.ndarray) -> np.ndarray:
        a, b = (xy[:, 1], xy[:, 0]) if swap_in else (xy[:, 0], xy[:, 1])
        x, y = tx.transform(a, b)
        return np.column_stack([x, y])

    return shapely.transform(geoms, _f)


def as_geometry(value: Any) -> BaseGeometry | None:
    """A shapely geometry from a shapely object or a GeoJSON mapping."""
    if value is None or isinstance(value, BaseGeometry):
        return value
    return shapely.geometry.shape(value)


def encode_geometries(
    geometries: Sequence[Any], crs: str = CRS84, simplify_m: float | None = None
) -> list[orjson.Fragment | None]:
    """CRS84 geometries → GeoJSON fragments in ``crs`` (its axis order), rounded.

    ``simplify_m`` is a Douglas-Peucker tolerance in metres applied in EPSG:32632
    (topology preserved), for maps that do not need survey precision.
    """
    geoms = np.array([as_geometry(g) for g in geometries], dtype=object)
    return [
        None if t is None else orjson.Fragment(t) for t in geometry_texts(geoms, crs, simplify_m)
    ]


def geometry_texts(
    geometries: np.ndarray, crs: str = CRS84, simplify_m: float | None = None
) -> list[str | None]:
    """CRS84 shapely geometries (None for none) → GeoJSON texts in ``crs``, rounded (see
    :func:`encode_geometries`); texts for a page the store assembles."""
    present = ~shapely.is_missing(geometries)
    out: list[str | None] = [None] * len(geometries)
    if not present.any():
        return out
    work = geometries[present]
    src = CRS84
    if simplify_m:
        metric = epsg_uri(METRIC_EPSG)
        work = shapely.simplify(_reproject(work, CRS84, metric), simplify_m, preserve_topology=True)
        src = metric
    work = round_valid(_reproject(work, src, crs), decimals_for(crs))
    for i, text in zip(np.flatnonzero(present), shapely.to_geojson(work), strict=True):
        out[int(i)] = str(text)
    return out


def stored_geometry_texts(geometries: Sequence[Any] | np.ndarray) -> list[str | None]:
    """CRS84 shapely geometries → the GeoJSON texts a store keeps with its rows
    (``geometry_json``): what :func:`geometry_texts` writes for them, before any promotion
    to a Multi type (:func:`promote_text` does that on the text, as the page's collection
    asks). None where a page must encode the WKB itself: no geometry, an empty one, or one
    the rounding makes invalid (:func:`geo.ogc.geometry.round_valid` snaps those)."""
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    out: list[str | None] = [None] * len(geoms)
    present = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
    if not len(present):
        return out
    decimals = decimals_for(CRS84)
    rounded = shapely.transform(geoms[present], lambda xy: np.round(xy, decimals))
    valid = shapely.is_valid(rounded)
    for i, ok, text in zip(present, valid, shapely.to_geojson(rounded), strict=True):
        if ok:
            out[int(i)] = str(text)
    return out


def kept_geometry_texts(wkbs: Sequence[Any]) -> list[str | None]:
    """What a write keeps in ``geometry_json`` for the geometries ``wkbs``: their
    :func:`stored_geometry_texts`, which the pages of both stores send (migration 0010;
    :func:`geo.ogc.sql.pg_geojson_geometry` on PostgreSQL)."""
    return stored_geometry_texts(shapely.from_wkb(list(wkbs)))


#: Multi type → the start of the GeoJSON text of its single form, as shapely writes it.
SINGLE_HEADS = {
    "MultiPoint": '{"type":"Point","coordinates":',
    "MultiLineString": '{"type":"LineString","coordinates":',
    "MultiPolygon": '{"type":"Polygon","coordinates":',
}


def promote_text(text: str, geometry_type: str | None) -> str:
    """A geometry's GeoJSON ``text`` promoted to ``geometry_type`` when it is the single form
    of that Multi type (``Point`` → ``MultiPoint`` …: the coordinates nested once more), as
    :func:`geo.ogc.geometry.promote_to_multi` would before writing it."""
    return promote_texts([text], geometry_type)[0]  # type: ignore[return-value]


def promote_texts(texts: list[str | None], geometry_type: str | None) -> list[str | None]:
    """:func:`promote_text` of each text (None stays None), in one pass: a page's hundred
    texts without a call each."""
    head = SINGLE_HEADS.get(geometry_type or "")
    if head is None:
        return texts
    k, multi = len(head), '{"type":"' + str(geometry_type) + '","coordinates":['
    return [multi + t[k:-1] + "]}" if t is not None and t.startswith(head) else t for t in texts]


def feature_text(feature: dict[str, Any]) -> str:
    """The canonical text of one feature: GeoJSON in CRS84 at the output precision, members
    in the order every page writes them. What a store that encodes features itself
    (:meth:`geo.ogc.registry.CollectionProvider.get_geojson`) returns byte for byte, and
    what :func:`geo.ogc.http.feature_etag` hashes."""
    geometry = encode_geometries([feature.get("geometry")])[0]
    return orjson.dumps(
        {
            "type": "Feature",
            "id": feature.get("id"),
            "geometry": geometry,
            "properties": feature.get("properties") or {},
        }
    ).decode()


def bbox_in(bounds: Sequence[float], crs: str) -> list[float]:
    """A CRS84 bbox expressed in ``crs`` (its axis order), rounded **outward** (lower
    corner down, upper corner up), so every feature lies inside its collection's extent."""
    if crs == CRS84:
        vals, nd = [float(v) for v in bounds], DECIMALS_DEGREES
    else:
        vals = list(transformer(CRS84, crs).transform_bounds(*bounds, densify_pts=21))
        nd = decimals_for(crs)
    scale = 10.0**nd
    half = len(vals) // 2
    return [(math.floor if i < half else math.ceil)(v * scale) / scale for i, v in enumerate(vals)]
