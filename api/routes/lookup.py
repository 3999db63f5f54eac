"""Find my zone over HTTP: by name or code, by point, or a batch of points."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.responses import json_response
from geo.errors import InvalidParameter, PayloadTooLarge
from geo.territory import lookup
from geo.territory.batch import read_csv_points

router = APIRouter(tags=["lookup"])

MAX_BATCH_BYTES = 50 * 1024 * 1024


@router.get(
    "/lookup",
    summary="A comune with its zone and union, by name/code (q) or by point",
    description=(
        "Give exactly one of: `q` (name, ISTAT or cadastral code); `lon`+`lat` (CRS84); "
        "`x`+`y` with `crs` (EPSG:32632, EPSG:3003, EPSG:7791, EPSG:4326 as lat,lon, "
        "EPSG:3857, or CRS84). A point on a shared border goes to the comune with the lowest "
        "ISTAT code."
    ),
)
async def get_lookup(
    q: Annotated[str | None, Query(description="Name, ISTAT code or cadastral code")] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    x: Annotated[float | None, Query()] = None,
    y: Annotated[float | None, Query()] = None,
    crs: Annotated[str | None, Query(description="CRS of x/y")] = None,
):
    if q is not None:
        if any(v is not None for v in (lon, lat, x, y)):
            raise InvalidParameter("q", "give either q or a point, not both")
        return json_response(lookup.find_comune(q))
    if lon is not None or lat is not None:
        if lon is None or lat is None:
            raise InvalidParameter("lat" if lat is None else "lon", "lon and lat go together")
        if x is not None or y is not None:
            raise InvalidParameter("x", "give lon/lat or x/y, not both")
        return json_response(lookup.locate_point(lon, lat, crs or "CRS84"))
    if x is not None or y is not None:
        if x is None or y is None:
            raise InvalidParameter("y" if y is None else "x", "x and y go together")
        if crs is None:
            raise InvalidParameter("crs", "x/y need a crs, e.g. EPSG:32632")
        return json_response(lookup.locate_point(x, y, crs))
    raise InvalidParameter("q", "give q, or lon and lat, or x, y and crs")


@router.post(
    "/lookup",
    summary="Batch: locate many points (CSV or GeoJSON) in one request",
    description=(
        "Body: CSV (`text/csv`, header with lon,lat or x,y and optional id) or a GeoJSON "
        "FeatureCollection of Points (`application/geo+json`), raw or as multipart field "
        "`file`. `crs` applies to all points (default CRS84, or the GeoJSON's crs member). "
        "`f=csv` answers CSV."
    ),
)
async def post_lookup(
    request: Request,
    crs: Annotated[str | None, Query(description="CRS of the points")] = None,
    f: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
):
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    filename = ""
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidParameter("file", "multipart body needs a file field named 'file'")
        body = await upload.read()
        filename = (upload.filename or "").lower()
        content_type = (upload.content_type or "").lower()
    else:
        body = await request.body()
    if len(body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"batch body over {MAX_BATCH_BYTES // 2**20} MiB")
    if not body:
        raise InvalidParameter("body", "empty body: send CSV or GeoJSON points")
    if "json" in content_type or filename.endswith((".geojson", ".json")):
        fmt = "geojson"
    elif "csv" in content_type or "text/plain" in content_type or filename.endswith(".csv"):
        fmt = "csv"
    else:
        fmt = "geojson" if body.lstrip()[:1] == b"{" else "csv"
    # Parsing, locating and encoding are CPU work: off the event loop.
    data = await run_in_threadpool(_batch, body, fmt, crs, f)
    if f == "csv":
        return Response(
            data,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="lookup.csv"'},
        )
    return Response(data, media_type="application/json")


def _batch(body: bytes, fmt: str, crs: str | None, f: str) -> bytes:
    """A batch answered column-wise: CSV or JSON bytes."""
    if fmt == "csv":
        xs, ys, ids = read_csv_points(body)
        file_crs = None
    else:
        xs, ys, ids, file_crs = lookup.read_points(body, fmt)
    answer = lookup.locate_columns(xs, ys, crs or file_crs, ids=ids)
    return answer.csv_bytes() if f == "csv" else answer.json_bytes()
