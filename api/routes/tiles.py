"""OGC API – Tiles routes: tile matrix sets, tilesets of each collection, vector tiles.

Parse the address → :mod:`geo.ogc.tiles` → bytes. Handlers are sync (threadpool): a tile
is a store query plus CPU work. The OGC response cache in front (``api.ogc_cache``) keeps
200 tiles by data version; a conditional request is answered 304 before any encoding.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from api.ogc_params import Collection, ogc_request
from geo.ogc import OgcRequest
from geo.ogc import tiles as T
from geo.ogc.http import CACHE_CONTROL, http_date

router = APIRouter(tags=["OGC API – Tiles"])
Req = Annotated[OgcRequest, Depends(ogc_request)]
TmsId = Annotated[
    str,
    Path(alias="tileMatrixSetId", description="Tile matrix set: WebMercatorQuad or WorldCRS84Quad"),
]

_JSON_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
    404: {
        "description": "Not found",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}  # fmt: skip


def _json(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


@router.get("/tileMatrixSets", summary="Tile matrix sets offered", responses=_JSON_OK)
def tile_matrix_sets(req: Req) -> Response:
    return _json(T.tile_matrix_sets_list(req.url))


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="One tile matrix set", responses=_JSON_OK)
def tile_matrix_set(tms_id: TmsId) -> Response:
    return _json(T.tile_matrix_set_document(tms_id))


@router.get(
    "/collections/{collectionId}/tiles", summary="Tilesets of a collection", responses=_JSON_OK
)
def collection_tilesets(req: Req, provider: Collection) -> Response:
    return _json(T.tilesets(provider, req.url))


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}",
    summary="Tileset metadata of a collection",
    responses=_JSON_OK,
)
def collection_tileset(req: Req, provider: Collection, tms_id: TmsId) -> Response:
    return _json(T.tileset(provider, tms_id, req.url))


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A vector tile (Mapbox Vector Tile) of a collection",
    description="204 when the tile holds no feature. ETag from the data version and the "
    "tile's address; 304 on If-None-Match.",
    response_class=Response,
    responses={
        200: {"description": "The tile", "content": {T.MVT: {"schema": {"type": "string",
                                                                          "format": "binary"}}}},
        204: {"description": "Empty tile"},
        304: {"description": "Not modified"},
        400: {"description": "Not a tile address", "content": {"application/json": {}}},
        404: {"description": "No such collection, tile matrix set or tile",
              "content": {"application/json": {}}},
    },
)  # fmt: skip
def tile(
    request: Request,
    provider: Collection,
    tms_id: TmsId,
    z: Annotated[str, Path(alias="tileMatrix", description="Zoom level")],
    row: Annotated[str, Path(alias="tileRow", description="Row (from the top)")],
    col: Annotated[str, Path(alias="tileCol", description="Column (from the left)")],
) -> Response:
    return tile_response(provider, tms_id, z, row, col, request.headers.get("if-none-match"))


def tile_response(
    provider: Any, tms_id: str, z: str, row: str, col: str, inm: str | None
) -> Response:
    """The tile, 204 or 304 (sync: a store query and encoding; also ``api.ogc_lane``'s)."""
    address = T.TileAddress.parse(tms_id, z, row, col)
    etag = T.tile_etag(provider.version(), address)
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(provider.last_modified()),
        "Cache-Control": CACHE_CONTROL,
        "Access-Control-Expose-Headers": "ETag",
    }
    if inm is not None and etag in (t.strip().removeprefix("W/") for t in inm.split(",")):
        return Response(status_code=304, headers=headers)
    body = T.render_tile(provider, address)
    if body is None:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=T.MVT, headers=headers)
