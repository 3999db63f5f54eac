"""Conformance classes declared in /conformance, each next to what implements it."""

from __future__ import annotations

from geo.ogc.cql import CQL2_CONFORMANCE
from geo.ogc.tiles import CONFORMANCE as TILES_CONFORMANCE

_F1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
_F2 = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/"
_F3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"

#: Part 1: landing, collections, items, paging (geo.ogc.service).
CORE = _F1 + "core"
#: GeoJSON encoding (geo.ogc.encode, geo.ogc.service).
GEOJSON = _F1 + "geojson"
#: HTML encoding (geo.ogc.html).
HTML = _F1 + "html"
#: OpenAPI 3.0 at /api (api.routes.ogc).
OAS30 = _F1 + "oas30"
#: Part 2: crs, bbox-crs, Content-Crs (geo.ogc.params, geo.ogc.encode).
CRS = _F2 + "crs"
#: Part 3: /queryables (geo.ogc.service).
QUERYABLES = _F3 + "queryables"
#: Part 3: ``?property=value`` filters (geo.ogc.registry.MemoryProvider).
QUERYABLES_QUERY_PARAMETERS = _F3 + "queryables-query-parameters"
#: Part 3: filter, filter-lang, filter-crs (geo.ogc.cql).
FILTER = _F3 + "filter"
FEATURES_FILTER = _F3 + "features-filter"

#: Everything /conformance declares, in order.
CONFORMANCE: tuple[str, ...] = (
    CORE,
    GEOJSON,
    HTML,
    OAS30,
    CRS,
    QUERYABLES,
    QUERYABLES_QUERY_PARAMETERS,
    FILTER,
    FEATURES_FILTER,
    *CQL2_CONFORMANCE,
    *TILES_CONFORMANCE,  # OGC API – Tiles and TMS 2.0 (geo.ogc.tiles, api.routes.tiles)
)
