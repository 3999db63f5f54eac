"""Interventions: OGC API – Features Part 4 writes, file imports, aggregates.

Reads (``GET /collections/interventions/items``…) are served by the generic OGC routes
through the provider registered here (``geo.interventions.collection``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.responses import csv_response, json_response
from api.routes.downloads import feature_query
from api.session import principal_of, write_principal
from api.uploads import Upload, form_body, read_body, read_form
from geo import interventions as iv
from geo.auth import Principal
from geo.errors import GeoError, InvalidParameter, NotFound, PreconditionFailed, ValidationFailed
from geo.interventions.collection import COLLECTION_ID, register
from geo.interventions.stats import GROUPINGS, intervention_facets, intervention_stats
from geo.ogc.http import etag_matches, text_etag
from geo.ogc.registry import registry
from geo.settings import get_settings

register()

router = APIRouter(tags=["interventions"])
ITEMS = f"/collections/{COLLECTION_ID}/items"
Authorization = Annotated[
    str | None, Header(description="Bearer token: admin, or editor of a comune")
]
GEOJSON = "application/geo+json"


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body, read only after authentication, within the size and time limits."""
    s = get_settings()
    raw = await read_body(request, limit_mb=s.max_upload_mb, timeout_s=s.body_timeout_s)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("body", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidParameter("body", "expected a GeoJSON Feature object")
    return body


async def _principal(request: Request, authorization: str | None) -> Principal:
    """Who writes (bearer token, or session cookie + X-CSRF-Token); runs before any byte of
    the body is read (401 costs the server nothing)."""
    return await write_principal(request, authorization)


def _crs_ok(content_crs: str | None) -> None:
    if content_crs and content_crs.strip("<> ") not in (
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    ):
        raise InvalidParameter("Content-Crs", "only CRS84 geometries can be written")


def _feature_response(
    feature: dict[str, Any],
    status: int,
    *,
    collection_id: str = COLLECTION_ID,
    etag: str | None = None,
    **headers: str,
) -> Response:
    """The written feature with the ETag a GET of it answers (read again unless given)."""
    etag = etag or _current_etag(str(feature.get("id")), collection_id)
    if etag:
        headers["ETag"] = etag
    return json_response(feature, status_code=status, headers=headers, media_type=GEOJSON)


# --- Part 4 as desktop clients see it: OPTIONS/Allow, ETag and If-Match ------------------

IfMatch = Annotated[
    str | None,
    Header(description="ETag of the version read (GET …/items/{id}); 412 when stale"),
]


def _current_etag(feature_id: str, collection_id: str = COLLECTION_ID) -> str | None:
    """The strong ETag ``GET /collections/{collection_id}/items/{id}`` answers now."""
    provider = registry.get(collection_id)
    text = provider.get_geojson(feature_id) if provider is not None else None
    return text_etag(text) if text is not None else None


def _check_if_match(
    feature_id: str, if_match: str | None, collection_id: str = COLLECTION_ID
) -> None:
    """Optimistic locking: a write naming a stale version answers 412 and changes nothing
    (the interventions', and every uploaded layer's, api.routes.layer_items)."""
    if if_match is None:
        return
    etag = _current_etag(feature_id, collection_id)
    if etag is None:
        return  # the write answers 404 itself
    if not etag_matches(if_match, etag):
        raise PreconditionFailed(
            f"feature {feature_id!r} changed since it was read (If-Match {if_match}, current "
            f"ETag {etag}): read it again and redo the change",
            parameter="If-Match",
        )


def _caller(request: Request, authorization: str | None) -> Principal | None:
    """Who asks, or None (OPTIONS never fails on missing or bad credentials)."""
    try:
        return principal_of(request, authorization)
    except GeoError:
        return None


def _allow(methods: list[str]) -> Response:
    allow = ", ".join(methods)
    return Response(status_code=204, headers={"Allow": allow, "Cache-Control": "no-store"})


@router.options(ITEMS, summary="Methods the caller may use on the interventions")
def items_options(request: Request, authorization: Authorization = None) -> Response:
    """``Allow``: GET, HEAD, OPTIONS for everyone; POST for the admin and editors."""
    who = _caller(request, authorization)
    return _allow(["GET", "HEAD", "OPTIONS", *(["POST"] if who is not None else [])])


@router.options(ITEMS + "/{feature_id}", summary="Methods the caller may use on one")
def item_options(
    feature_id: str, request: Request, authorization: Authorization = None
) -> Response:
    """``Allow``: PUT, PATCH and DELETE too when the caller may write this intervention
    (the admin, or an editor of all its comuni)."""
    provider = registry.get(COLLECTION_ID)
    feature = provider.get(feature_id) if provider is not None else None
    if feature is None:
        raise NotFound(f"no feature {feature_id!r} in collection {COLLECTION_ID!r}")
    who = _caller(request, authorization)
    comuni = list((feature.get("properties") or {}).get("comuni") or [])
    writes = ["PUT", "PATCH", "DELETE"] if who is not None and who.may_write(comuni) else []
    return _allow(["GET", "HEAD", "OPTIONS", *writes])


@router.post(ITEMS, status_code=201, summary="Create an intervention (GeoJSON Feature)")
async def create_item(
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
):
    principal = await _principal(request, authorization)
    _crs_ok(content_crs)
    body = await _body(request)
    return await run_in_threadpool(_create, body, principal)


def _create(body: dict[str, Any], principal: Principal) -> Response:
    """The write and its answer in one threadpool hop."""
    feature = iv.create_feature(body, principal=principal)
    return _feature_response(feature, 201, Location=f"{ITEMS}/{feature['id']}")


async def _update(
    write, feature_id, request, authorization, content_crs, if_match=None
) -> Response:
    """Authenticate, check the CRS and ``If-Match``, apply ``write`` (replace or merge
    patch), answer 200 with the new ETag (the write and its answer in one threadpool hop)."""
    principal = await _principal(request, authorization)
    _crs_ok(content_crs)
    body = await _body(request)

    def written() -> Response:
        feature = write(
            feature_id,
            body,
            principal=principal,
            precondition=lambda: _check_if_match(feature_id, if_match),  # inside the write
        )
        return _feature_response(feature, 200)

    return await run_in_threadpool(written)


@router.put(ITEMS + "/{feature_id}", summary="Replace an intervention")
async def replace_item(
    feature_id: str,
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
    if_match: IfMatch = None,
):
    return await _update(
        iv.replace_feature, feature_id, request, authorization, content_crs, if_match
    )


@router.patch(ITEMS + "/{feature_id}", summary="Update parts of an intervention (merge patch)")
async def patch_item(
    feature_id: str,
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
    if_match: IfMatch = None,
):
    return await _update(
        iv.patch_feature, feature_id, request, authorization, content_crs, if_match
    )


@router.delete(ITEMS + "/{feature_id}", status_code=204, summary="Delete an intervention")
def delete_item(
    feature_id: str,
    request: Request,
    authorization: Authorization = None,
    if_match: IfMatch = None,
):
    principal = principal_of(request, authorization)
    iv.delete(
        feature_id,
        principal=principal,
        precondition=lambda: _check_if_match(feature_id, if_match),  # inside the write
    )
    return Response(status_code=204)


_IMPORT_FORM = form_body(
    file=("file", "CSV, GeoJSON or GeoPackage"),
    crs=("string", "CRS of x/y, WKT or a CRS-less layer"),
    source=("string", "source of rows that do not say (default import)"),
    dry_run=("boolean", "validate only"),
)
_PNRR_FORM = form_body(
    file=("file", "Projects CSV, or the joined file"),
    localisation=("file?", "Localisation CSV (joined to file by CUP)"),
    dry_run=("boolean", "read and validate only"),
)


def _import(up: Upload, crs: str | None, source: str, dry_run: bool, principal: Principal):
    """Read, validate and (unless ``dry_run``) upsert one uploaded file, all or nothing."""
    from geo.interventions.reading import read_file

    updir = get_settings().data_dir / "uploads"
    updir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=updir) as tmp:
        # Our own name on disk: the client's (already a safe base name) only picks the reader.
        path = Path(tmp) / ("upload" + Path(up.filename).suffix.lower()[:12])
        path.write_bytes(up.data)
        prepared = iv.prepare(read_file(path, crs=crs, filename=up.filename), source=source)
    prepared.raise_for_errors(up.filename)
    if dry_run:
        return {"dry_run": True, "valid": len(prepared.records)}
    report = iv.upsert(prepared, principal=principal)
    return report.to_dict(ids=len(prepared.records) <= 1000)


@router.post(
    "/imports/interventions",
    summary="Import interventions (CSV, GeoJSON, GPKG)",
    openapi_extra=_IMPORT_FORM,
)
async def import_file(request: Request, authorization: Authorization = None):
    """All-or-nothing upsert by id; 422 lists every error with its file, row and field."""
    principal = await _principal(request, authorization)
    s = get_settings()
    form = await read_form(
        request,
        files=("file",),
        required=("file",),
        fields=("crs", "source", "dry_run"),
        limit_mb=s.max_upload_mb,
        timeout_s=s.body_timeout_s,
    )
    source = form.text("source") or "import"
    result = await run_in_threadpool(
        _import, form.files["file"], form.text("crs"), source, form.flag("dry_run"), principal
    )
    return json_response(result)


@router.post(
    "/imports/pnrr",
    summary="Import PNRR projects (Italia Domani open data CSV)",
    openapi_extra=_PNRR_FORM,
)
async def import_pnrr_files(request: Request, authorization: Authorization = None):
    """All-or-nothing upsert by CUP; the report counts rows new/updated/unchanged/skipped."""
    from geo.interventions.pnrr import import_pnrr

    principal = await _principal(request, authorization)
    s = get_settings()
    form = await read_form(
        request,
        files=("file", "localisation"),
        required=("file",),
        fields=("dry_run",),
        limit_mb=s.max_upload_mb,
        timeout_s=s.body_timeout_s,
    )
    up, loc = form.files["file"], form.files.get("localisation")
    names = up.filename + (f" + {loc.filename}" if loc is not None else "")
    try:
        report = await run_in_threadpool(
            import_pnrr,
            up.data,
            loc.data if loc is not None else None,
            principal=principal,
            dry_run=form.flag("dry_run"),
        )
    except ValidationFailed as exc:  # say which upload it is about
        exc.message = f"{names}: {exc.message}"
        raise
    return json_response(report.to_dict(ids=report.pnrr.table.frame.shape[0] <= 1000))


#: Parameters of /stats/interventions itself; every other one filters as the items API does.
STATS_PARAMETERS = frozenset(
    {"by", "f", "amount", "source", "mission", "bbox", "bbox-crs", "filter", "filter-lang",
     "filter-crs"}
)  # fmt: skip


@router.get("/stats/interventions", summary="Interventions aggregated by comune, zona, …")
def stats(
    request: Request,
    by: Annotated[
        str,
        Query(
            description=" | ".join(GROUPINGS) + "; several, comma-separated, answer "
            "`groupings: {by: groups}` from one reading of the selection"
        ),
    ] = "comune",
    f: Annotated[str, Query(description="json or csv")] = "json",
    source: Annotated[str | None, Query(description="documented, pnrr, …")] = None,
    mission: Annotated[str | None, Query(description="M1 … M6")] = None,
    amount: Annotated[str, Query(description="total (amount_eur) or pnrr")] = "total",
):
    """Totals and groups of the interventions that the same query of
    ``/collections/interventions/items`` selects: its property filters (``zona=``,
    ``amount_min=``, …), ``bbox`` and CQL2 ``filter`` are read as there. Counted in the
    store, so a map application shows exact counts and sums without loading features."""
    if f not in ("json", "csv"):
        raise InvalidParameter("f", "use json or csv")
    provider = registry.get(COLLECTION_ID)
    if provider is None:
        raise NotFound(f"no collection {COLLECTION_ID!r}", parameter="collectionId")
    query = feature_query(provider, request.query_params, STATS_PARAMETERS, 0)
    bys = [b.strip() for b in by.split(",")]
    if len(bys) > 1:
        if f == "csv":
            raise InvalidParameter("f", "csv takes one grouping: use f=json with several")
        return json_response(
            intervention_facets(bys, source=source, mission=mission, amount=amount, query=query)
        )
    result = intervention_stats(by, source=source, mission=mission, amount=amount, query=query)
    if f == "csv":
        return csv_response(result["groups"], f"interventions_by_{by}.csv")
    return json_response(result)
