"""Downloads of a collection's features, filtered as the OGC items are (GeoJSON, CSV, GPKG).

``/downloads/{collectionId}?f=csv&programme=…&filter=…`` takes the same property filters,
``filter`` (CQL2), ``bbox`` and ``sortby`` as ``/collections/{collectionId}/items`` and
answers every matching feature as a file attachment, so what the map application shows
is what the user downloads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.datastructures import QueryParams

from geo.errors import InvalidParameter, NotFound
from geo.ogc import params as P
from geo.ogc.cql import GEOMETRY_PROPERTY, parse_filter
from geo.ogc.registry import CollectionProvider, FeatureQuery, registry
from geo.settings import get_settings
from geo.webapp import export

router = APIRouter(tags=["downloads"])

#: Query parameters of a download besides the collection's queryables.
PARAMETERS = frozenset({"f", "bbox", "bbox-crs", "filter", "filter-lang", "filter-crs", "sortby"})


def feature_query(
    provider: CollectionProvider, qp: QueryParams, allowed: frozenset[str], limit: int
) -> FeatureQuery:
    """The query of ``qp`` as the items API reads it: property filters (queryables and the
    provider's extra parameters), ``filter`` (CQL2), ``bbox``, ``sortby``; any other
    parameter outside ``allowed`` is a 400. Names in ``allowed`` belong to the route (a
    print's ``title``), never to a property filter."""
    queryables = [q.name for q in provider.queryables()]
    names = set(queryables) | set(provider.extra_parameters)
    P.check_parameters(qp.keys(), allowed | names)
    text = qp.get("filter")
    lang = qp.get("filter-lang")
    if lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidParameter("filter-lang", "use cql2-text or cql2-json")
    return FeatureQuery(
        bbox=P.parse_bbox(qp.get("bbox"), P.parse_crs_param(qp.get("bbox-crs"), "bbox-crs")),
        filter=parse_filter(text, lang, qp.get("filter-crs"), [*queryables, GEOMETRY_PROPERTY])
        if text
        else None,
        properties_eq={k: qp[k] for k in qp if k in names and k not in allowed},
        sortby=P.parse_sortby(qp.get("sortby"), queryables),
        limit=limit,
    )


@router.get(
    "/downloads/{collectionId}",
    summary="Download a collection's features (filtered) as GeoJSON, CSV or GeoPackage",
    responses={
        200: {
            "description": "The file",
            "content": {media: {} for media, _ in export.FORMATS.values()},
        }
    },
)
def download(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId", description="e.g. interventions")],
    f: Annotated[str, Query(description="geojson | csv | gpkg")] = "geojson",
):
    if f not in export.FORMATS:
        raise InvalidParameter("f", "use geojson, csv or gpkg")
    provider = registry.get(collection_id)
    if provider is None:
        raise NotFound(f"no collection {collection_id!r}", parameter="collectionId")
    limit = get_settings().max_features
    query = feature_query(provider, request.query_params, PARAMETERS, limit)
    result = provider.query(query)
    if result.number_matched > limit:
        raise InvalidParameter(
            "filter",
            f"{result.number_matched} features match; a download holds at most {limit} "
            "(CMM_GEO_MAX_FEATURES): narrow the filters",
        )
    body, media, filename = export.encode(result.features, f, collection_id)
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
