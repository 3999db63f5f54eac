"""Green-network layers over HTTP: upload, list, rename, delete, metrics, membership.

Features of each layer are served by the OGC routes as ``/collections/{id}``; this router
only manages layers. Writes need a bearer token or a signed-in session (cookie +
``X-CSRF-Token``): any editor or admin may upload (the uploader is recorded as the layer's
owner); renaming and deleting are for the admin, or the editor who uploaded the layer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.responses import csv_response, json_response
from api.session import principal_of, write_principal
from api.uploads import form_body, read_form
from geo import layers as lay
from geo.errors import Forbidden, InvalidParameter
from geo.layers.membership import membership
from geo.layers.overlay import csv_rows
from geo.layers.reading import read_upload

# The stored layers join the collections when the registry is first listed (see
# geo.layers.collection): not here, so the service starts while the database is down.

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


def _manager(request: Request, authorization: str | None, layer_id: str) -> None:
    """The admin, or the editor who uploaded the layer (404 for an unknown layer)."""
    principal = principal_of(request, authorization)
    if not principal.may_manage(lay.get_layer(layer_id).get("owner")):
        raise Forbidden("renaming or deleting a layer needs the admin or its uploader")


_UPLOAD_FORM = form_body(
    file=("file", "GeoJSON, GeoPackage or zipped Shapefile"),
    name=("string", "Name (default: from the file)"),
    crs=("string", "CRS override, e.g. EPSG:3003"),
    layer=("string", "Layer of a multi-layer file"),
)


@router.post(
    "/layers",
    status_code=201,
    summary="Upload a layer (GeoJSON, GPKG, zipped SHP)",
    openapi_extra=_UPLOAD_FORM,
)
async def upload_layer(request: Request, authorization: Authorization = None):
    """Authenticate first, then read the form within the size and time limits, then store."""
    principal = await write_principal(request, authorization)
    settings = request.app.state.settings
    form = await read_form(
        request,
        files=("file",),
        required=("file",),
        fields=("name", "crs", "layer"),
        limit_mb=settings.max_upload_mb,
        timeout_s=settings.body_timeout_s,
    )
    up, name = form.files["file"], form.text("name")

    def store() -> dict[str, Any]:
        parsed = read_upload(
            up.data, up.filename, crs=form.text("crs"), layer=form.text("layer"), settings=settings
        )
        return lay.add_layer(parsed, name, owner=principal.owner)

    rec = await run_in_threadpool(store)
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
    request: Request,
    body: Annotated[dict[str, Any], Body(examples=[{"name": "Parco del Roccolo"}])],
    authorization: Authorization = None,
):
    _manager(request, authorization, layer_id)
    unknown = sorted(set(body) - {"name"})
    if unknown or not isinstance(body.get("name"), str):
        raise InvalidParameter(
            "name", 'send {"name": "…"}' + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return json_response(_out(lay.rename_layer(layer_id, body["name"])))


@router.delete("/layers/{layer_id}", status_code=204, summary="Delete a layer (admin)")
def delete_layer(layer_id: str, request: Request, authorization: Authorization = None):
    _manager(request, authorization, layer_id)
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
