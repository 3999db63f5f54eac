"""A response cache for OGC GETs in front of FastAPI routing (pure ASGI).

Responses of the OGC resources are stored as pre-encoded (and pre-gzipped) bytes keyed
by (data version, host, path, query, negotiated format), from the second time a key is
asked for (see :class:`ResponseCache`). A hit is answered without
entering FastAPI: conditional requests (If-None-Match / If-Modified-Since → 304), gzip
and CORS headers are handled here, so a hit costs a dictionary lookup and one send.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.offload import replaying, run_abandonable, run_sync
from api.query import query_pairs
from api.security import has_filter, over_budget
from geo.errors import GeoError
from geo.ogc import negotiate
from geo.ogc.http import negotiate_language
from geo.store import WouldBlock, held_connections, on_the_loop, request_revisions

log = logging.getLogger(__name__)
_UNSET = object()

#: Scope keys between this cache, which runs the short lane's plans itself (``_fast``), and
#: the lane (``api.ogc_lane``): the plan declined or failed (the full application
#: answers), or its answer is ready to be sent.
DECLINED = "cmm_geo.lane_declined"
ANSWER = "cmm_geo.lane_answer"
#: The front door's plan of a request the event loop could not answer: the stack reuses
#: it (not parsed again) and does not try the loop a second time.
PLANNED = "cmm_geo.planned"

#: Headers recomputed per request rather than stored.
_VOLATILE = {
    b"content-length",
    b"content-encoding",
    b"vary",
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-expose-headers",
}
_STRIP_REQUEST = {b"accept-encoding", b"if-none-match", b"if-modified-since"}
GZIP_MIN_BYTES = 1024


@dataclass
class Entry:
    """One cached 200 response."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    gzipped: bytes | None
    etag: bytes
    last_modified: bytes
    cached: bool = False  # held by a ResponseCache (its size then counts the gzip too)
    #: The front door's messages of a 200, built once per variant: (gzipped, the CORS
    #: origin sent) → (start, body). A few per entry: the origins sent are "*" or those
    #: of the settings.
    sent: dict[tuple[bool, bytes | None], tuple[Message, Message]] = field(default_factory=dict)


class ResponseCache:
    """LRU of entries bounded by count and total bytes, admitting a response the second time
    its key is asked for: URLs asked once (random bboxes, ids, filters from a crawler or a
    benchmark) never take memory nor evict the pages people do ask for again (a "doorkeeper"
    of recently seen key hashes, itself bounded)."""

    def __init__(
        self, max_entries: int = 2048, max_bytes: int = 64 * 2**20, seen_keys: int = 16384
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._data: OrderedDict[tuple, Entry] = OrderedDict()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._seen_max = seen_keys

    def admit(self, key: tuple) -> bool:
        """True when ``key`` was asked for recently (then a response to it is worth keeping);
        remembers it otherwise."""
        h = hash(key)
        if h in self._seen:
            del self._seen[h]
            return True
        self._seen[h] = None
        if len(self._seen) > self._seen_max:
            self._seen.popitem(last=False)
        return False

    def get(self, key: tuple) -> Entry | None:
        """The entry of ``key`` (marked as recently used), or None."""
        e = self._data.get(key)
        if e is not None:
            self._data.move_to_end(key)
        return e

    def put(self, key: tuple, e: Entry) -> None:
        """Store an entry, evicting the least recently used ones."""
        cost = len(e.body) + len(e.gzipped or b"")
        if cost > self.max_bytes // 4:
            return
        old = self._data.pop(key, None)
        if old is not None:
            old.cached = False
            self.size -= len(old.body) + len(old.gzipped or b"")
        self._data[key] = e
        e.cached = True
        self.size += cost
        while len(self._data) > self.max_entries or self.size > self.max_bytes:
            _, ev = self._data.popitem(last=False)
            ev.cached = False
            self.size -= len(ev.body) + len(ev.gzipped or b"")

    def clear(self) -> None:
        """Drop everything."""
        for e in self._data.values():
            e.cached = False
        self._data.clear()
        self.size = 0


def _etag_matches(header: bytes, etag: bytes) -> bool:
    if header.strip() == b"*":
        return True
    for tag in header.split(b","):
        t = tag.strip()
        if t.startswith(b"W/"):
            t = t[2:]
        if t == etag:
            return True
    return False


def _not_modified_since(header: bytes, last_modified: bytes) -> bool:
    try:
        return parsedate_to_datetime(last_modified.decode()) <= parsedate_to_datetime(
            header.decode()
        )
    except (TypeError, ValueError, IndexError):
        return False


class OgcCacheMiddleware:
    """Serve OGC GET/HEAD responses from :class:`ResponseCache`; fill it on misses.

    ``version_of(path)`` returns the data version a path depends on, or None for paths
    that are not cached; it may read the store, so it runs in the threadpool unless
    ``static(path)`` says the path's data needs no store (the territory). Every GET/HEAD
    runs inside :func:`geo.store.request_revisions`: the store's revisions are read at
    most once per request, and the cache key, the ETag and the body agree on them.
    ``cors_origins`` mirrors the CORS settings for cached answers.
    """

    def __init__(
        self,
        app: ASGIApp,
        version_of: Callable[[str], str | None],
        cors_origins: str = "*",
        cache: ResponseCache | None = None,
        base_url: Callable[[Scope], str] | None = None,
        static: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.static = static or (lambda path: False)
        #: The links' base URL of a request (answers embed it, so it is part of the key).
        self.base_url = base_url or (lambda scope: "")
        self.version_of = version_of
        origins = [o.strip() for o in cors_origins.split(",") if o.strip()]
        self.cors_any = "*" in origins
        self.cors_origins = {o.encode() for o in origins}
        self.cache = cache or ResponseCache()
        #: The cache is shared by the event loop and the threads of :meth:`_fast`.
        self._lock = threading.Lock()
        self._lane_app: Any = _UNSET

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        with request_revisions():
            await self._get(scope, receive, send)

    async def _get(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get(ANSWER) is not None:  # the front door's read: the lane sends it
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        static = self.static(path)
        # A hit of a path whose version needs no store (the territory) is answered here,
        # without a thread hop nor parsing; anything else the lane takes, by _fast.
        version = self.version_of(path) if static else None
        key = self._key(scope, version) if version is not None else None
        entry = self._cached(key) if key is not None else None
        if entry is None:
            lane = self._lane()
            planned = None if scope.get(DECLINED) else scope.get(PLANNED)  # declined: as is
            plan = planned or (lane.plan(_plain(scope)) if lane is not None else None)
            if plan is not None:
                await self._fast(scope, receive, send, plan)
                return
        if not static:  # reads the store: never on the event loop
            version = await run_sync(self.version_of, path)
        if version is None:
            await self.app(scope, receive, send)
            return
        req_headers = dict(scope["headers"])
        if key is None:
            key = self._key(scope, version)
            entry = self._cached(key)
        if entry is None:
            entry = await self._fill(scope, receive, send, key)
            if entry is None:
                return
        await self._answer(scope, send, req_headers, entry)

    def _cached(self, key: tuple) -> Entry | None:
        with self._lock:
            return self.cache.get(key)

    def _store(self, key: tuple, headers: list[tuple[bytes, bytes]], body: bytes) -> Entry | None:
        """The entry of a 200 (None when it has no ETag), kept when its key was asked for
        recently (:meth:`ResponseCache.admit`)."""
        etag = next((v for k, v in headers if k == b"etag"), None)
        if etag is None:
            return None
        entry = Entry(
            headers=[(k, v) for k, v in headers if k not in _VOLATILE],
            body=body,
            gzipped=None,  # compressed on the first request that accepts gzip (see _answer)
            etag=etag,
            last_modified=next((v for k, v in headers if k == b"last-modified"), b""),
        )
        with self._lock:
            if self.cache.admit(key):
                self.cache.put(key, entry)
        return entry

    def _lane(self) -> Any:
        """The short lane (``api.ogc_lane.FeaturesLane``) among the apps inside, if any:
        its requests are then answered by :meth:`_fast`."""
        if self._lane_app is _UNSET:
            app: Any = self.app
            while app is not None and not hasattr(app, "plan"):
                app = getattr(app, "app", None)
            self._lane_app = app
        return self._lane_app

    def _key(
        self, scope: Scope, version: str, req_headers: dict[bytes, bytes] | None = None
    ) -> tuple:
        return (version, *self._variant(scope, req_headers))

    def _variant(self, scope: Scope, req_headers: dict[bytes, bytes] | None = None) -> tuple:
        """The cache key but for the data version: what the request itself decides (base
        URL, path, query, format, language)."""
        if req_headers is None:
            req_headers = dict(scope["headers"])
        query: bytes = scope["query_string"]
        has_f = query.startswith(b"f=") or b"&f=" in query
        fmt = "f" if has_f else negotiate(None, _s(req_headers.get(b"accept")))
        lang = negotiate_language(_s(req_headers.get(b"accept-language")))
        return (self.base_url(scope), scope["path"], query, fmt, lang)

    async def _fast(self, scope: Scope, receive: Receive, send: Send, plan: Any) -> None:
        """A request the lane takes: the data version, the cache and (on a miss) the lane's
        answer in **one** threadpool hop, on one pooled connection; the answer is sent as a
        cache hit is. What the lane declines, or fails on, goes the usual way."""
        seen: list[Message] = []
        on_loop = plan.prefetch is not None and scope.get(PLANNED) is None
        got = await self._on_the_loop(scope, plan) if on_loop else None
        try:
            if got is not None:
                pass
            elif plan.abandonable:
                got = await run_abandonable(receive, seen, self._version_and_answer, scope, plan)
            else:
                got = await run_sync(self._version_and_answer, scope, plan)
        except Exception:
            if any(m["type"] == "http.disconnect" for m in seen):
                return  # the client has gone (and its query was cancelled)
            got = None
        if isinstance(got, Entry):
            await self._answer(scope, send, dict(scope["headers"]), got)
        elif got is not None:  # not a cacheable 200 (an empty tile): sent by the lane
            await self.app({**scope, ANSWER: got}, replaying(seen, receive), send)
        else:
            await self._get({**scope, DECLINED: True}, replaying(seen, receive), send)

    async def _on_the_loop(self, scope: Scope, plan: Any) -> Entry | Response | None:
        """:meth:`_version_and_answer` on the event loop, after the plan read what it needs
        asynchronously (``Plan.prefetch``); None when it could not or anything would wait
        for the database (``geo.store.WouldBlock``): the threadpool then answers."""
        try:
            with on_the_loop():  # the prefetch's own sync steps must not wait either
                if not await plan.prefetch():
                    return None
                return self._version_and_answer(scope, plan)
        except (WouldBlock, GeoError):  # to wait for the database; an error: the threadpool
            return None
        except Exception:  # answers either, and would a failure (a 500) the same way
            log.warning("an answer on the event loop failed; a thread answers", exc_info=True)
            return None

    def _version_and_answer(self, scope: Scope, plan: Any) -> Entry | Response | None:
        """(In the threadpool.) The cached entry of the request, else the lane's answer —
        an entry when it is a 200 with an ETag; None when the path is not cached."""
        with held_connections():
            version = self.version_of(scope["path"])
            if version is None:
                return None
            key = self._key(scope, version)
            entry = self._cached(key)
            if entry is not None:
                return entry
            response = plan.run()
        if response.status_code != 200:
            return response
        return self._store(key, response.raw_headers, bytes(response.body)) or response

    async def _fill(self, scope: Scope, receive: Receive, send: Send, key: tuple) -> Entry | None:
        """Run the app with a plain GET; cache a 200 with an ETag, else pass it through."""
        inner = dict(scope)
        inner["method"] = "GET"
        inner["headers"] = [(k, v) for k, v in scope["headers"] if k not in _STRIP_REQUEST]
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(inner, receive, capture)
        start = messages[0] if messages else None
        entry = None
        if start is not None and start["status"] == 200:
            body = b"".join(m.get("body", b"") for m in messages[1:])
            entry = self._store(key, list(start.get("headers", [])), body)
        if entry is None:  # not a cacheable 200: passed through as it is
            for m in messages:
                if scope["method"] == "HEAD" and m["type"] == "http.response.body":
                    m = {"type": "http.response.body", "body": b""}
                await send(m)
        return entry

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        req_headers: dict[bytes, bytes],
        e: Entry,
        complete: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        """Send entry ``e`` (a 304 when the request's validators match). ``complete``: the
        front door's, which adds the security headers itself and sends straight to the
        server: the messages of a 200 are then built once per entry and variant."""
        origin = req_headers.get(b"origin")
        allowed = None
        if origin is not None and (self.cors_any or origin in self.cors_origins):
            allowed = b"*" if self.cors_any else origin
        inm = req_headers.get(b"if-none-match")
        ims = req_headers.get(b"if-modified-since")
        if (inm is not None and _etag_matches(inm, e.etag)) or (
            inm is None and ims is not None and _not_modified_since(ims, e.last_modified)
        ):
            keep = [
                (k, v)
                for k, v in e.headers
                if k in (b"etag", b"last-modified", b"cache-control", b"content-crs")
            ]
            headers = keep + _extra(allowed)
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": complete(headers) if complete else headers,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        zipped = len(e.body) >= GZIP_MIN_BYTES and b"gzip" in req_headers.get(
            b"accept-encoding", b""
        )
        if zipped and e.gzipped is None:  # once per entry, never for clients that do not ask
            gz = gzip.compress(e.body, 6 if e.cached else 4, mtime=0)
            with self._lock:
                e.gzipped = gz
                if e.cached:
                    self.cache.size += len(gz)
        head = scope["method"] == "HEAD"
        messages = e.sent.get((zipped, allowed)) if complete is not None else None
        if messages is None:
            body = e.gzipped if zipped and e.gzipped is not None else e.body
            headers = e.headers + _extra(allowed)
            if zipped:
                headers.append((b"content-encoding", b"gzip"))
            headers.append((b"content-length", str(len(body)).encode()))
            messages = (
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": complete(headers) if complete else headers,
                },
                {"type": "http.response.body", "body": body},
            )
            if complete is not None:  # sent to the server itself, which only reads them
                e.sent[zipped, allowed] = messages
        await send(messages[0])
        await send({"type": "http.response.body", "body": b""} if head else messages[1])


#: Where :meth:`FrontDoor.answered` sends a request (see :meth:`FrontDoor._door`).
_STACK, _LOOP, _CACHE = object(), object(), object()


class FrontDoor:
    """A response-cache hit of a static path (the territory), or a 200 the short lane reads
    on the event loop (a feature by id, a map's box, a tile), answered before the rest of the
    middleware stack.

    Through the stack a hit of the 133-comuni page ran the security headers, the page
    language, FastAPI's error, telemetry and body-limit layers and gzip around a ~30 µs
    lookup, and reached half the rate of a bare ASGI app serving the same bytes. Here it
    is looked up first and sent with the same headers: the security ones as
    :class:`api.security.SecurityMiddleware` adds them, the rest as :meth:`_answer`
    always did; a filter is checked against its budget and counted against its client's
    rate here, as that layer does. Whatever those layers would change goes the usual way:
    an over-long URL, a filter over its budget or its client's rate (their 400 and 429),
    ``lang=`` and HTML (the page language), a miss, any answer but a 200 from the lane.
    """

    #: Doors remembered (:meth:`_door`), at most this many (then forgotten all at once).
    DOORS = 4096

    def __init__(self, cache: OgcCacheMiddleware, security: Any) -> None:
        self.cache = cache
        self.security = security
        self._doors: dict[tuple, tuple] = {}

    async def answered(self, scope: Scope, send: Send) -> bool:
        """True when the hit was sent; False: nothing was, the stack answers."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        path: str = scope["path"]
        client = scope.get("client")
        seen = (
            path,
            scope["query_string"],
            scope.get("raw_path"),
            scope.get("scheme"),
            scope.get("root_path"),
            scope.get("server"),
            client[0] if client else None,
            tuple(scope["headers"]),
        )
        try:
            door = self._doors.get(seen)
        except TypeError:  # lists where uvicorn gives tuples (another server, a test client)
            server = scope.get("server")
            seen = (
                *seen[:5],
                tuple(server) if server else None,
                seen[6],
                tuple(tuple(h) for h in scope["headers"]),
            )
            door = self._doors.get(seen)
        if door is None:
            if len(self._doors) >= self.DOORS:
                self._doors.clear()
            door = self._doors[seen] = self._door(scope)
        if door[0] is _STACK:
            return False
        headers = door[1]
        if door[0] is _LOOP:
            if door[2] and self.security.filter_wait(scope) is not None:
                return False  # none of its client's rate left: the security layer's 429
            return await self._on_the_loop(scope, send, headers)
        version = self.cache.version_of(path)
        if version is None:
            return False
        entry = self.cache._cached((version, *door[2]))
        if entry is None:
            return False
        await self.cache._answer(scope, send, headers, entry, self.security.completed)
        return True

    def _door(self, scope: Scope) -> tuple:
        """How a request goes, from what :meth:`answered` keys it by (path, query, the
        connection's scheme, server and client host, every header: all it depends on): to
        the stack, to the loop's lane, or to the cache of a static path under a key of
        which only the data version is left to add. Remembered, a hit of the 133-comuni
        page skips the header parsing, the content and language negotiation and the base
        URL (~5 µs of its ~14 µs here)."""
        path: str = scope["path"]
        query: bytes = scope["query_string"]
        lowered = query.lower()
        target = len(scope.get("raw_path") or path.encode()) + len(query) + (1 if query else 0)
        if target > self.security.max_url_length:
            return (_STACK,)
        headers = dict(scope["headers"])
        if b"html" in headers.get(b"accept", b""):
            return (_STACK,)
        static = self.cache.static(path)
        filtered = False
        if b"lang" in lowered or b"html" in lowered or b"%" in query or b"filter" in query:
            if static:
                return (_STACK,)
            # What the page language and the security layer read, decoded: a language
            # (``lang=``, ``l%61ng=``) or HTML asked for goes the usual way, and so does a
            # filter over its budget (the security layer answers its 400).
            if any(k == "lang" or "html" in v.lower() for k, v in query_pairs(query)):
                return (_STACK,)
            filtered = has_filter(scope)
            if filtered and over_budget(scope) is not None:
                return (_STACK,)
        if not static:
            return (_LOOP, headers, filtered)
        return (_CACHE, headers, self.cache._variant(scope, headers))

    async def _on_the_loop(self, scope: Scope, send: Send, headers: dict[bytes, bytes]) -> bool:
        """A request the short lane reads on the event loop (a feature by id, a map's box, a
        short filter's page; a tile on PostgreSQL), answered here when that gives a 200
        (fresh or cached): the layers of the stack were ~14 % of the loop's time on a
        feature by id. Anything else
        goes through the stack without a second try on the loop: an answer read here for
        the lane to send (an empty tile), or the threadpool's work (a 404, a read the loop
        cannot do)."""
        lane = self.cache._lane()
        plan = lane.plan(_plain(scope)) if lane is not None else None
        if plan is None or plan.prefetch is None:
            return False
        with request_revisions():
            got = await self.cache._on_the_loop(scope, plan)
        if got is None:  # the threadpool answers (an error, a read the loop cannot do)
            scope[PLANNED] = plan
            return False
        if not isinstance(got, Entry):  # an empty tile: the stack sends it, unread
            scope[ANSWER] = got
            return False
        await self.cache._answer(scope, send, headers, got, self.security.completed)
        return True

    @classmethod
    def of(cls, stack: Any) -> FrontDoor | None:
        """The door of a built middleware stack: its response cache and the security
        layer outside it; None when either is missing."""
        from api.security import SecurityMiddleware

        security = cache = None
        app = stack
        while app is not None:
            if isinstance(app, SecurityMiddleware):
                security = app
            elif isinstance(app, OgcCacheMiddleware):
                cache = app if security is not None else None
                break
            app = getattr(app, "app", None)
        return cls(cache, security) if cache is not None and security is not None else None


def _extra(allowed: bytes | None) -> list[tuple[bytes, bytes]]:
    """The headers an answer adds to its entry's: Vary, and CORS for an allowed origin."""
    extra = [(b"vary", b"Accept, Accept-Encoding, Accept-Language, Origin")]
    if allowed is not None:
        extra.append((b"access-control-allow-origin", allowed))
        extra.append((b"access-control-expose-headers", b"ETag, Location, Content-Crs, Link"))
    return extra


def _plain(scope: Scope) -> Scope:
    """``scope`` as :meth:`OgcCacheMiddleware._fill` passes it on: a GET without the
    conditional and encoding headers (the cache answers those itself)."""
    return {
        **scope,
        "method": "GET",
        "headers": [(k, v) for k, v in scope["headers"] if k not in _STRIP_REQUEST],
    }


def _s(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
