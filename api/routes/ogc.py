"""OGC API – Features routes: parse (``api.ogc_params``) → call ``geo.ogc`` → send bytes.

``create_router`` builds the router for a service; ``add_response_cache`` installs the
ASGI response cache in front of FastAPI routing. ``/api`` serves OpenAPI 3.0.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import RedirectResponse, Response

from api.ogc_cache import OgcCacheMiddleware
from api.ogc_params import (
    Collection,
    Limit,
    Offset,
    Simplify,
    SkipGeometry,
    bbox,
    cql_filter,
    crs,
    datetime_range,
    meta_parameters,
    ogc_request,
    properties,
    property_filters,
    sortby,
)
from api.openapi30 import to_openapi30
from api.openapi_docs import with_collections
from api.security import public_base_url
from geo import BOUNDARIES_ATTRIBUTION
from geo.errors import ServiceUnavailable
from geo.ogc import ItemsRequest, OgcRequest, OgcResponse, OgcService
from geo.ogc import params as P
from geo.ogc.http import GEOJSON, HTML, JSON, OPENAPI_JSON, SCHEMA_JSON
from geo.ogc.metadata import JSONLD
from geo.ogc.registry import FeatureQuery, registry
from geo.settings import Settings, get_settings
from geo.territory.collections import register_territory

Req = Annotated[OgcRequest, Depends(ogc_request)]
TAGS = ["OGC API – Features"]


def ogc_response(r: OgcResponse) -> Response:
    """The service's answer as a Starlette response (also what api.ogc_lane sends)."""
    return Response(r.body, status_code=r.status, media_type=r.media_type, headers=r.headers)


def _content(json_type: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "OK",
            "content": {
                json_type: {"schema": {"type": "object"}},
                HTML: {"schema": {"type": "string"}},
            },
        },
        304: {"description": "Not modified (If-None-Match / If-Modified-Since)"},
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameter", "content": {JSON: {"schema": {"type": "object"}}}},
    404: {"description": "Not found", "content": {JSON: {"schema": {"type": "object"}}}},
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document as OpenAPI 3.0 (cached on the app)."""
    doc = getattr(app.state, "openapi30", None)
    if doc is None:
        doc = to_openapi30(app.openapi())
        app.state.openapi30 = doc
    return doc


#: The service's other resources, linked from the landing page: (rel, type, title, path).
SERVICE_LINKS: tuple[tuple[str, str, str, str], ...] = (
    ("related", "text/html", "Maps of the territory, interventions and layers", "/maps"),
    ("related", "application/json", "Find my zone (comune, zone, union)", "/lookup?q=Milano"),
    ("related", "application/json", "Comuni with zone, union and neighbours", "/comuni"),
    ("related", "application/json", "The strategic plan: missions, objectives, drivers", "/plan"),
    ("related", "application/json", "Interventions per zone", "/stats/interventions?by=zona"),
    ("related", "application/json", "Uploaded green-network layers", "/layers"),
    ("related", "text/html", "Interactive API documentation", "/docs"),
)


def create_router(settings: Settings | None = None) -> tuple[APIRouter, OgcService]:
    """The OGC router and its service (registers the territory collections if absent)."""
    settings = settings or get_settings()
    if "comuni" not in registry:
        register_territory(registry)
    service = OgcService(
        registry,
        title="Web GIS della Città metropolitana di Milano – OGC API Features",
        description="Comuni, zone omogenee, unioni di comuni and further layers of the "
        "Città metropolitana di Milano as OGC API – Features (GeoJSON, HTML; CRS84, "
        "EPSG:4326, 32632, 3003, 7791, 3857; CQL2 filters).",
        tiles_url=settings.tiles_url,
        attribution=BOUNDARIES_ATTRIBUTION,
        service_links=SERVICE_LINKS,
    )
    router = APIRouter(tags=TAGS, default_response_class=Response)
    meta = [Depends(meta_parameters)]

    @router.get(
        "/",
        summary="Landing page",
        dependencies=meta,
        responses=_content(JSON),
        operation_id="getLandingPage",
    )
    def landing(req: Req) -> Response:
        return ogc_response(service.landing(req))

    @router.get(
        "/conformance",
        summary="Conformance classes",
        dependencies=meta,
        responses=_content(JSON),
        operation_id="getConformanceDeclaration",
    )
    def conformance(req: Req) -> Response:
        return ogc_response(service.conformance(req))

    @router.get(
        "/api",
        summary="This API as OpenAPI 3.0",
        dependencies=meta,
        responses={200: {"description": "OK", "content": {OPENAPI_JSON: {}}}},
        operation_id="getAPIDefinition",
    )
    def api_definition(request: Request, req: Req) -> Response:
        if req.fmt == "html":
            return RedirectResponse("/docs", status_code=303)
        doc = with_collections(openapi_document(request.app), list(service.registry))
        return ogc_response(service.respond(req, doc, OPENAPI_JSON))

    @router.get(
        "/collections",
        summary="The collections",
        dependencies=meta,
        responses=_content(JSON),
        operation_id="getCollections",
    )
    def collections(req: Req) -> Response:
        return ogc_response(service.collections(req))

    @router.get(
        "/collections/{collectionId}",
        summary="One collection",
        dependencies=meta,
        responses={**_content(JSON), **_ERRORS},
        operation_id="describeCollection",
    )
    def collection(req: Req, provider: Collection) -> Response:
        return ogc_response(service.collection(req, provider.id))

    @router.get(
        "/collections/{collectionId}/queryables",
        summary="Queryables of a collection",
        dependencies=meta,
        responses={**_content(SCHEMA_JSON), **_ERRORS},
        operation_id="getQueryables",
    )
    def queryables(req: Req, provider: Collection) -> Response:
        return ogc_response(service.queryables(req, provider.id))

    @router.get(
        "/collections/{collectionId}/schema",
        summary="Schema of the features (OGC API – Features Part 5)",
        dependencies=meta,
        responses={**_content(SCHEMA_JSON), **_ERRORS},
        operation_id="getSchema",
    )
    def schema(req: Req, provider: Collection) -> Response:
        return ogc_response(service.schema(req, provider.id))

    @router.get(
        "/collections/{collectionId}/sortables",
        summary="Sortables of a collection (OGC API – Features Part 5)",
        dependencies=meta,
        responses={**_content(SCHEMA_JSON), **_ERRORS},
        operation_id="getSortables",
    )
    def sortables(req: Req, provider: Collection) -> Response:
        return ogc_response(service.sortables(req, provider.id))

    @router.get(
        "/collections/{collectionId}/feature-schema",
        summary="JSON Schema of one GeoJSON feature (what GDAL reads to type its fields)",
        dependencies=meta,
        responses={**_content(SCHEMA_JSON), **_ERRORS},
        operation_id="getFeatureSchema",
    )
    def feature_schema(req: Req, provider: Collection) -> Response:
        return ogc_response(service.feature_schema(req, provider.id))

    @router.get(
        "/collections/{collectionId}/metadata",
        summary="Metadata record of the dataset (DCAT-AP_IT, JSON-LD)",
        dependencies=meta,
        responses={**_content(JSONLD), **_ERRORS},
        operation_id="getMetadata",
    )
    def metadata(req: Req, provider: Collection) -> Response:
        return ogc_response(service.metadata(req, provider.id))

    @router.get(
        "/collections/{collectionId}/items",
        summary="Features of a collection",
        description="Paged with limit/offset; bbox (+bbox-crs), datetime, CQL2 filter "
        "(+filter-lang, filter-crs), ?queryable=value, sortby, properties, skipGeometry, "
        "crs, simplify (metres). Unknown parameters are rejected (400).",
        responses={**_content(GEOJSON), **_ERRORS},
        operation_id="getFeatures",
    )
    def items(
        req: Req,
        provider: Collection,
        bbox_: Annotated[tuple[float, float, float, float] | None, Depends(bbox)],
        datetime_: Annotated[Any, Depends(datetime_range)],
        crs_: Annotated[str, Depends(crs)],
        filter_: Annotated[Any, Depends(cql_filter)],
        sortby_: Annotated[list[tuple[str, bool]], Depends(sortby)],
        properties_: Annotated[list[str] | None, Depends(properties)],
        eq: Annotated[dict[str, str], Depends(property_filters)],
        limit: Limit = P.DEFAULT_LIMIT,
        offset: Offset = 0,
        skip_geometry: SkipGeometry = False,
        simplify: Simplify = None,
    ) -> Response:
        q = FeatureQuery(
            bbox=bbox_,
            datetime_range=datetime_,
            filter=filter_,
            properties_eq=eq,
            sortby=sortby_,
            properties=properties_,
            skip_geometry=skip_geometry,
            limit=P.parse_limit(limit),  # above the maximum: capped, not refused
            offset=offset,
        )
        ir = ItemsRequest(query=q, crs=crs_, simplify=P.parse_simplify(simplify))
        # A plain `def`: filtering and encoding (CPU and store work) run in the threadpool.
        return ogc_response(service.items(req, provider.id, ir))

    @router.get(
        "/collections/{collectionId}/items/{featureId}",
        summary="One feature",
        responses={**_content(GEOJSON), **_ERRORS},
        operation_id="getFeature",
    )
    def item(
        request: Request,
        req: Req,
        provider: Collection,
        feature_id: Annotated[str, Path(alias="featureId", description="Feature id")],
        crs_: Annotated[str, Depends(crs)],
        properties_: Annotated[list[str] | None, Depends(properties)],
        skip_geometry: SkipGeometry = False,
        simplify: Simplify = None,
    ) -> Response:
        P.check_parameters(request.query_params.keys(), P.ITEM_PARAMETERS)
        return ogc_response(
            service.item(
                req,
                provider.id,
                feature_id,
                crs=crs_,
                simplify=P.parse_simplify(simplify),
                properties=properties_,
                skip_geometry=skip_geometry,
            )
        )

    return router, service


def version_of(service: OgcService) -> Any:
    """Data version a path depends on (None: not an OGC path, not cached)."""

    def _version(path: str) -> str | None:
        try:
            if path.startswith("/collections/"):
                parts = path.split("/", 3)
                return service.version(parts[2]) if len(parts) > 2 and parts[2] else None
            if path in ("/", "/collections", "/conformance", "/api"):
                return service.version()
        except ServiceUnavailable:  # its store is down: not cached, the route answers 503
            return None
        return None

    return _version


def static_path(path: str) -> bool:
    """True when ``path``'s data version needs no store (a territory collection)."""
    if not path.startswith("/collections/"):
        return False
    parts = path.split("/", 3)
    return len(parts) > 2 and registry.is_static(parts[2])


def install(app: FastAPI, settings: Settings | None = None) -> OgcService:
    """Include the OGC router and put the response cache in front of routing."""
    settings = settings or get_settings()
    router, service = create_router(settings)
    app.include_router(router)
    app.state.ogc_service = service  # what api.ogc_lane answers with
    app.add_middleware(
        OgcCacheMiddleware,
        version_of=version_of(service),
        cors_origins=settings.cors_origins,
        base_url=lambda scope: public_base_url(scope, settings),
        static=static_path,
    )
    return service
