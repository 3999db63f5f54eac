"""Geometry rules every collection follows, whatever its provider.

* **One geometry type per collection.** Shapefile, GeoPackage and QGIS layers hold one
  geometry type; a collection mixing Point and MultiPoint (or Polygon and MultiPolygon)
  stops ``ogr2ogr -f "ESRI Shapefile"`` at the first feature of the other type. So a
  collection declares one type (:func:`collection_geometry_type`) and its features are
  promoted to it (:func:`promote_to_multi`); the declared type is published in the
  collection's schema and queryables as ``format: geometry-<type>`` (OGC API – Features
  Part 5, :func:`geometry_format`).
* **Served geometries are valid.** Rounding coordinates to the output precision can fold
  a valid ring onto itself (a PLIS boundary did); :func:`round_valid` rounds, and snaps
  the few geometries that became invalid with GEOS's precision model, which guarantees
  a valid result on the same grid.
* **Boxes as the client meant them**: :func:`bbox_polygon` is a CRS84 bbox crossing the
  antimeridian as two boxes, and :class:`BBox` carries, besides the CRS84 bounds, the
  exact area of a box given in another CRS (the box transformed as a polygon, not its
  lon/lat envelope).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

#: Single types and the multi type each is promoted to.
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
_MULTI_CLASS = {
    "Point": shapely.MultiPoint,
    "LineString": shapely.MultiLineString,
    "Polygon": shapely.MultiPolygon,
}


def collection_geometry_type(geometries: Sequence[Any]) -> str | None:
    """The one geometry type of a collection: the type all share, or the Multi* type when
    single and multi parts of one family mix; ``GeometryCollection`` when families mix,
    None when there is no geometry."""
    types = {g.geom_type for g in geometries if g is not None and not g.is_empty}
    if not types:
        return None
    if len(types) == 1:
        return types.pop()
    multis = {_MULTI.get(t, t) for t in types}
    return multis.pop() if len(multis) == 1 else "GeometryCollection"


def promote(geometry: BaseGeometry | None, geometry_type: str | None) -> BaseGeometry | None:
    """``geometry`` as ``geometry_type`` when it is the single form of that multi type."""
    if geometry is None or geometry_type is None or geometry.geom_type == geometry_type:
        return geometry
    single = geometry.geom_type
    if _MULTI.get(single) == geometry_type:
        return _MULTI_CLASS[single]([geometry])
    return geometry


def promote_to_multi(
    geometries: Sequence[Any], geometry_type: str | None = None
) -> tuple[np.ndarray, str | None]:
    """(the geometries promoted to one type, that type); the type defaults to
    :func:`collection_geometry_type` of the geometries."""
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    geometry_type = geometry_type or collection_geometry_type(geoms)
    promoter = _PROMOTERS.get(geometry_type or "")
    if promoter is not None:  # one vectorised call for the singles (a page: 100 of them)
        single_id, make = promoter
        singles = np.flatnonzero(shapely.get_type_id(geoms) == single_id)
        if len(singles):
            empty = shapely.is_empty(geoms[singles])
            full = singles[~empty]
            if len(full):
                geoms[full] = make(geoms[full], indices=np.arange(len(full)))
            for i in singles[empty]:
                geoms[i] = promote(geoms[i], geometry_type)
    return geoms, geometry_type


#: Multi type → (type id of its single form, the shapely function that wraps singles in it).
_PROMOTERS = {
    "MultiPoint": (0, shapely.multipoints),
    "MultiLineString": (1, shapely.multilinestrings),
    "MultiPolygon": (3, shapely.multipolygons),
}


def geometry_format(geometry_type: str | None) -> str:
    """``geometry-multipolygon`` and the like; ``geometry-any`` when unknown or mixed."""
    if not geometry_type or geometry_type == "GeometryCollection":
        return "geometry-any"
    return "geometry-" + geometry_type.lower()


def round_valid(geometries: np.ndarray, decimals: int) -> np.ndarray:
    """Coordinates rounded to ``decimals``; any geometry the rounding made invalid is snapped
    to the same grid by GEOS (valid by construction), keeping its Multi* type."""
    rounded = shapely.transform(geometries, lambda xy: np.round(xy, decimals))
    if len(rounded) == 0:
        return rounded
    bad = ~shapely.is_valid(rounded) & ~shapely.is_missing(rounded)
    if bad.any():
        grid = 10.0**-decimals
        for i in np.flatnonzero(bad):
            fixed = shapely.set_precision(geometries[i], grid)
            if fixed is None or fixed.is_empty or not fixed.is_valid:
                fixed = shapely.make_valid(rounded[i])
            rounded[i] = promote(fixed, geometries[i].geom_type)
    return rounded


def bbox_polygon(bounds: Sequence[float]) -> BaseGeometry:
    """A CRS84 bbox as a polygon; ``minx > maxx`` crosses the antimeridian (two boxes)."""
    x0, y0, x1, y1 = (float(v) for v in bounds)
    if x0 > x1:
        east, west = shapely.box(x0, y0, 180.0, y1), shapely.box(-180.0, y0, x1, y1)
        return shapely.MultiPolygon([east, west])
    return shapely.box(x0, y0, x1, y1)


class BBox(tuple):  # type: ignore[type-arg]
    """CRS84 bounds ``(minx, miny, maxx, maxy)`` (``minx > maxx`` across the antimeridian)
    that also carry the exact area asked for: :attr:`geometry`, in CRS84."""

    geometry: BaseGeometry
    #: True when :attr:`geometry` is the plain rectangle of the bounds (a CRS84 box that
    #: does not cross the antimeridian): the stores then test the box alone, with no
    #: geometry comparison per request (``geo.ogc.sql.plain_box``).
    rectangle: bool

    def __new__(cls, bounds: Sequence[float], geometry: BaseGeometry | None = None) -> BBox:
        self = super().__new__(cls, tuple(float(v) for v in bounds))
        self.rectangle = geometry is None and self[0] <= self[2]
        self.geometry = geometry if geometry is not None else bbox_polygon(bounds)
        return self


def area_of(bbox: Sequence[float]) -> BaseGeometry:
    """The area a query's bbox selects: exact when it is a :class:`BBox`."""
    geometry = getattr(bbox, "geometry", None)
    return geometry if geometry is not None else bbox_polygon(bbox)
