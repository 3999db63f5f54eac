"""Conformance classes declared in /conformance, each next to what implements it."""

from __future__ import annotations

from geo.ogc.cql import CQL2_CONFORMANCE
from geo.ogc.tiles import CONFORMANCE as TILES_CONFORMANCE

_F1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
_F2 = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/"
_F3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
#: OGC API – Features Part 4 (Create, Replace, Update and Delete; draft 1.0 URIs).
_F4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"
#: OGC API – Features Part 5 / Common Part 3: Schemas (23-058r2, 2026), whose conformance
#: classes are published under ``ogcapi-common-3``.
_F5 = "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/"

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
#: Part 4, on ``interventions`` and every uploaded layer: POST items (201 + Location), PUT
#: and DELETE one item (api.routes.interventions over geo.interventions.store,
#: api.routes.layer_items over geo.layers.editing; bearer token or session).
CREATE_REPLACE_DELETE = _F4 + "create-replace-delete"
#: Part 4: PATCH one item as a JSON merge patch (geo.interventions.patch_feature,
#: geo.layers.editing.patch_feature).
UPDATE = _F4 + "update"
#: Part 4: strong ETag on every item, If-Match on PUT/PATCH/DELETE, 412 when stale
#: (geo.ogc.http.feature_etag, api.routes.interventions._check_if_match).
OPTIMISTIC_LOCKING_ETAGS = _F4 + "optimistic-locking-etags"
#: Part 4 for features: GeoJSON bodies, Content-Crs on writes (CRS84 only for interventions;
#: any CRS the collection lists for uploaded layers).
FEATURES_4 = _F4 + "features"
#: Part 5: JSON Schema of the features, x-ogc-role id (geo.ogc.schema).
SCHEMAS = _F5 + "schemas"
#: Part 5: x-ogc-role primary-geometry, at most one per schema (geo.ogc.schema).
ADVANCED_PROPERTY_ROLES = _F5 + "advanced-property-roles"
#: Part 5: /collections/{id}/schema, linked with rel ogc-rel:schema (geo.ogc.service).
RETURNABLES = _F5 + "returnables-and-receivables"
#: Part 5: /queryables as a Part 5 schema (geo.ogc.schema.queryables_schema).
SCHEMA_QUERYABLES = _F5 + "queryables"
#: Part 5: /collections/{id}/sortables, what sortby accepts (geo.ogc.schema.sortables).
SORTABLES = _F5 + "sortables"

#: The same Schemas class under the Features Part 5 draft URI, which clients look for
#: (QGIS ≥ 3.34 reads /schema only when it is declared; pygeoapi declares it too).
FEATURES_5_SCHEMAS = "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas"
#: CQL2's basic spatial functions under their name in the CQL2 drafts, which clients
#: look for before sending spatial filters (QGIS ≥ 3.34): the same class as
#: ``basic-spatial-functions`` (geo.ogc.cql).
CQL2_BASIC_SPATIAL_OPERATORS = "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-operators"

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
    CQL2_BASIC_SPATIAL_OPERATORS,
    SCHEMAS,
    FEATURES_5_SCHEMAS,
    ADVANCED_PROPERTY_ROLES,
    RETURNABLES,
    SCHEMA_QUERYABLES,
    SORTABLES,
    CREATE_REPLACE_DELETE,
    UPDATE,
    OPTIMISTIC_LOCKING_ETAGS,
    FEATURES_4,
    *TILES_CONFORMANCE,  # OGC API – Tiles and TMS 2.0 (geo.ogc.tiles, api.routes.tiles)
)
