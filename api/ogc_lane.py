"""A short lane for the hottest reads: ``/collections/{id}/items``, ``…/items/{fid}`` and
the vector tiles ``…/tiles/{tms}/{z}/{y}/{x}``.

Through FastAPI these requests cost ~3 ms of CPU before and after the ~1 ms the service
needs: routing over every route of the app, dependency solving, and one threadpool hop per
synchronous dependency (the collection, the filter, sortby, properties: five per page).
The lane answers the same requests with the same functions — the route's own dependency
functions called as plain functions, then ``OgcService.items``/``item`` — in **one**
threadpool hop (``api.offload``; a page's query is cancelled if its client disconnects
first), and sends the same ``Response``.

It only takes requests whose every parameter is one it parses exactly as FastAPI would;
anything else (an unknown or repeated parameter, a property filter, ``simplify``, a value
FastAPI would have to coerce, and every error) goes on to the full application, which
answers as before (so error bodies, HTML error pages and their status codes stay in one
place, ``api.errors``). It sits innermost, inside CORS, gzip and the response cache, so it
changes nothing of what those add. The response cache runs the lane's :meth:`~FeaturesLane.plan`
itself (``api.ogc_cache``: version, lookup and answer in the same hop); the lane's own
``__call__`` answers what reaches it otherwise (an app without that cache) and sends the
non-200 answers the cache computed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.offload import replaying, run_abandonable, run_sync
from api.ogc_cache import ANSWER, DECLINED
from api.ogc_params import (
    bbox,
    bbox_crs,
    collection,
    cql_filter,
    crs,
    datetime_range,
    ogc_request_of,
    properties,
    sortby,
)
from api.query import query_pairs
from api.routes.ogc import ogc_response
from api.routes.tiles import tile_response
from geo.crs import CRS84
from geo.errors import GeoError
from geo.ogc import ItemsRequest, OgcService
from geo.ogc import params as P
from geo.ogc import tiles as T
from geo.ogc.registry import FeatureQuery
from geo.settings import get_settings
from geo.store import held_connections

_PATH = re.compile(r"/collections/([^/]+)/items(?:/([^/]+))?")
_TILE = re.compile(r"/collections/([^/]+)/tiles/([^/]+)/([^/]+)/([^/]+)/([^/]+)")
#: What the lane parses itself; any other parameter sends the request to the full app.
_ITEMS = P.ITEMS_PARAMETERS - {"simplify"}
_ITEM = P.ITEM_PARAMETERS - {"simplify"}
_DIGITS = re.compile(r"[0-9]{1,9}")
_FORMATS = (None, "json", "html")
_FILTER_LANGS = (None, "cql2-text", "cql2-json")
#: The parameters of a page that can be read on the event loop (see _plan_items).
_ON_THE_LOOP = {"f", "bbox", "limit", "offset", "filter", "filter-lang"}
#: Longer filters are parsed, and their statements built, in a thread.
LOOP_FILTER_CHARS = 512
_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True)
class Plan:
    """A request the lane takes: ``run()`` in the threadpool makes its ``Response`` (or
    raises: then the full application answers). ``abandonable``: worth cancelling when
    the client disconnects (a page or a tile; not one row by key)."""

    run: Callable[[], Response]
    abandonable: bool
    #: On the event loop, before ``run``: reads what ``run`` needs asynchronously (then
    #: ``run`` may be called on the loop, under ``geo.store.on_the_loop``); False: it could
    #: not, ``run`` goes to the threadpool.
    prefetch: Callable[[], Awaitable[bool]] | None = None


class FeaturesLane:
    """ASGI middleware: items pages, single features and tiles in one threadpool hop."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ready = scope.get(ANSWER)
        if ready is not None:  # computed by the response cache's fast path
            await ready(scope, receive, send)
            return
        plan = self.plan(scope)
        if plan is None:
            await self.app(scope, receive, send)
            return
        seen: list[Message] = []
        try:
            if plan.abandonable:
                response = await run_abandonable(receive, seen, held, plan.run)
            else:
                response = await run_sync(held, plan.run)
        except Exception:  # declined, or an error: the full app answers it (api.errors)
            if any(x["type"] == "http.disconnect" for x in seen):
                return  # the client has gone (and its query was cancelled): nobody to answer
            await self.app(scope, replaying(seen, receive), send)
            return
        await response(scope, receive, send)

    def plan(self, scope: Scope) -> Plan | None:
        """On the event loop (parsing only): how the lane answers this request, or None
        when the full application does."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get(DECLINED):
            return None
        path = scope["path"]
        m = _PATH.fullmatch(path)
        t = _TILE.fullmatch(path) if m is None else None
        service: OgcService | None = getattr(scope["app"].state, "ogc_service", None)
        if (m is None and t is None) or service is None:
            return None
        if t is not None:  # a low-zoom tile may take seconds: abandoned with its client
            inm = Headers(scope=scope).get("if-none-match")
            # The tile ST_AsMVT encodes can be read on the event loop (PostgreSQL):
            # SqlCollection.prefetch_tile.
            ahead = functools.partial(_prefetch_tile, service, *t.groups())
            run = functools.partial(_tile, *t.groups(), inm)
            return Plan(run, abandonable=True, prefetch=ahead)
        return _plan_items(scope, service, m.group(1), m.group(2))


def held(fn: Callable[[], Response]) -> Response:
    """``fn()`` with one pooled connection per engine for all its reads."""
    with held_connections():
        return fn()


def _plan_items(scope: Scope, service: OgcService, cid: str, fid: str | None) -> Plan | None:
    pairs = list(query_pairs(scope["query_string"]))
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= (_ITEM if fid else _ITEMS):
        return None
    f = params.get("f")
    if f not in _FORMATS or params.get("filter-lang") not in _FILTER_LANGS:
        return None
    skip = params.get("skipGeometry", "false")
    limit, offset = params.get("limit", "10"), params.get("offset", "0")
    if skip not in _BOOLS or not (_DIGITS.fullmatch(limit) and _DIGITS.fullmatch(offset)):
        return None
    if int(limit) < 1:
        return None
    req = ogc_request_of(scope, pairs, f)
    if fid is not None:  # one row by primary key: nothing worth abandoning
        # The feature as the store encodes it (no crs, properties… to apply) can be read on
        # the event loop (PostgreSQL, SQLite): SqlCollection.prefetch_by_id.
        canonical = params.keys() <= {"f"} and req.fmt == "json"
        ahead = functools.partial(_prefetch_item, service, cid, fid) if canonical else None
        run = functools.partial(_item, service, req, cid, fid, params)
        return Plan(run, abandonable=False, prefetch=ahead)
    # A page may run a long filter: given up if the client disconnects meanwhile. A map's
    # box and a short CQL2 filter can be read on the event loop (PostgreSQL; SQLite
    # within its budget):
    # prefetch_page (parsing and building the statements of a filter of LOOP_FILTER_CHARS
    # costs ~0.1 ms; longer ones are parsed in a thread).
    boxed = ("bbox" in params or "filter" in params) and params.keys() <= _ON_THE_LOOP
    if len(params.get("filter", "")) > LOOP_FILTER_CHARS:
        boxed = False
    ahead = functools.partial(_prefetch_items, service, cid, params) if boxed else None
    run = functools.partial(_items, service, req, cid, params)
    return Plan(run, abandonable=True, prefetch=ahead if req.fmt == "json" else None)


def _item(service: OgcService, req: Any, cid: str, fid: str, params: dict[str, str]) -> Response:
    """The route ``getFeature``, its dependencies in FastAPI's order."""
    provider = collection(cid)
    crs_ = _run(crs(params.get("crs")))
    props = properties(provider, params.get("properties"))
    return ogc_response(
        service.item(
            req,
            provider.id,
            fid,
            crs=crs_,
            properties=props,
            skip_geometry=_BOOLS[params.get("skipGeometry", "false")],
        )
    )


async def _prefetch_item(service: OgcService, cid: str, fid: str) -> bool:
    """The feature and the store's revisions read on the event loop, when its collection
    (as last registered: the plan checks it is still current) can."""
    ahead = getattr(service.registry.peek(cid), "prefetch_by_id", None)
    return ahead is not None and bool(await ahead(fid))


async def _prefetch_tile(
    service: OgcService, cid: str, tms: str, z: str, row: str, col: str
) -> bool:
    """The tile and the store's revisions read on the event loop, when its collection (as
    last registered) can; an address ``_tile`` refuses is left to it."""
    provider = service.registry.peek(cid)
    if provider is None or not hasattr(provider, "prefetch_tile"):
        return False
    try:
        address = T.TileAddress.parse(tms, z, row, col)
    except GeoError:
        return False
    return await T.prefetch_tile(provider, address)


async def _prefetch_items(service: OgcService, cid: str, params: dict[str, str]) -> bool:
    """A plain box's page and count read on the event loop, when its collection can: the
    query ``_items`` will build (``FeatureQuery`` of the same values), as the service runs
    it (its count limit)."""
    provider = service.registry.peek(cid)
    ahead = getattr(provider, "prefetch_page", None)
    if ahead is None or not provider.pages_on_the_loop():  # type: ignore[union-attr]
        return False  # not parsed twice: the thread's parse is the one that counts
    q = FeatureQuery(
        bbox=_run(bbox(params.get("bbox"), CRS84)),
        filter=cql_filter(provider, params.get("filter"), params.get("filter-lang"), None),  # type: ignore[arg-type]
        properties_eq={},
        limit=P.parse_limit(int(params.get("limit", P.DEFAULT_LIMIT))),
        offset=int(params.get("offset", 0)),
        count_limit=get_settings().count_limit or None,
    )
    return bool(await ahead(q))


def _items(service: OgcService, req: Any, cid: str, params: dict[str, str]) -> Response:
    """The route ``getFeatures``, its dependencies in FastAPI's order."""
    provider = collection(cid)
    in_crs = _run(bbox_crs(params.get("bbox-crs")))
    bbox_ = _run(bbox(params.get("bbox"), in_crs))
    datetime_ = _run(datetime_range(params.get("datetime")))
    crs_ = _run(crs(params.get("crs")))
    filter_ = cql_filter(
        provider,
        params.get("filter"),
        params.get("filter-lang"),
        params.get("filter-crs"),  # type: ignore[arg-type]
    )
    sortby_ = sortby(provider, params.get("sortby"))
    properties_ = properties(provider, params.get("properties"))
    q = FeatureQuery(
        bbox=bbox_,
        datetime_range=datetime_,
        filter=filter_,
        properties_eq={},
        sortby=sortby_,
        properties=properties_,
        skip_geometry=_BOOLS[params.get("skipGeometry", "false")],
        limit=P.parse_limit(int(params.get("limit", P.DEFAULT_LIMIT))),
        offset=int(params.get("offset", 0)),
    )
    return ogc_response(service.items(req, provider.id, ItemsRequest(query=q, crs=crs_)))


def _tile(cid: str, tms: str, z: str, row: str, col: str, inm: str | None) -> Response:
    """The route ``tile``: the collection, then the tile (``api.routes.tiles``)."""
    return tile_response(collection(cid), tms, z, row, col, inm)


def _run(coro: Any) -> Any:
    """Run an ``async def`` dependency that never awaits (pure parsing) to its value."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the dependency awaited")  # pragma: no cover - they are pure
