"""Green-network layers over HTTP: upload, list, rename, delete, metrics, membership.

Features of each layer are served by the OGC routes as ``/collections/{id}``; this router
only manages layers. Writes need a bearer token: any valid token may upload, renaming
and deleting need the admin token (a layer is metropolitan, not one comune's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Header, Query, Request, Response, UploadFile

from api.responses import csv_response, json_response
from geo import layers as lay
from geo.auth import authenticate
from geo.errors import Forbidden, InvalidParameter, PayloadTooLarge
from geo.layers.membership import membership
from geo.layers.overlay import csv_rows
from geo.layers.reading import MB, read_upload

lay.sync_registry()

router = APIRouter(tags=["layers"])
Authorization = Annotated[str | None, Header(description="Bearer token")]


def _links(layer_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"/layers/{layer_id}"},
        {"rel": "collection", "href": f"/collections/{layer_id}"},
        {"rel": "items", "href": f"/collections/{layer_id}/items"},
        {"rel": "metrics", "href": f"/layers/{layer_id}/metrics?by=comune"},
    ]


def _out(rec: dict[str, Any]) -> dict[str, Any]:
    return {**rec, "links": _links(rec["id"])}


def _admin(authorization: str | None) -> None:
    if authenticate(authorization).role != "admin":
        raise Forbidden("renaming or deleting a layer needs the admin token")


async def _read_limited(file: UploadFile, limit_mb: float) -> bytes:
    """The upload's bytes, refused as soon as they pass the limit."""
    limit = int(limit_mb * MB)
    chunks, size = [], 0
    while chunk := await file.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"{file.filename}: larger than the upload limit of {limit_mb:g} MB "
                "(CMM_GEO_MAX_UPLOAD_MB)",
                parameter="file",
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/layers", status_code=201, summary="Upload a layer (GeoJSON, GPKG, zipped SHP)")
async def upload_layer(
    request: Request,
    file: Annotated[UploadFile, File(description="GeoJSON, GeoPackage or zipped Shapefile")],
    name: Annotated[str | None, Form(description="Name (default: from the file)")] = None,
    crs: Annotated[str | None, Form(description="CRS override, e.g. EPSG:3003")] = None,
    layer: Annotated[str | None, Form(description="Layer of a multi-layer file")] = None,
    authorization: Authorization = None,
):
    authenticate(authorization)
    settings = request.app.state.settings
    data = await _read_limited(file, settings.max_upload_mb)
    parsed = read_upload(
        data, file.filename or "upload", crs=crs or None, layer=layer or None, settings=settings
    )
    rec = lay.add_layer(parsed, name or None)
    return json_response(_out(rec), status_code=201, headers={"Location": f"/layers/{rec['id']}"})


@router.get("/layers", summary="Every uploaded layer")
def list_layers():
    lay.sync_registry()
    items = [_out(r) for r in lay.list_layers()]
    return json_response({"count": len(items), "layers": items})


@router.get("/layers/{layer_id}", summary="One layer with its upload report")
def get_layer(layer_id: str):
    return json_response(_out(lay.get_layer(layer_id)))


@router.patch("/layers/{layer_id}", summary="Rename a layer (admin)")
def rename_layer(
    layer_id: str,
    body: Annotated[dict[str, Any], Body(examples=[{"name": "Parco del Roccolo"}])],
    authorization: Authorization = None,
):
    _admin(authorization)
    unknown = sorted(set(body) - {"name"})
    if unknown or not isinstance(body.get("name"), str):
        raise InvalidParameter(
            "name", 'send {"name": "…"}' + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return json_response(_out(lay.rename_layer(layer_id, body["name"])))


@router.delete("/layers/{layer_id}", status_code=204, summary="Delete a layer (admin)")
def delete_layer(layer_id: str, authorization: Authorization = None):
    _admin(authorization)
    lay.delete_layer(layer_id)
    return Response(status_code=204)


@router.get("/layers/{layer_id}/metrics", summary="Cover, length or count per unit")
def layer_metrics(
    layer_id: str,
    by: Annotated[str, Query(description="comune | zona | unione")] = "comune",
    within_m: Annotated[
        float, Query(description="Interventions within this many metres of the layer")
    ] = 0.0,
    f: Annotated[str, Query(description="json | csv")] = "json",
):
    if f not in ("json", "csv"):
        raise InvalidParameter("f", "use json or csv")
    result = lay.metrics(layer_id, by, within_m)
    if f == "csv":
        return csv_response(csv_rows(result), f"{layer_id}-metrics-{by}.csv")
    return json_response(result)


@router.get(
    "/layers/{layer_id}/membership-check",
    summary="Check a membership list (park, PLIS, Naviglio) against the layer's geometry",
)
def membership_check(
    layer_id: str,
    name: Annotated[str, Query(description="Entry of /green-network/membership")],
):
    return json_response(lay.membership_check(layer_id, name))


@router.get("/green-network/membership", summary="Which comuni each park, PLIS, Naviglio involves")
def green_network_membership():
    rows = list(membership())
    return json_response(
        {
            "count": len(rows),
            "status": "to be verified: a seed from public sources, not ground truth",
            "membership": rows,
        }
    )
