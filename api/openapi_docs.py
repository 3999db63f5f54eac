"""What the OpenAPI document says each operation answers: real schemas, every status code.

FastAPI documents the service's hand-made JSON responses as ``type: string`` and its own
422 shape (``{"detail": …}``), which the service never sends. :func:`complete` fixes the
generated document in one place, so route modules stay thin: success bodies get their
real schema (checked by the schemathesis tests against live answers), every operation
lists the error statuses it can answer with the service's error body (:data:`ERROR`),
and binary or HTML answers get their media types. Schemas name the fields clients rely
on; objects stay open (further fields may be added without breaking clients).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

#: Swagger UI, installed from npm by scripts/fetch_assets.sh: /docs works with no internet.
SWAGGER_BASE = "/static/vendor/swagger-ui"


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An open object with the given required and optional properties."""
    props = {**required, **(optional or {})}
    return {"type": "object", "required": list(required), "properties": props}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj({"count": INT, key: {"type": "array", "items": item}})


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
ISTAT: dict[str, Any] = {"type": "string", "pattern": r"^\d{6}$"}
STRS: dict[str, Any] = {"type": "array", "items": STR}
ANY_OBJ: dict[str, Any] = {"type": "object"}

#: The body of every error answer (OGC API exception, plus where the problem is).
ERROR = _obj(
    {"code": STR, "description": STR},
    {"parameter": STR, "details": {}, "row": INT, "field": STR},
)
ZONA_REF = _obj({"id": STR, "name": STR}, {"confidence": STR, "source": STR})
UNIONE_REF = _null(_obj({"id": STR, "name": STR}))
COMUNE = _obj(
    {"istat_code": ISTAT, "name": STR, "population": INT, "area_km2": NUM,
     "zona_omogenea": ZONA_REF, "unione": UNIONE_REF},
    {"cadastral_code": STR,
     "neighbours": {"type": "array", "items": _obj({"istat_code": ISTAT, "name": STR})}},
)  # fmt: skip
GROUP = _obj(
    {"id": STR, "name": STR, "n_comuni": INT, "population": INT, "area_km2": NUM},
    {"comuni": {"type": "array"}, "source": STR},
)
LOOKUP = _obj({"comune": COMUNE}, {"query": STR, "matched_by": STR, "point": ANY_OBJ})
BATCH_ROW = _obj(
    {"id": {}, "istat_code": _null(ISTAT), "name": _null(STR)},
    {"zona_omogenea": _null(STR), "zona_name": _null(STR), "unione": _null(STR),
     "unione_name": _null(STR), "nearest_istat_code": _null(ISTAT),
     "nearest_name": _null(STR), "distance_m": _null(NUM)},
)  # fmt: skip
BATCH = _obj(
    {"crs": STR, "count": INT, "matched": INT, "outside": INT,
     "results": {"type": "array", "items": BATCH_ROW}}
)  # fmt: skip
FEATURE = _obj(
    {"type": {"enum": ["Feature"]}, "geometry": _null(ANY_OBJ), "properties": _null(ANY_OBJ)},
    {"id": {"anyOf": [STR, INT]}},
)
STATS = _obj(
    {"by": STR, "n_interventions": INT, "groups": {"type": "array", "items": ANY_OBJ}},
    {"note": STR, "filters": ANY_OBJ, "amount": STR, "revision": INT},
)
LAYER = _obj({"id": STR, "name": STR}, {"geometry_type": STR, "feature_count": INT})
PLAN = _obj(
    {"counts": ANY_OBJ},
    {k: {"type": "array", "items": ANY_OBJ}
     for k in ("missions", "objectives", "drivers", "keywords", "programmes")},
)  # fmt: skip

#: Success bodies: (method, path) → (status, {media type: schema}).
SUCCESS: dict[tuple[str, str], tuple[str, dict[str, dict[str, Any]]]] = {
    ("get", "/comuni"): ("200", {"application/json": _list_of("comuni", COMUNE)}),
    ("get", "/comuni/{istat_code}"): ("200", {"application/json": COMUNE}),
    ("get", "/zone-omogenee"): ("200", {"application/json": _list_of("zone_omogenee", GROUP)}),
    ("get", "/zone-omogenee/{zona_id}"): ("200", {"application/json": GROUP}),
    ("get", "/unioni"): ("200", {"application/json": _list_of("unioni", GROUP)}),
    ("get", "/unioni/{unione_id}"): ("200", {"application/json": GROUP}),
    ("get", "/lookup"): ("200", {"application/json": LOOKUP}),
    ("post", "/lookup"): ("200", {"application/json": BATCH, "text/csv": STR}),
    ("post", "/collections/interventions/items"): ("201", {"application/geo+json": FEATURE}),
    ("put", "/collections/interventions/items/{feature_id}"): (
        "200",
        {"application/geo+json": FEATURE},
    ),
    ("patch", "/collections/interventions/items/{feature_id}"): (
        "200",
        {"application/geo+json": FEATURE},
    ),
    # Part 4 on every uploaded layer (api/routes/layer_items.py)
    ("post", "/collections/{collectionId}/items"): ("201", {"application/geo+json": FEATURE}),
    ("put", "/collections/{collectionId}/items/{featureId}"): (
        "200",
        {"application/geo+json": FEATURE},
    ),
    ("patch", "/collections/{collectionId}/items/{featureId}"): (
        "200",
        {"application/geo+json": FEATURE},
    ),
    ("post", "/imports/interventions"): ("200", {"application/json": ANY_OBJ}),
    ("post", "/imports/pnrr"): ("200", {"application/json": ANY_OBJ}),
    ("get", "/stats/interventions"): ("200", {"application/json": STATS, "text/csv": STR}),
    ("get", "/plan"): ("200", {"application/json": PLAN}),
    ("get", "/plan/missions"): ("200", {"application/json": _list_of("missions", ANY_OBJ)}),
    ("get", "/plan/objectives"): ("200", {"application/json": _list_of("objectives", ANY_OBJ)}),
    ("get", "/plan/drivers"): ("200", {"application/json": _list_of("drivers", ANY_OBJ)}),
    ("get", "/plan/keywords"): ("200", {"application/json": _list_of("keywords", ANY_OBJ)}),
    ("get", "/plan/programmes"): ("200", {"application/json": _list_of("programmes", ANY_OBJ)}),
    ("post", "/layers"): ("201", {"application/json": LAYER}),
    ("get", "/layers"): ("200", {"application/json": _list_of("layers", LAYER)}),
    ("get", "/layers/{layer_id}"): ("200", {"application/json": LAYER}),
    ("patch", "/layers/{layer_id}"): ("200", {"application/json": LAYER}),
    ("get", "/layers/{layer_id}/metrics"): ("200", {"application/json": ANY_OBJ, "text/csv": STR}),
    ("get", "/layers/{layer_id}/membership-check"): ("200", {"application/json": ANY_OBJ}),
    ("get", "/green-network/membership"): (
        "200",
        {"application/json": _list_of("membership", ANY_OBJ)},
    ),
    ("get", "/api"): (
        "200",
        {"application/vnd.oai.openapi+json;version=3.0": ANY_OBJ, "text/html": STR},
    ),
    ("get", "/maps/territory.{fmt}"): (
        "200",
        {
            "image/png": {"type": "string", "format": "binary"},
            "application/pdf": {"type": "string", "format": "binary"},
        },
    ),
    # The map application (api/routes/suggest.py, downloads.py, app.py).
    ("get", "/lookup/suggest"): (
        "200",
        {"application/json": _obj({"query": STR, "suggestions": {"type": "array"}})},
    ),
    ("get", "/downloads/{collectionId}"): (
        "200",
        {
            "application/geo+json": ANY_OBJ,
            "text/csv": STR,
            "application/geopackage+sqlite3": {"type": "string", "format": "binary"},
        },
    ),
    ("get", "/app/print.{fmt}"): (
        "200",
        {
            "image/png": {"type": "string", "format": "binary"},
            "application/pdf": {"type": "string", "format": "binary"},
        },
    ),
}
#: Paths answered as HTML pages (maps), or PNG/PDF when the path asks for it.
HTML_PREFIX = "/maps"

#: Error statuses every operation may answer, and those of writes and uploads.
COMMON_ERRORS = {
    "400": "Bad request: a parameter is malformed (OGC resources)",
    "404": "Not found",
    "414": "Request target longer than CMM_GEO_MAX_URL_LENGTH",
    "422": "A parameter or the body failed validation; says which and where",
    "503": "The database is unavailable or the query ran out of time; retry later",
}
WRITE_ERRORS = {
    "401": "No, unknown or revoked bearer token",
    "403": "The token may not write this",
    "408": "The request body was not sent in time (CMM_GEO_BODY_TIMEOUT_S)",
    "409": "Conflicts with stored data",
    "413": "The body is larger than allowed",
}
BODY_ERRORS = {k: WRITE_ERRORS[k] for k in ("408", "413")}


def _content(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {media: {"schema": schema} for media, schema in schemas.items()}


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Fill in real response schemas and every error status of every operation."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Exception"] = ERROR
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method == "options":  # OPTIONS answers 204 + Allow (or 404), nothing else
                op["responses"] = {
                    "204": {"description": "`Allow` lists what the caller may do"},
                    "404": {"description": "Not found", "content": error_ref},
                }
                continue
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            found = SUCCESS.get((method, path))
            if found is not None:
                status, schemas = found
                responses[status] = {
                    "description": responses.get(status, {}).get("description", "Success"),
                    "content": _content(schemas),
                }
            elif path.startswith(HTML_PREFIX):
                responses["200"] = {
                    "description": "The map page",
                    "content": {"text/html": {"schema": STR}},
                }
            errors = dict(COMMON_ERRORS)
            if method != "get" and path != "/lookup":
                errors.update(WRITE_ERRORS)
            if method == "get" and path.endswith("/items"):
                errors["429"] = (
                    "Too many filtered requests from this address "
                    "(CMM_GEO_FILTER_RATE_PER_CLIENT); `Retry-After` says when to retry"
                )
            if method in ("put", "patch", "delete") and path.startswith("/collections/"):
                errors["412"] = "If-Match names a version that is no longer current"
            elif method == "post":
                errors.update(BODY_ERRORS)
            ogc = path.startswith("/collections") or path in ("/", "/api", "/conformance")
            refs = {**error_ref, "text/html": {"schema": STR}} if ogc else error_ref
            for status, description in errors.items():
                current = responses.get(status, {})
                if "content" in current and status not in ("422",):
                    if ogc:  # errors asked for as HTML come as HTML
                        current["content"].setdefault("text/html", {"schema": STR})
                    continue  # the route documented its own error body
                responses[status] = {"description": description, "content": refs}
    schemas = doc["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _ogc_parameters(doc)
    _security(doc)
    _items_gets(doc)
    api = doc.get("paths", {}).get("/api", {}).get("get")
    if api is not None:
        api["responses"]["303"] = {"description": "`f=html`: redirect to the documentation"}
    return doc


#: OGC API – Features parameters as the standards define them (FastAPI sees strings).
OGC_PARAMETERS: dict[str, dict[str, Any]] = {
    "bbox": {
        "style": "form",
        "explode": False,
        "schema": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 4,
            "maxItems": 6,
        },
    },
    "crs": {"schema": {"type": "string", "format": "uri"}},
    "bbox-crs": {"schema": {"type": "string", "format": "uri"}},
    "filter-crs": {"schema": {"type": "string", "format": "uri"}},
    "filter-lang": {
        "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}
    },
    "limit": {
        "description": "Page size (default 10); above the maximum of 10000 it is capped.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
    },
}
#: Security scheme of the writes: a bearer token (admin or a comune's editor).
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "The admin token (CMM_GEO_ADMIN_TOKEN) or a comune's editor token "
    "(`cmm-geo tokens create`)",
}


def _ogc_parameters(doc: dict[str, Any]) -> None:
    """bbox as an array of numbers, CRS parameters as URIs, filter-lang's default."""
    for path, item in doc.get("paths", {}).items():
        if not path.startswith("/collections"):
            continue
        for op in item.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                fix = OGC_PARAMETERS.get(param.get("name", ""))
                if fix is not None and param.get("in") == "query":
                    param.update({k: v for k, v in fix.items() if k != "schema"})
                    description = param["schema"].get("description")
                    param["schema"] = dict(fix["schema"])
                    if description:
                        param["schema"]["description"] = description


#: The app's session (api.session): the cookie, and for JSON writes the CSRF header.
SESSION_COOKIE = {
    "type": "apiKey",
    "in": "cookie",
    "name": "cmmgeo_session",
    "description": "A signed-in user's session (sign in at /app/login)",
}
CSRF_HEADER = {
    "type": "apiKey",
    "in": "header",
    "name": "X-CSRF-Token",
    "description": "The session's CSRF token (from /app/session), required with the cookie",
}
#: Writes that need no one signed in (the sign-in itself) or no rights (batch lookups).
_OPEN_WRITES = ("/lookup", "/app/login")


def _security(doc: dict[str, Any]) -> None:
    """Writes require a bearer token or a signed-in session: declared once, referenced by
    every write (the app's form pages by the session alone, with the token in the form)."""
    comps = doc.setdefault("components", {})
    schemes = comps.setdefault("securitySchemes", {})
    schemes["bearerAuth"] = BEARER
    schemes["sessionCookie"] = SESSION_COOKIE
    schemes["csrfHeader"] = CSRF_HEADER
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("post", "put", "patch", "delete") or path in _OPEN_WRITES:
                continue
            if path.startswith("/app/"):
                op.setdefault("security", [{"sessionCookie": []}])
            else:
                op.setdefault(
                    "security", [{"bearerAuth": []}, {"sessionCookie": [], "csrfHeader": []}]
                )


def _items_gets(doc: dict[str, Any]) -> None:
    """Paths of one collection that only document writes (the interventions) also get the
    generic GET, so clients reading the document find it next to the writes."""
    paths = doc.get("paths", {})
    generic_items = paths.get("/collections/{collectionId}/items", {}).get("get")
    generic_item = paths.get("/collections/{collectionId}/items/{featureId}", {}).get("get")
    for path, item in paths.items():
        if not path.startswith("/collections/") or "{collectionId}" in path:
            continue
        collection_id = path.split("/")[2]
        rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
        if rest == "items" and generic_items and "get" not in item:
            item["get"] = collection_get(generic_items, collection_id, [])
        elif rest.startswith("items/{") and generic_item and "get" not in item:
            feature_param = rest[len("items/{") : -1]
            get = collection_get(generic_item, collection_id, [])
            for param in get["parameters"]:
                if param.get("in") == "path":
                    param["name"] = feature_param
            item["get"] = get


def collection_get(
    generic: dict[str, Any], collection_id: str, queryables: list[Any]
) -> dict[str, Any]:
    """The generic GET of ``/collections/{collectionId}/items…`` for one collection, with
    one query parameter per queryable (Part 3 "Queryables as Query Parameters"; GDAL pushes
    a ``-where`` down only for parameters it finds here)."""
    op = copy.deepcopy(generic)
    op["operationId"] = f"{generic.get('operationId', 'get')}_{collection_id}".replace("-", "_")
    op["parameters"] = [
        p
        for p in op.get("parameters", [])
        if not (p.get("in") == "path" and p.get("name") == "collectionId")
    ]
    for q in queryables:
        item_type = "string" if q.type == "datetime" else q.type
        schema: dict[str, Any] = {"type": item_type}
        if q.enum:
            schema["enum"] = list(q.enum)
        if q.format:
            schema["format"] = q.format
        one_of = " (matches when the value is one of the list)" if q.array else ""
        op["parameters"].append(
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "style": "form",
                "explode": False,
                "description": (q.title or q.name) + one_of,
                "schema": schema,
            }
        )
    return op


def with_collections(doc: dict[str, Any], providers: list[Any]) -> dict[str, Any]:
    """``doc`` plus, per collection, ``/collections/{id}/items`` (GET with its queryables as
    parameters) and ``/collections/{id}/items/{featureId}``: what GDAL and QGIS look for;
    for an uploaded layer, with its writes (Part 4) next to the GETs."""
    out = copy.copy(doc)
    paths = dict(doc.get("paths", {}))
    generic_items = paths.get("/collections/{collectionId}/items", {}).get("get")
    generic_item = paths.get("/collections/{collectionId}/items/{featureId}", {}).get("get")
    if generic_items is None:
        return doc
    for p in providers:
        items_path = f"/collections/{p.id}/items"
        item = dict(paths.get(items_path, {}))
        item["get"] = collection_get(generic_items, p.id, p.queryables())
        writes = _takes_writes(p)
        if writes:
            item.update(collection_writes(paths["/collections/{collectionId}/items"], p.id))
        paths[items_path] = item
        one_path = f"/collections/{p.id}/items/{{featureId}}"
        if generic_item is not None and not any(k.startswith(items_path + "/{") for k in paths):
            paths[one_path] = {"get": collection_get(generic_item, p.id, [])}
            if writes:
                paths[one_path].update(
                    collection_writes(paths["/collections/{collectionId}/items/{featureId}"], p.id)
                )
    out["paths"] = paths
    return out


def _takes_writes(provider: Any) -> bool:
    """An uploaded layer: its features take Part 4 writes (api/routes/layer_items.py)."""
    from geo.layers.sql_collection import LayerSqlProvider

    return isinstance(provider, LayerSqlProvider)


def collection_writes(generic: dict[str, Any], collection_id: str) -> dict[str, Any]:
    """The generic writes (every method but GET) of ``/collections/{collectionId}/items…``
    for one collection: its own operation ids, no ``collectionId`` parameter."""
    out: dict[str, Any] = {}
    for method, generic_op in generic.items():
        if method == "get" or not isinstance(generic_op, dict):
            continue
        op = copy.deepcopy(generic_op)
        op["operationId"] = f"{op.get('operationId', method)}_{collection_id}".replace("-", "_")
        op["parameters"] = [
            p
            for p in op.get("parameters", [])
            if not (p.get("in") == "path" and p.get("name") == "collectionId")
        ]
        out[method] = op
    return out


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once); serve ``/docs``
    with the self-hosted Swagger UI (the app is created with ``docs_url=None``)."""

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API",
            swagger_js_url=f"{SWAGGER_BASE}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_BASE}/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
