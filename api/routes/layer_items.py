"""OGC API – Features Part 4 on every uploaded layer: ``POST …/items``, ``PUT``, ``PATCH``,
``DELETE …/items/{featureId}`` and ``OPTIONS`` on both — the interventions' write path
(:mod:`api.routes.interventions`: who writes is known before a byte of the body is read,
``If-Match`` is checked inside the write's transaction, ``Allow`` says what the caller may
do) over :mod:`geo.layers.editing`.

Registered after the interventions' router, whose paths win. The other collections (the
territory) stay read-only: their writes answer 405 with ``Allow``, their OPTIONS 204.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from api.ogc_params import collection
from api.routes.interventions import (
    GEOJSON,
    Authorization,
    IfMatch,
    _allow,
    _body,
    _caller,
    _check_if_match,
    _feature_response,
    _principal,
)
from api.session import principal_of
from geo.errors import NotFound
from geo.layers import editing
from geo.layers.sql_collection import LayerSqlProvider

router = APIRouter(tags=["layers"])

ITEMS = "/collections/{collectionId}/items"
ITEM = ITEMS + "/{featureId}"
CollectionId = Annotated[
    str, Path(alias="collectionId", description="An uploaded layer (GET /layers lists them)")
]
FeatureId = Annotated[str, Path(alias="featureId", description="Feature id")]
ContentCrs = Annotated[
    str | None,
    Header(
        description="CRS of the geometry sent, e.g. <http://www.opengis.net/def/crs/EPSG/0/"
        "32632> (CRS84 when absent; EPSG:4326 latitude first, 32632, 3003, 7791, 6707 "
        "northing first, 3857)"
    ),
]
READ_ONLY = ["GET", "HEAD", "OPTIONS"]
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}}
_405 = {405: {"description": "The collection is read-only (not an uploaded layer)",
              "content": _JSON_ERROR}}  # fmt: skip


def _body_doc(media: str, what: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": what,
            "content": {media: {"schema": {"type": "object"}}},
        }
    }


def _layer(collection_id: str) -> str | None:
    """The layer's id; None for a read-only collection; NotFound for none (sync: it reads
    the store's registry)."""
    return collection_id if isinstance(collection(collection_id), LayerSqlProvider) else None


def _writable(collection_id: str) -> str:
    """The layer's id; 405 with ``Allow`` for a read-only collection, 404 for none."""
    layer_id = _layer(collection_id)
    if layer_id is None:
        raise HTTPException(
            405,
            detail=f"collection {collection_id!r} is read-only: only uploaded layers "
            "and interventions take writes",
            headers={"Allow": ", ".join(READ_ONLY)},
        )
    return layer_id


@router.options(
    ITEMS,
    summary="Methods the caller may use on a collection's features",
    operation_id="optionsFeatures",
)
def items_options(
    collection_id: CollectionId, request: Request, authorization: Authorization = None
) -> Response:
    """``Allow``: GET, HEAD, OPTIONS for everyone; POST too on an uploaded layer for the
    admin and editors."""
    writable = _layer(collection_id) is not None
    who = _caller(request, authorization) if writable else None
    return _allow([*READ_ONLY, *(["POST"] if who is not None else [])])


@router.options(
    ITEM, summary="Methods the caller may use on one feature", operation_id="optionsFeature"
)
def item_options(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    authorization: Authorization = None,
) -> Response:
    """``Allow``: PUT, PATCH and DELETE too when the caller may write this feature of an
    uploaded layer (the admin, or an editor of every comune it lies in)."""
    layer_id = _layer(collection_id)
    if layer_id is None:
        if collection(collection_id).get(feature_id) is None:
            raise NotFound(
                f"no feature {feature_id[:40]!r} in collection {collection_id!r}",
                parameter="featureId",
            )
        return _allow(READ_ONLY)
    who = _caller(request, authorization)
    writes = ["PUT", "PATCH", "DELETE"] if editing.may_edit(who, layer_id, feature_id) else []
    return _allow([*READ_ONLY, *writes])


@router.post(
    ITEMS,
    status_code=201,
    summary="Add a feature to an uploaded layer (GeoJSON Feature)",
    operation_id="createFeature",
    description="The admin, or an editor of every comune the feature lies in. Properties "
    "are checked against the layer's fields (unknown ones or wrong types: 422); the "
    "geometry is reprojected from Content-Crs, repaired and given the layer's one type.",
    responses=_405,
    openapi_extra=_body_doc(GEOJSON, "A GeoJSON Feature"),
)
async def create_item(
    collection_id: CollectionId,
    request: Request,
    authorization: Authorization = None,
    content_crs: ContentCrs = None,
) -> Response:
    layer_id = await run_in_threadpool(_writable, collection_id)
    principal = await _principal(request, authorization)  # 401 before the body is read
    body = await _body(request)
    written = await run_in_threadpool(
        editing.create_feature, layer_id, body, principal=principal, crs=content_crs
    )
    return _feature_response(
        written.feature,
        201,
        collection_id=layer_id,
        etag=written.etag,
        Location=f"/collections/{layer_id}/items/{written.id}",
    )


async def _update(
    write: Any,
    collection_id: str,
    feature_id: str,
    request: Request,
    authorization: str | None,
    content_crs: str | None,
    if_match: str | None,
) -> Response:
    """Authenticate, read the body, apply ``write`` (replace or merge patch) with
    ``If-Match`` checked inside its transaction; 200 with the new ETag."""
    layer_id = await run_in_threadpool(_writable, collection_id)
    principal = await _principal(request, authorization)
    body = await _body(request)
    written = await run_in_threadpool(
        lambda: write(
            layer_id,
            feature_id,
            body,
            principal=principal,
            crs=content_crs,
            precondition=lambda: _check_if_match(feature_id, if_match, layer_id),
        )
    )
    return _feature_response(written.feature, 200, collection_id=layer_id, etag=written.etag)


@router.put(
    ITEM,
    summary="Replace a feature of an uploaded layer",
    operation_id="replaceFeature",
    description="Fields not sent become null. With If-Match: 412 when the feature changed "
    "since it was read.",
    responses=_405,
    openapi_extra=_body_doc(GEOJSON, "A GeoJSON Feature"),
)
async def replace_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    authorization: Authorization = None,
    content_crs: ContentCrs = None,
    if_match: IfMatch = None,
) -> Response:
    return await _update(editing.replace_feature, collection_id, feature_id, request,
                         authorization, content_crs, if_match)  # fmt: skip


@router.patch(
    ITEM,
    summary="Update parts of a feature of an uploaded layer (merge patch)",
    operation_id="updateFeature",
    description="The properties sent replace the feature's (null clears one); a geometry "
    "sent replaces it. With If-Match: 412 when the feature changed since it was read.",
    responses=_405,
    openapi_extra=_body_doc("application/merge-patch+json", "A JSON merge patch of a Feature"),
)
async def patch_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    authorization: Authorization = None,
    content_crs: ContentCrs = None,
    if_match: IfMatch = None,
) -> Response:
    return await _update(editing.patch_feature, collection_id, feature_id, request,
                         authorization, content_crs, if_match)  # fmt: skip


@router.delete(
    ITEM,
    status_code=204,
    summary="Delete a feature of an uploaded layer",
    responses=_405,
    operation_id="deleteFeature",
)
def delete_item(
    collection_id: CollectionId,
    feature_id: FeatureId,
    request: Request,
    authorization: Authorization = None,
    if_match: IfMatch = None,
) -> Response:
    layer_id = _writable(collection_id)
    principal = principal_of(request, authorization)
    editing.delete_feature(
        layer_id,
        feature_id,
        principal=principal,
        precondition=lambda: _check_if_match(feature_id, if_match, layer_id),
    )
    return Response(status_code=204)
