"""OGC API – Features query parameters as small typed FastAPI dependencies.

Each dependency declares one parameter (so it appears in the OpenAPI document) and
returns the parsed value; parsing itself lives in :mod:`geo.ogc.params`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from starlette.datastructures import URL
from starlette.types import Scope

from api.security import public_base_url
from geo.crs import SUPPORTED_URIS
from geo.ogc import OgcRequest, negotiate
from geo.ogc import params as P
from geo.ogc.cql import GEOMETRY_PROPERTY, CqlFilter, parse_filter
from geo.ogc.http import negotiate_language
from geo.ogc.registry import CollectionProvider, registry
from geo.ogc.service import unknown_collection

_CRS_HELP = "One of: CRS84 (default), " + ", ".join(u for u in SUPPORTED_URIS[1:])

Format = Annotated[
    Literal["json", "html"] | None,
    Query(description="Output format; default from the Accept header, else JSON."),
]


async def ogc_request(request: Request, f: Format = None) -> OgcRequest:
    """The framework-free view of the request (absolute base URL, query, format)."""
    return ogc_request_of(request.scope, list(request.query_params.multi_items()), f)


#: A path Starlette's ``URL`` gives back unchanged (it escapes ``?#\``, and ``urlsplit``
#: drops tabs and newlines and reads a leading ``//`` as a host).
_PLAIN_PATH = re.compile(r"/(?!/)[^?#\\\t\r\n]*")


def ogc_request_of(scope: Scope, query: list[tuple[str, str]], f: str | None) -> OgcRequest:
    """:func:`ogc_request` of an ASGI scope and its parsed query (the short lane's way: no
    ``Request``, and no URL built and split again for a path that needs neither)."""
    settings = scope["app"].state.settings
    path = scope["path"]
    if _PLAIN_PATH.fullmatch(path) is None:
        path = URL(scope=scope).path
    accept = accept_language = None
    for key, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
        if key == b"accept" and accept is None:
            accept = value.decode("latin-1")
        elif key == b"accept-language" and accept_language is None:
            accept_language = value.decode("latin-1")
    return OgcRequest(
        base_url=public_base_url(scope, settings),  # never an arbitrary Host header
        path=path,
        query=query,
        fmt=negotiate(f, accept),
        lang=negotiate_language(accept_language),
    )


async def meta_parameters(request: Request) -> None:
    """Only ``f`` is accepted on the metadata resources."""
    P.check_parameters(request.query_params.keys(), P.META_PARAMETERS)


def collection(
    collection_id: Annotated[
        str, Path(alias="collectionId", description="Collection id, e.g. comuni")
    ],
) -> CollectionProvider:
    """The registered provider of ``collectionId`` (404 when unknown).

    Sync on purpose, like every dependency that may read the store or parse a filter:
    FastAPI runs it in the threadpool, so the event loop never waits for either.
    """
    p = registry.get(collection_id)
    if p is None:
        raise unknown_collection(collection_id, registry.ids())
    return p


Collection = Annotated[CollectionProvider, Depends(collection)]


async def crs(
    value: Annotated[
        str | None, Query(alias="crs", description="CRS of the output geometries. " + _CRS_HELP)
    ] = None,
) -> str:
    """``crs``: output CRS as OGC URI."""
    return P.parse_crs_param(value, "crs")


async def bbox_crs(
    value: Annotated[
        str | None, Query(alias="bbox-crs", description="CRS of `bbox`. " + _CRS_HELP)
    ] = None,
) -> str:
    """``bbox-crs``: CRS of the bbox."""
    return P.parse_crs_param(value, "bbox-crs")


async def bbox(
    value: Annotated[
        str | None,
        Query(
            alias="bbox",
            description="minx,miny,maxx,maxy in `bbox-crs` axis order (CRS84: lon,lat).",
            examples=["9.1,45.4,9.3,45.5"],
        ),
    ] = None,
    in_crs: str = Depends(bbox_crs),
) -> tuple[float, float, float, float] | None:
    """``bbox`` converted to CRS84."""
    return P.parse_bbox(value, in_crs)


async def datetime_range(
    value: Annotated[
        str | None,
        Query(alias="datetime", description="Instant or interval (RFC 3339, `..` open)."),
    ] = None,
) -> tuple[datetime | None, datetime | None] | None:
    """``datetime`` as (start, end)."""
    return P.parse_datetime(value)


def cql_filter(
    provider: Collection,
    value: Annotated[
        str | None,
        Query(
            alias="filter",
            description="CQL2 filter (text or JSON), e.g. `population > 50000`. Bounded in "
            "length, nesting depth and number of terms (settings CMM_GEO_MAX_FILTER_LENGTH, "
            "_DEPTH, _TERMS): 400 beyond, naming the limit.",
        ),
    ] = None,
    lang: Annotated[
        Literal["cql2-text", "cql2-json"] | None,
        Query(alias="filter-lang", description="Language of `filter` (default cql2-text)."),
    ] = None,
    filter_crs: Annotated[
        str | None,
        Query(alias="filter-crs", description="CRS of geometries in `filter`. " + _CRS_HELP),
    ] = None,
) -> CqlFilter | None:
    """``filter`` + ``filter-lang`` + ``filter-crs``, parsed and checked against queryables."""
    if value is None:
        P.parse_crs_param(filter_crs, "filter-crs")
        return None
    names = [q.name for q in provider.queryables()] + [GEOMETRY_PROPERTY]
    return parse_filter(value, lang, filter_crs, names)


def sortby(
    provider: Collection,
    value: Annotated[
        str | None,
        Query(alias="sortby", description="`+prop` or `-prop`, comma-separated."),
    ] = None,
) -> list[tuple[str, bool]]:
    """``sortby`` as [(property, ascending)] (the queryables listed only when asked)."""
    if not value:
        return []
    return P.parse_sortby(value, [q.name for q in provider.queryables()])


def properties(
    provider: Collection,
    value: Annotated[
        str | None,
        Query(alias="properties", description="Properties to return, comma-separated."),
    ] = None,
) -> list[str] | None:
    """``properties`` to include (the queryables listed only when asked)."""
    if value is None:
        return None
    return P.parse_properties(value, [q.name for q in provider.queryables()])


def property_filters(request: Request, provider: Collection) -> dict[str, str]:
    """``?queryable=value`` filters; any other unknown parameter is a 400 (OGC)."""
    names = {q.name for q in provider.queryables()} | set(provider.extra_parameters)
    keys = list(request.query_params.keys())
    P.check_parameters(keys, P.ITEMS_PARAMETERS | names)
    return {k: request.query_params[k] for k in keys if k in names}


Limit = Annotated[
    int,
    Query(ge=1, description=f"Page size (default 10); above {P.MAX_LIMIT} it is capped."),
]
Offset = Annotated[int, Query(ge=0, description="Number of features to skip.")]
SkipGeometry = Annotated[
    bool, Query(alias="skipGeometry", description="Leave geometries out (attributes only).")
]
Simplify = Annotated[
    float | None,
    Query(
        ge=0,
        le=10_000,
        description="Simplification tolerance in metres (Douglas-Peucker in EPSG:32632, "
        "topology preserved), for maps; omit for exact geometries.",
    ),
]
