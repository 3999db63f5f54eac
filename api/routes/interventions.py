"""Interventions: OGC API – Features Part 4 writes, file imports, aggregates.

Reads (``GET /collections/interventions/items``…) are served by the generic OGC routes
through the provider registered here (``geo.interventions.collection``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile

from api.responses import csv_response, json_response
from geo import interventions as iv
from geo.auth import authenticate
from geo.errors import InvalidParameter, PayloadTooLarge
from geo.interventions.collection import COLLECTION_ID, register
from geo.interventions.stats import GROUPINGS, intervention_stats
from geo.settings import get_settings

register()

router = APIRouter(tags=["interventions"])
ITEMS = f"/collections/{COLLECTION_ID}/items"
Authorization = Annotated[
    str | None, Header(description="Bearer token: admin, or editor of a comune")
]
GEOJSON = "application/geo+json"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    limit = get_settings().max_upload_mb * 1024 * 1024
    if len(raw) > limit:
        raise PayloadTooLarge(f"body larger than {get_settings().max_upload_mb} MB")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter("body", f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidParameter("body", "expected a GeoJSON Feature object")
    return body


def _crs_ok(content_crs: str | None) -> None:
    if content_crs and content_crs.strip("<> ") not in (
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    ):
        raise InvalidParameter("Content-Crs", "only CRS84 geometries can be written")


def _feature_response(feature: dict[str, Any], status: int, **headers: str) -> Response:
    return json_response(feature, status_code=status, headers=headers, media_type=GEOJSON)


@router.post(ITEMS, status_code=201, summary="Create an intervention (GeoJSON Feature)")
async def create_item(
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
):
    principal = authenticate(authorization)
    _crs_ok(content_crs)
    feature = iv.create_feature(await _body(request), principal=principal)
    return _feature_response(feature, 201, Location=f"{ITEMS}/{feature['id']}")


async def _update(write, feature_id, request, authorization, content_crs) -> Response:
    """Authenticate, check the CRS, apply ``write`` (replace or merge patch), answer 200."""
    principal = authenticate(authorization)
    _crs_ok(content_crs)
    feature = write(feature_id, await _body(request), principal=principal)
    return _feature_response(feature, 200)


@router.put(ITEMS + "/{feature_id}", summary="Replace an intervention")
async def replace_item(
    feature_id: str,
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
):
    return await _update(iv.replace_feature, feature_id, request, authorization, content_crs)


@router.patch(ITEMS + "/{feature_id}", summary="Update parts of an intervention (merge patch)")
async def patch_item(
    feature_id: str,
    request: Request,
    authorization: Authorization = None,
    content_crs: Annotated[str | None, Header()] = None,
):
    return await _update(iv.patch_feature, feature_id, request, authorization, content_crs)


@router.delete(ITEMS + "/{feature_id}", status_code=204, summary="Delete an intervention")
def delete_item(feature_id: str, authorization: Authorization = None):
    principal = authenticate(authorization)
    iv.delete(feature_id, principal=principal)
    return Response(status_code=204)


@router.post("/imports/interventions", summary="Import interventions (CSV, GeoJSON, GPKG)")
def import_file(
    file: Annotated[UploadFile, File(description="CSV, GeoJSON or GeoPackage")],
    authorization: Authorization = None,
    crs: Annotated[str | None, Form(description="CRS of x/y, WKT or a CRS-less layer")] = None,
    source: Annotated[str, Form(description="source of rows that do not say")] = "import",
    dry_run: Annotated[bool, Form(description="validate only")] = False,
):
    """All-or-nothing upsert by id; 422 lists every error with its row number."""
    from geo.interventions.reading import read_file

    principal = authenticate(authorization)
    settings = get_settings()
    name = Path(file.filename or "upload.csv").name
    updir = settings.data_dir / "uploads"
    updir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=updir) as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        if path.stat().st_size > settings.max_upload_mb * 1024 * 1024:
            raise PayloadTooLarge(f"file larger than {settings.max_upload_mb} MB")
        prepared = iv.prepare(read_file(path, crs=crs, filename=name), source=source)
    prepared.raise_for_errors()
    if dry_run:
        return json_response({"dry_run": True, "valid": len(prepared.records)})
    report = iv.upsert(prepared, principal=principal)
    return json_response(report.to_dict(ids=len(prepared.records) <= 1000))


@router.post("/imports/pnrr", summary="Import PNRR projects (Italia Domani open data CSV)")
def import_pnrr_files(
    file: Annotated[UploadFile, File(description="Projects CSV, or the joined file")],
    authorization: Authorization = None,
    localisation: Annotated[
        UploadFile | None, File(description="Localisation CSV (joined to file by CUP)")
    ] = None,
    dry_run: Annotated[bool, Form(description="read and validate only")] = False,
):
    """All-or-nothing upsert by CUP; the report counts rows new/updated/unchanged/skipped."""
    from geo.interventions.pnrr import import_pnrr

    principal = authenticate(authorization)
    limit = int(get_settings().max_upload_mb * 1024 * 1024)
    data = []
    for up in (file, localisation):
        raw = up.file.read(limit + 1) if up is not None else None
        if raw is not None and len(raw) > limit:
            raise PayloadTooLarge(f"file larger than {get_settings().max_upload_mb} MB")
        data.append(raw)
    report = import_pnrr(data[0], data[1], principal=principal, dry_run=dry_run)
    return json_response(report.to_dict(ids=report.pnrr.table.frame.shape[0] <= 1000))


@router.get("/stats/interventions", summary="Interventions aggregated by comune, zona, …")
def stats(
    by: Annotated[str, Query(description=" | ".join(GROUPINGS))] = "comune",
    f: Annotated[str, Query(description="json or csv")] = "json",
    source: Annotated[str | None, Query(description="documented, pnrr, …")] = None,
    mission: Annotated[str | None, Query(description="M1 … M6")] = None,
    amount: Annotated[str, Query(description="total (amount_eur) or pnrr")] = "total",
):
    result = intervention_stats(by, source=source, mission=mission, amount=amount)
    if f == "csv":
        return csv_response(result["groups"], f"interventions_by_{by}.csv")
    if f != "json":
        raise InvalidParameter("f", "use json or csv")
    return json_response(result)
